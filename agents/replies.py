"""A planner model's reply, made safe to run and to send back: every call has a unique id, a name
and JSON-object arguments, whatever the model or server produced.

* Tool calls written as text (a local model, or a server that does not parse tool calls) become
  calls (:mod:`gar_agents.toolcall_text`).
* A malformed call (LangChain ``invalid_tool_calls``: bad JSON, no name) becomes a call with
  empty arguments, and its problem is returned separately: the planner answers it with an error
  observation, and the conversation sent back to the server holds only well-formed calls.
* Missing or repeated call ids are replaced (some servers send none, or ``call_0`` every turn).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from langchain_core.messages import AIMessage, BaseMessage

from .toolcall_text import parse_tool_calls


@dataclass(frozen=True)
class BadCall:
    """Why call ``call_id`` cannot run: ``raw`` is what the model wrote for its arguments."""

    call_id: str
    name: str
    raw: str
    error: str


def text_of(content: Any) -> str:
    """A message content (string or content blocks) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def used_ids(messages: Iterable[BaseMessage]) -> set[str]:
    """Tool-call ids already in the conversation."""
    out: set[str] = set()
    for m in messages:
        for c in getattr(m, "tool_calls", None) or []:
            if c.get("id"):
                out.add(str(c["id"]))
    return out


def normalise_reply(reply: AIMessage, history: Iterable[BaseMessage], parse_text: bool) -> tuple[AIMessage, list[BadCall]]:
    """``reply`` with well-formed calls only, and the malformed ones (see the module docstring).
    ``parse_text``: look for calls written in the text (tools were offered)."""
    calls = [dict(c) for c in reply.tool_calls]
    invalid = [dict(c) for c in reply.invalid_tool_calls]
    content: Any = reply.content
    if parse_text and not calls and not invalid:
        parsed = parse_tool_calls(text_of(reply.content))
        if parsed.calls or parsed.invalid:
            calls, invalid, content = parsed.calls, parsed.invalid, parsed.content
    if not calls and not invalid and content is reply.content:
        return reply, []
    taken = used_ids(history)

    def fresh(cid: Any) -> str:
        cid = str(cid) if cid else ""
        if not cid or cid in taken:
            cid = f"call_{uuid.uuid4().hex[:12]}"
        taken.add(cid)
        return cid

    out_calls: list[dict[str, Any]] = []
    bad: list[BadCall] = []
    for c in calls:
        args = c.get("args")
        out_calls.append({"name": str(c.get("name") or "unnamed_tool"), "args": args if isinstance(args, dict) else {},
                          "id": fresh(c.get("id")), "type": "tool_call"})
    for c in invalid:
        cid, name = fresh(c.get("id")), str(c.get("name") or "unnamed_tool")
        raw = c.get("args")
        bad.append(BadCall(cid, name, raw if isinstance(raw, str) else str(raw), str(c.get("error") or "")))
        out_calls.append({"name": name, "args": {}, "id": cid, "type": "tool_call"})
    extra = {k: v for k, v in reply.additional_kwargs.items() if k != "tool_calls"}  # raw provider calls
    fixed = reply.model_copy(update={"content": content, "tool_calls": out_calls, "invalid_tool_calls": [],
                                     "additional_kwargs": extra})
    return fixed, bad


__all__ = ["BadCall", "normalise_reply", "text_of", "used_ids"]
