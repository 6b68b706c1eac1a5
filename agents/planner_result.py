"""The planner's result from its final graph state, and its error type and messages."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage

from gar_tool.errors import GARError
from gar_tool.tools.results import render_overlay_png

from .evidence import Evidence, PlannerResult, Stopped, cited_ids
from .replies import text_of

if TYPE_CHECKING:  # pragma: no cover
    from .planner import Planner

NO_TOOLS_WARNING = ("the planner answered without calling any tool, so the answer is not grounded in the image "
                    "(a server or chat template that ignores tools does this; check that the planner model "
                    "supports tool calling, or use --require-tools to make it an error)")


NO_RESULT_WARNING = "no tool call of the planner succeeded, so the answer is not grounded in tool results"


class PlannerError(GARError):
    """The planner model cannot be used (unreachable endpoint, timeout, no tool calling, bad reply).
    ``result``: the :class:`~gar_agents.evidence.PlannerResult` gathered before the failure (steps,
    evidence; ``stopped == "error"``), when the run had started."""

    def __init__(self, message: str, *, result: PlannerResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def build_result(planner: "Planner", question: str, image: Any, state: dict[str, Any],
                 error: str | None = None) -> PlannerResult:
    """The result of a run from its (last) graph state; with ``error`` a failed run's partial result."""
    evidence = Evidence(dict(state.get("regions") or {}), list(state.get("gar") or []))
    steps = list(state.get("steps") or [])
    image_id = str(state.get("image_id", ""))
    warnings: list[str] = []
    stopped: Stopped
    if error is not None:
        answer, stopped = "", "error"
    else:
        last = (state.get("messages") or [None])[-1]
        answer = text_of(last.content).strip() if isinstance(last, AIMessage) else ""
        stopped = "budget" if state.get("budget_hit") else "answer"
        if not answer:
            stopped, answer = "fallback", _fallback_answer(evidence)
        elif not steps:
            stopped = "no_tools"
            warnings.append(NO_TOOLS_WARNING)
        elif not any(s.ok for s in steps):
            warnings.append(NO_RESULT_WARNING)
    ids = cited_ids(answer)
    invented = [i for i in ids if i not in evidence.ids]
    for rid in invented:  # never hand an invented id to the user as if it were evidence
        answer = re.sub(rf"\b{rid}\b", f"{rid} [no such region]", answer)
    cited = [i for i in ids if i in evidence.ids]
    return PlannerResult(question, answer, image_id, evidence, steps, stopped, cited, invented,
                         _overlay(planner, image, evidence, cited), warnings, error)


def _overlay(planner: "Planner", image: Any, evidence: Evidence, cited: list[str]) -> bytes | None:
    regions, legend = [], []
    for rid in cited or list(evidence.regions):
        try:
            regions.append(planner.toolkit.store.get_region(rid))
        except Exception:  # evicted from the store: skip in the picture
            continue
        legend.append(f"{rid}  {evidence.regions[rid].label or ''}".strip())
    return render_overlay_png(image, regions, legend) if regions else None


def _fallback_answer(evidence: Evidence) -> str:
    if not evidence.gar:
        return "No answer: the planner stopped without one and found no evidence."
    lines = ["No final answer from the planner; what GAR said:"]
    lines += [f"- {g.question} → {g.answer}" for g in evidence.gar]
    return "\n".join(lines)


def model_name(model: Any) -> str:
    for attr in ("model_name", "model", "model_id"):
        v = getattr(model, attr, None)
        if isinstance(v, str):
            return repr(v)
    return type(model).__name__


def failure_text(planner: "Planner", exc: BaseException) -> str:
    """One line for a planner request that failed; a timeout says which limit to raise."""
    name = model_name(planner.model)
    if "timeout" in type(exc).__name__.lower() or isinstance(exc, TimeoutError):
        limit = "" if planner.timeout is None else f" within {planner.timeout:g} s"
        tries = f" ({planner.retries} retr{'y' if planner.retries == 1 else 'ies'})" if planner.retries else ""
        return (f"planner model {name} did not answer{limit}{tries}; raise --planner-timeout / "
                f"Planner(timeout=...) or use a faster model")
    text = f"{type(exc).__name__}: {exc}"
    one = json.dumps(text.splitlines()[0] if text else type(exc).__name__)[1:-1][:300]
    return f"planner model {name} failed: {one}"


__all__ = ["PlannerError", "build_result", "failure_text", "model_name", "NO_TOOLS_WARNING", "NO_RESULT_WARNING"]
