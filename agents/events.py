"""What :meth:`gar_agents.Planner.stream` yields: one typed event per thing that happens.

Every event has ``type`` and ``to_dict()`` (JSON-ready, e.g. for a web page or an HTTP
server-sent-events endpoint)::

    {"type": "tool_call",   "step": 3, "turn": 2, "call_id": "...", "tool": "gar_relate", "args": {...}}
    {"type": "tool_result", "step": 3, "turn": 2, "call_id": "...", "tool": "gar_relate", "ok": true,
     "content": "...", "output": {...}, "image": null}
    {"type": "answer", "result": {...}}          # PlannerResult.to_dict(); the last event of a run
    {"type": "error",  "message": "...", "result": {...}}   # the run failed; steps taken so far

Calls of one planner turn (``turn``) run together: their ``tool_call`` events come first, then
their ``tool_result`` events in call order as each is ready. ``step`` numbers calls across the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from .evidence import PlannerResult


@dataclass(frozen=True)
class ToolCallStarted:
    """The planner called a tool (``args`` as it will run: the run's image filled in)."""

    type: ClassVar[str] = "tool_call"
    step: int
    turn: int
    call_id: str
    tool: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "step": self.step, "turn": self.turn, "call_id": self.call_id,
                "tool": self.tool, "args": self.args}


@dataclass(frozen=True)
class ToolCallFinished:
    """A tool call's outcome: ``content`` is what the planner reads (the result text or the error
    text), ``output`` the structured result (None on failure), ``image`` a picture the tool
    returned (``{"mime_type", "base64"}``, gar_zoom) or None."""

    type: ClassVar[str] = "tool_result"
    step: int
    turn: int
    call_id: str
    tool: str
    ok: bool
    content: str
    output: dict[str, Any] | None = None
    image: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "step": self.step, "turn": self.turn, "call_id": self.call_id,
                "tool": self.tool, "ok": self.ok, "content": self.content, "output": self.output,
                "image": self.image}


@dataclass(frozen=True)
class AnswerEvent:
    """The run ended with an answer (``result.stopped`` says how)."""

    type: ClassVar[str] = "answer"
    result: PlannerResult = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "result": self.result.to_dict()}


@dataclass(frozen=True)
class ErrorEvent:
    """The run failed (planner model unreachable, timed out, ...); ``result`` holds the steps and
    evidence gathered before the failure (``stopped == "error"``)."""

    type: ClassVar[str] = "error"
    message: str
    result: PlannerResult = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "result": self.result.to_dict()}


PlannerEvent = Union[ToolCallStarted, ToolCallFinished, AnswerEvent, ErrorEvent]

__all__ = ["ToolCallStarted", "ToolCallFinished", "AnswerEvent", "ErrorEvent", "PlannerEvent"]
