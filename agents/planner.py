"""The planner agent: decompose → ground → ask GAR → compose, with evidence.

A LangGraph graph over the gar tools, driven by any tool-calling chat model::

    agent ──tool calls──▶ tools ──▶ agent ── ... ──answer──▶ check ──▶ END
      ▲                                                       │
      └──────────── answer cites unknown region ids ──────────┘ (once)

* ``agent`` asks the chat model (tools bound) for the next step; once ``max_steps`` tool steps are
  used it asks for a final answer without tools (``prompts/planner_budget.md``).
* ``tools`` runs every tool call through the :class:`~gar_tool.tools.GARToolkit`. Failures —
  unknown tools, malformed or invalid arguments, unknown region ids, model errors — become tool
  messages the planner reads and can act on; the run goes on. Low-score detections are marked as
  doubtful in the observation. The ``image`` argument is always the run's image.
* ``check`` makes sure the answer cites only region ids some tool returned: the planner is asked
  once to fix it (``prompts/planner_fix_ids.md``), then invented ids are struck from the answer.

Usage::

    from gar_agents import Planner
    planner = Planner(toolkit, "openai:gpt-4o-mini")          # or a LangChain chat model object
    result = planner.ask("photo.jpg", "Is the man on the left holding a cup?")
    result.answer, result.evidence, result.steps, result.overlay_png
"""

from __future__ import annotations

import json
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from gar_tool.errors import GARError, InputError
from gar_tool.media.images import load_image
from gar_tool.templates import load_prompt
from gar_tool.tools.results import render_overlay_png

from .evidence import Evidence, PlannerResult, Step, cited_ids
from .models import DEFAULT_PLANNER, make_chat_model

#: Detections scoring below this are flagged as doubtful in the planner's observation.
DOUBTFUL_SCORE = 0.45


class PlannerError(GARError):
    """The planner model cannot be used (unreachable endpoint, no tool calling, bad reply)."""


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    steps: Annotated[int, operator.add]
    fixes: Annotated[int, operator.add]


