"""Run the tool calls of one planner turn together and turn each outcome into what the planner reads.

Calls of one turn are independent (the model issued them at once), so they run together: through
``toolkit.call_many`` for a :class:`gar_tool.tools.GARToolkit` (same results and region ids as one
at a time; GAR calls share batches when its GAR is a MicroBatcher), else in threads (a remote
client: the server micro-batches). Every failure — unknown tool, malformed call, too many calls in
one turn, bad arguments, model errors — is an observation worded by
:func:`gar_tool.tools.errors.agent_error_text`, as every adapter words it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gar_tool.tools.errors import ToolError, ToolInputError, agent_error_text, as_tool_error
from gar_tool.tools.results import ToolImage, ToolResult

from .replies import BadCall

#: Detections scoring below this are flagged as doubtful in the planner's observation.
DOUBTFUL_SCORE = 0.45


@dataclass
class PlannedCall:
    """One call of a turn: ``args`` as it runs (the run's image filled in); ``error`` set when it
    is answered without running."""

    call_id: str
    tool: str
    args: dict[str, Any]
    error: ToolError | None = None


@dataclass
class Observation:
    """A call's outcome as the planner reads it."""

    call: PlannedCall
    ok: bool
    text: str
    output: dict[str, Any] | None = None
    image: ToolImage | None = None


def plan_calls(calls: Sequence[dict[str, Any]], bad: dict[str, BadCall], tool_names: Sequence[str],
               image_id: str, max_calls: int) -> list[PlannedCall]:
    """The turn's calls, each with its arguments, or the error that answers it."""
    out = []
    for n, c in enumerate(calls):
        name, cid = str(c["name"]), str(c["id"])
        args = dict(c.get("args") or {})
        error: ToolError | None = None
        if cid in bad:
            b = bad[cid]
            raw = b.raw if len(b.raw) <= 200 else b.raw[:200] + "..."
            error = ToolInputError(f"the call of {name} could not be read ({b.error or 'malformed'}): {raw!r}; "
                                   "call it again with its arguments as one JSON object", tool=name)
        elif name not in tool_names:
            error = ToolInputError(f"there is no tool {name!r}; available: {', '.join(tool_names)}", tool=name)
        elif n >= max_calls:
            error = ToolInputError(f"more than {max_calls} tool calls in one reply; this call was not run, make "
                                   "it again in the next reply", tool=name)
        else:
            args["image"] = image_id  # the planner works on one image
        out.append(PlannedCall(cid, name, args, error))
    return out


def observe(call: PlannedCall, outcome: ToolResult | ToolError) -> Observation:
    """What the planner reads for ``outcome`` (low-score detections flagged as doubtful)."""
    if isinstance(outcome, ToolError):
        return Observation(call, False, agent_error_text(outcome))
    output = outcome.structured()
    text = outcome.content
    if call.tool == "gar_ground":
        doubtful = [r["id"] for r in output.get("regions", [])
                    if r.get("score") is not None and r["score"] < DOUBTFUL_SCORE]
        if doubtful:
            text += (f"\nDoubtful (detector score below {DOUBTFUL_SCORE}): {', '.join(doubtful)} — "
                     "check with gar_describe (or look with gar_zoom) before relying on them.")
    return Observation(call, True, text, output, getattr(outcome, "image", None))


def run_calls(toolkit: Any, planned: Sequence[PlannedCall],
              on_done: Callable[[int, Observation], None] | None = None) -> list[Observation]:
    """Run the runnable calls together; observations in call order (``on_done`` as each is ready:
    the calls answered without running first, then the others in order)."""
    obs: list[Observation | None] = [None] * len(planned)

    def done(i: int, o: Observation) -> None:
        obs[i] = o
        if on_done is not None:
            on_done(i, o)

    for i, p in enumerate(planned):
        if p.error is not None:
            done(i, observe(p, p.error))
    todo = [i for i, p in enumerate(planned) if p.error is None]
    if todo:
        calls = [(planned[i].tool, planned[i].args) for i in todo]
        if hasattr(toolkit, "call_many"):
            toolkit.call_many(calls, on_result=lambda k, outcome: done(todo[k], observe(planned[todo[k]], outcome)))
        else:
            with ThreadPoolExecutor(min(8, len(calls)), thread_name_prefix="gar-planner") as pool:
                futures = [pool.submit(_call, toolkit, name, args) for name, args in calls]
                for k, f in zip(todo, futures):
                    done(k, observe(planned[k], f.result()))
    return [o for o in obs if o is not None]


def _call(toolkit: Any, name: str, args: dict[str, Any]) -> ToolResult | ToolError:
    try:
        return toolkit.call(name, args)
    except Exception as exc:  # a failed call is an observation, not the end of the run
        return as_tool_error(exc, name)


__all__ = ["PlannedCall", "Observation", "plan_calls", "observe", "run_calls", "DOUBTFUL_SCORE"]