class Planner:
    """Answers free-form questions about an image with the gar tools.

    Args:
        toolkit: a :class:`gar_tool.tools.GARToolkit` (GAR + detector for the full tool set).
        model: planner spec (``openai:MODEL``, ``ollama:MODEL``, ``anthropic:MODEL``,
            ``hf:REPO_OR_DIR``) or a LangChain chat model object that supports ``bind_tools``.
        max_steps: tool-using steps before the planner must answer.
        base_url: OpenAI-compatible server for ``openai:`` specs.
    """

    def __init__(self, toolkit: Any, model: Any = DEFAULT_PLANNER, *, max_steps: int = 8,
                 base_url: str | None = None, api_key: str | None = None) -> None:
        if max_steps < 1:
            raise InputError(f"max_steps must be >= 1, got {max_steps}")
        self.toolkit = toolkit
        self.model = make_chat_model(model, base_url=base_url, api_key=api_key)
        self.max_steps = max_steps
        self.tool_names = toolkit.available_tools()
        from gar_tool.integrations.langchain import get_tools

        try:
            self._with_tools = self.model.bind_tools(get_tools(toolkit, include_overlay=False))
        except NotImplementedError:
            raise PlannerError(f"planner model {_model_name(self.model)} cannot call tools; use a "
                               "tool-calling chat model") from None

    # ------------------------------------------------------------------ public
    def ask(self, image: Any, question: str) -> PlannerResult:
        """Answer ``question`` about ``image`` (path, PIL image, array or bytes)."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("question must be a non-empty string")
        pil = load_image(image)
        stored = self.toolkit.store.put_image(pil)
        run = _Run(stored.image_id, Evidence(), [])
        system = load_prompt("planner_system").render(
            max_steps=self.max_steps, prompt_slots=self._prompt_slots(), image_id=stored.image_id,
            width=pil.width, height=pil.height)
        graph = self._graph(run, SystemMessage(system))
        try:
            state = graph.invoke({"messages": [HumanMessage(question.strip())], "steps": 0, "fixes": 0},
                                 {"recursion_limit": 4 * self.max_steps + 20})
        except PlannerError as exc:  # LangGraph appends task notes to the message: keep one line
            raise PlannerError(str(exc).splitlines()[0]) from None
        return self._result(question.strip(), pil, run, state)

    # ------------------------------------------------------------------ graph
    def _graph(self, run: "_Run", system: SystemMessage):
        budget = load_prompt("planner_budget").render(max_steps=self.max_steps)

        def agent(state: _State) -> dict:
            msgs = [system, *state["messages"]]
            if state["steps"] >= self.max_steps:
                run.budget_hit = True
                reply = self._invoke(self.model, msgs + [HumanMessage(budget)])
                reply = AIMessage(content=_text(reply.content))  # no tool calls past the budget
            else:
                reply = self._invoke(self._with_tools, msgs)
            return {"messages": [reply]}

        def route(state: _State) -> str:
            last = state["messages"][-1]
            calls = getattr(last, "tool_calls", None) or getattr(last, "invalid_tool_calls", None)
            return "tools" if calls and state["steps"] < self.max_steps else "check"

        def tools(state: _State) -> dict:
            last = state["messages"][-1]
            out = [self._run_tool(run, c["name"], c.get("args"), c["id"]) for c in last.tool_calls]
            for bad in getattr(last, "invalid_tool_calls", None) or []:
                text = (f"Error: the arguments of {bad.get('name')} are not valid JSON "
                        f"({bad.get('error') or bad.get('args')!r}); call it again with a JSON object.")
                run.steps.append(Step(len(run.steps) + 1, str(bad.get("name")), {}, False, text))
                out.append(ToolMessage(text, tool_call_id=bad.get("id") or "invalid", status="error"))
            return {"messages": out, "steps": 1}

        def check(state: _State) -> dict:
            answer = _text(state["messages"][-1].content)
            unknown = [i for i in cited_ids(answer) if i not in run.evidence.ids]
            if unknown and state["fixes"] < 1:
                known = ", ".join(sorted(run.evidence.ids, key=lambda x: int(x[1:]))) or "none"
                fix = load_prompt("planner_fix_ids").render(unknown_ids=", ".join(unknown), known_ids=known)
                return {"messages": [HumanMessage(fix)], "fixes": 1}
            return {}

        def after_check(state: _State) -> str:
            return "agent" if isinstance(state["messages"][-1], HumanMessage) else END

        g = StateGraph(_State)
        g.add_node("agent", agent)
        g.add_node("tools", tools)
        g.add_node("check", check)
        g.add_edge(START, "agent")
        g.add_conditional_edges("agent", route, {"tools": "tools", "check": "check"})
        g.add_edge("tools", "agent")
        g.add_conditional_edges("check", after_check, {"agent": "agent", END: END})
        return g.compile()

    def _invoke(self, model: Any, messages: list) -> AIMessage:
        try:
            reply = model.invoke(messages)
        except GARError:
            raise
        except NotImplementedError:
            raise PlannerError(f"planner model {_model_name(self.model)} cannot call tools") from None
        except Exception as exc:  # provider SDK errors: connection, auth, rate limit, bad request
            raise PlannerError(f"planner model {_model_name(self.model)} failed: {_one_line(exc)}") from None
        if not isinstance(reply, AIMessage):
            raise PlannerError(f"planner model returned {type(reply).__name__}, expected an AI message")
        return reply

    def _run_tool(self, run: "_Run", name: str, args: Any, call_id: str) -> ToolMessage:
        from gar_tool.tools.errors import as_tool_error

        args = dict(args) if isinstance(args, dict) else {}
        if name not in self.tool_names:
            text = f"Error: there is no tool {name!r}; available: {', '.join(self.tool_names)}."
            run.steps.append(Step(len(run.steps) + 1, name, args, False, text))
            return ToolMessage(text, tool_call_id=call_id, status="error")
        args["image"] = run.image_id  # the planner works on one image
        try:
            result = self.toolkit.call(name, args)
        except Exception as exc:  # a failed call is an observation, not the end of the run
            err = as_tool_error(exc, name)
            hint = "fix the arguments and retry" if err.retryable else "this will not work; try something else"
            text = f"Error: {err.message} ({hint})."
            run.steps.append(Step(len(run.steps) + 1, name, args, False, text))
            return ToolMessage(text, tool_call_id=call_id, status="error")
        output = result.structured()
        run.evidence.record(name, output, args)
        text = result.content
        if name == "gar_ground":
            doubtful = [r["id"] for r in output.get("regions", [])
                        if r.get("score") is not None and r["score"] < DOUBTFUL_SCORE]
            if doubtful:
                text += (f"\nDoubtful (detector score below {DOUBTFUL_SCORE}): {', '.join(doubtful)} — "
                         "check with gar_describe before relying on them.")
        run.steps.append(Step(len(run.steps) + 1, name, args, True, text))
        return ToolMessage(text, tool_call_id=call_id)

    # ------------------------------------------------------------------ result
    def _result(self, question: str, image: Any, run: "_Run", state: dict) -> PlannerResult:
        last = state["messages"][-1]
        answer = _text(last.content).strip() if isinstance(last, AIMessage) else ""
        stopped = "budget" if run.budget_hit else "answer"
        if not answer:
            stopped = "fallback"
            answer = _fallback_answer(run.evidence)
        ids = cited_ids(answer)
        invented = [i for i in ids if i not in run.evidence.ids]
        for rid in invented:  # never hand an invented id to the user as if it were evidence
            answer = _strike(answer, rid)
        cited = [i for i in ids if i in run.evidence.ids]
        shown = cited or list(run.evidence.regions)
        regions, legend = [], []
        for rid in shown:
            try:
                regions.append(self.toolkit.store.get_region(rid))
            except Exception:  # evicted from the store: skip in the picture
                continue
            info = run.evidence.regions[rid]
            legend.append(f"{rid}  {info.get('label') or ''}".strip())
        png = render_overlay_png(image, regions, legend) if regions else None
        return PlannerResult(question, answer, run.image_id, run.evidence, run.steps, stopped, cited,
                             invented, png)

    def _prompt_slots(self) -> int:
        gar = getattr(self.toolkit, "gar", None)
        return int(getattr(gar, "prompt_slots", 5))


class _Run:
    def __init__(self, image_id: str, evidence: Evidence, steps: list[Step]) -> None:
        self.image_id, self.evidence, self.steps = image_id, evidence, steps
        self.budget_hit = False


def _strike(text: str, rid: str) -> str:
    import re

    return re.sub(rf"\b{rid}\b", f"{rid} [no such region]", text)


def _fallback_answer(evidence: Evidence) -> str:
    if not evidence.gar:
        return "No answer: the planner stopped without one and found no evidence."
    lines = ["No final answer from the planner; what GAR said:"]
    lines += [f"- {g.question} → {g.answer}" for g in evidence.gar]
    return "\n".join(lines)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def _model_name(model: Any) -> str:
    for attr in ("model_name", "model", "model_id"):
        v = getattr(model, attr, None)
        if isinstance(v, str):
            return repr(v)
    return type(model).__name__


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return json.dumps(text.splitlines()[0] if text else type(exc).__name__)[1:-1][:300]


__all__ = ["Planner", "PlannerError", "PlannerResult", "DOUBTFUL_SCORE"]
