"""The planner agent: decompose → ground → ask GAR → compose, with evidence.

A LangGraph graph over the gar tools, compiled once per :class:`Planner`; everything about a run
(messages, tool trace, regions, GAR exchanges, budgets) lives in the graph state, so a run can be
streamed and checkpointed::

    agent ──tool calls──▶ tools ──▶ agent ── ... ──answer──▶ check ──▶ END
      ▲                                                       │
      └── answer cites unknown region ids (once) / used no tool (once) ──┘

* ``agent`` asks the chat model (tools bound, ``tool_choice="auto"``) for the next step; once
  ``max_steps`` tool-using turns are used it asks for a final answer without tools
  (``prompts/planner_budget.md``). Its reply is normalised (:mod:`gar_agents.replies`): calls
  written as text are read, malformed calls kept for an error answer, ids made unique.
* ``tools`` runs the turn's calls together (:mod:`gar_agents.step_runner`): the same results as
  one at a time, GAR calls batched. Failures — unknown tools, malformed or invalid arguments,
  unknown region ids, model errors — are observations the planner reads and acts on. The
  ``image`` argument is always the run's image. With ``vision``, ``gar_zoom`` pictures follow as a
  user message (OpenAI accepts images only there).
* ``check`` makes sure the answer cites only region ids some tool returned (the planner is asked
  once to fix it, ``prompts/planner_fix_ids.md``; then invented ids are struck) and that tools
  were used (asked once, ``prompts/planner_use_tools.md``; then ``stopped = "no_tools"`` with a
  warning, or an error with ``require_tools``).

Usage::

    planner = Planner(toolkit, "openai:gpt-4o-mini")          # or a LangChain chat model object
    result = planner.ask("photo.jpg", "Is the man on the left holding a cup?")
    for event in planner.stream("photo.jpg", "..."):          # typed events, .to_dict() is JSON
        ...
"""

from __future__ import annotations

import logging
import operator
import uuid
from typing import Annotated, Any, Iterator, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from gar_tool.errors import GARError, InputError
from gar_tool.limits import limit
from gar_tool.media.images import load_image
from gar_tool.templates import load_prompt
from gar_tool.tools.outputs import RegionOut
from gar_tool.tools.specs import get_spec, openai_tools

from .events import AnswerEvent, ErrorEvent, PlannerEvent, ToolCallFinished, ToolCallStarted
from .evidence import GARExchange, Step, cited_ids, harvest, merge_regions
from .models import DEFAULT_PLANNER, DEFAULT_TIMEOUT, check_retries, check_timeout, make_chat_model
from .planner_result import PlannerError, build_result, failure_text, model_name
from .replies import BadCall, normalise_reply, text_of
from .step_runner import DOUBTFUL_SCORE, Observation, plan_calls, run_calls

log = logging.getLogger(__name__)


class PlannerState(TypedDict, total=False):
    """The graph state of one run."""

    messages: Annotated[list[AnyMessage], add_messages]
    image_id: str
    turns: Annotated[int, operator.add]  # tool-using turns taken
    fixes: Annotated[int, operator.add]  # "cite only existing ids" requests sent
    nudges: Annotated[int, operator.add]  # "use the tools" requests sent
    steps: Annotated[list[Step], operator.add]
    regions: Annotated[dict[str, RegionOut], merge_regions]
    gar: Annotated[list[GARExchange], operator.add]
    bad_calls: dict[str, BadCall]  # malformed calls of the last reply, by call id
    budget_hit: bool


class Planner:
    """Answers free-form questions about an image with the gar tools.

    Args:
        toolkit: a :class:`gar_tool.tools.GARToolkit` (GAR + detector for the full tool set), or a
            client with the same interface (:class:`gar_tool.integrations.http.GARClient`).
        model: planner spec (``openai:MODEL``, ``ollama:MODEL``, ``anthropic:MODEL``,
            ``hf:REPO_OR_DIR``) or a LangChain chat model object that supports ``bind_tools``.
        max_steps: tool-using turns before the planner must answer.
        base_url, api_key: OpenAI-compatible server for ``openai:`` specs.
        timeout, retries: seconds per planner request and retries (specs only; default 120 s, 1).
        strict: bind the tools with OpenAI strict-mode schemas (``"strict": true``).
        tool_choice: sent with the tools (default ``"auto"``: some servers offer tools only when it
            is set); None sends none.
        vision: the model sees images: offer ``gar_zoom`` and show its pictures.
        require_tools: an answer given without calling any tool is an error, not a warning.
        batch: micro-batch the GAR calls of concurrent tool calls (an in-process toolkit gets a
            :class:`~gar_tool.gar.batching.MicroBatcher`; :meth:`close` stops it).
        max_calls_per_step: tool calls run from one reply (default ``limit("calls_per_step")``).
        checkpointer: a LangGraph checkpointer for the compiled graph (runs are then resumable
            and inspectable by ``thread_id``).
    """

    def __init__(self, toolkit: Any, model: Any = DEFAULT_PLANNER, *, max_steps: int = 8,
                 base_url: str | None = None, api_key: str | None = None, timeout: float | None = None,
                 retries: int | None = None, strict: bool = False, tool_choice: str | None = "auto",
                 vision: bool = False, require_tools: bool = False, batch: bool = True,
                 max_calls_per_step: int | None = None, checkpointer: Any = None) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise InputError(f"max_steps must be an integer >= 1, got {max_steps!r}")
        if not isinstance(model, str) and (timeout is not None or retries is not None):
            raise InputError("timeout / retries apply to planner specs such as 'openai:MODEL'; set them on your "
                             "chat model object instead")
        timeout = None if timeout is None else check_timeout(timeout, "planner timeout")
        #: seconds per planner request and retries, as the model was made with (for messages)
        self.retries = 1 if retries is None else check_retries(retries, "planner retries")
        api_spec = isinstance(model, str) and not model.strip().lower().startswith("hf:")
        self.timeout = DEFAULT_TIMEOUT if timeout is None and api_spec else timeout
        self.model = make_chat_model(model, base_url=base_url, api_key=api_key, timeout=timeout,
                                     retries=self.retries)
        self.max_steps, self.strict, self.vision, self.require_tools = max_steps, strict, vision, require_tools
        self.max_calls = limit("calls_per_step") if max_calls_per_step is None else int(max_calls_per_step)
        self.tool_names = [n for n in toolkit.available_tools() if vision or not get_spec(n).vision]
        kwargs = {} if tool_choice is None else {"tool_choice": tool_choice}
        try:
            self._with_tools = self.model.bind_tools(openai_tools(self.tool_names, strict=strict), **kwargs)
        except NotImplementedError:
            raise PlannerError(f"planner model {model_name(self.model)} cannot call tools; use a "
                               "tool-calling chat model") from None
        self._owned: Any = None
        self.toolkit, self._owned = _batched(toolkit) if batch else (toolkit, None)
        self.graph = self._build().compile(checkpointer=checkpointer)

    # ------------------------------------------------------------------ public
    def ask(self, image: Any, question: str, *, thread_id: str | None = None):
        """Answer ``question`` about ``image`` (path, PIL image, array or bytes) →
        :class:`~gar_agents.evidence.PlannerResult`. Raises :class:`PlannerError` (with ``.result``:
        the steps and evidence so far) when the planner model fails or, with ``require_tools``,
        answers without tools."""
        for event in self.stream(image, question, thread_id=thread_id):
            if isinstance(event, ErrorEvent):
                raise PlannerError(event.message, result=event.result)
            if isinstance(event, AnswerEvent):
                return event.result
        raise PlannerError("the planner stopped without an answer")  # pragma: no cover - graph always ends

    def stream(self, image: Any, question: str, *, thread_id: str | None = None) -> Iterator[PlannerEvent]:
        """Run the planner, yielding each event as it happens (:mod:`gar_agents.events`); the last
        is an :class:`~gar_agents.events.AnswerEvent` or an :class:`~gar_agents.events.ErrorEvent`."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("question must be a non-empty string")
        question = question.strip()
        pil = load_image(image)
        image_id = self.toolkit.store.put_image(pil).image_id
        system = load_prompt("planner_system").render(
            max_steps=self.max_steps, prompt_slots=self._prompt_slots(), image_id=image_id, width=pil.width,
            height=pil.height, max_calls=self.max_calls, **self._zoom_text())
        start: PlannerState = {"messages": [SystemMessage(system), HumanMessage(question)], "image_id": image_id,
                               "turns": 0, "fixes": 0, "nudges": 0, "steps": [], "regions": {}, "gar": [],
                               "bad_calls": {}, "budget_hit": False}
        config: Any = {"recursion_limit": 4 * self.max_steps + 24,
                       "configurable": {"thread_id": thread_id or uuid.uuid4().hex}}
        state: dict[str, Any] = dict(start)
        try:
            parts: Any = self.graph.stream(start, config, stream_mode=["custom", "values"])
            for mode, chunk in parts:
                if mode == "values":
                    state = chunk
                else:
                    yield chunk
        except Exception as exc:  # report the failure with what was gathered so far
            if isinstance(exc, GARError):  # the planner model failed
                message = _first_line(exc)  # LangGraph appends task notes to the message
            else:  # a bug: keep the traceback in the log, give the caller one line
                log.exception("planner run failed")
                message = f"the planner failed unexpectedly ({type(exc).__name__}: {_first_line(exc)[:300]})"
            yield ErrorEvent(message, build_result(self, question, pil, state, error=message))
            return
        result = build_result(self, question, pil, state)
        if self.require_tools and result.stopped == "no_tools":
            message = "the planner answered without calling any tool (--require-tools)"
            result.stopped, result.error, result.answer = "error", message, ""
            yield ErrorEvent(message, result)
            return
        yield AnswerEvent(result)

    def close(self) -> None:
        """Stop the micro-batcher this planner started (if any)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> "Planner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ graph
    def _build(self) -> StateGraph:
        g = StateGraph(PlannerState)
        g.add_node("agent", self._agent)
        g.add_node("tools", self._tools)
        g.add_node("check", self._check)
        g.add_edge(START, "agent")
        g.add_conditional_edges("agent", self._route, {"tools": "tools", "check": "check"})
        g.add_edge("tools", "agent")
        g.add_conditional_edges("check", _after_check, {"agent": "agent", END: END})
        return g

    def _agent(self, state: PlannerState) -> dict[str, Any]:
        msgs = list(state["messages"])
        if state.get("turns", 0) >= self.max_steps:
            budget = load_prompt("planner_budget").render(max_steps=self.max_steps)
            reply = self._invoke(self.model, msgs + [HumanMessage(budget)])
            return {"messages": [_unique_id(AIMessage(content=text_of(reply.content)), msgs)], "budget_hit": True,
                    "bad_calls": {}}  # no tool calls past the budget
        reply, bad = normalise_reply(self._invoke(self._with_tools, msgs), msgs, parse_text=True)
        return {"messages": [_unique_id(reply, msgs)], "bad_calls": {b.call_id: b for b in bad}}

    def _route(self, state: PlannerState) -> str:
        last = state["messages"][-1]
        calls = getattr(last, "tool_calls", None)
        return "tools" if calls and state.get("turns", 0) < self.max_steps else "check"

    def _tools(self, state: PlannerState) -> dict[str, Any]:
        last = state["messages"][-1]
        if not isinstance(last, AIMessage):  # _route sends only AI replies with tool calls here
            raise PlannerError(f"tool calls arrived in a {type(last).__name__}, expected an AI message")
        writer = get_stream_writer()
        turn, first = state.get("turns", 0) + 1, len(state.get("steps", [])) + 1
        planned = plan_calls([dict(c) for c in last.tool_calls], state.get("bad_calls") or {}, self.tool_names,
                             state["image_id"], self.max_calls)
        for k, p in enumerate(planned):
            writer(ToolCallStarted(first + k, turn, p.call_id, p.tool, p.args))

        def finished(k: int, o: Observation) -> None:
            image = None if o.image is None else {"mime_type": o.image.mime_type, "base64": o.image.base64()}
            writer(ToolCallFinished(first + k, turn, o.call.call_id, o.call.tool, o.ok, o.text, o.output, image))

        observations = run_calls(self.toolkit, planned, finished)
        messages: list[AnyMessage] = []
        steps: list[Step] = []
        regions: dict[str, RegionOut] = {}
        gar: list[GARExchange] = []
        pictures: list[Any] = []
        for k, o in enumerate(observations):
            steps.append(Step(first + k, o.call.tool, o.call.args, o.ok, o.text, o.call.call_id, turn))
            messages.append(ToolMessage(o.text, tool_call_id=o.call.call_id, name=o.call.tool,
                                        status="success" if o.ok else "error"))
            if o.ok and o.output is not None:
                found, asked = harvest(o.call.tool, o.output, o.call.args)
                regions, gar = merge_regions(regions, found), gar + asked
            if o.image is not None and self.vision:
                pictures += [{"type": "text", "text": f"Picture returned by {o.call.tool} ({o.call.call_id}):"},
                             o.image.langchain_block()]
        if pictures:
            messages.append(HumanMessage(content=pictures))
        return {"messages": messages, "turns": 1, "steps": steps, "regions": regions, "gar": gar, "bad_calls": {}}

    def _check(self, state: PlannerState) -> dict[str, Any]:
        answer = text_of(state["messages"][-1].content)
        known = state.get("regions") or {}
        unknown = [i for i in cited_ids(answer) if i not in known]
        if unknown and state.get("fixes", 0) < 1:
            ids = ", ".join(sorted(known, key=lambda x: int(x[1:]))) or "none"
            fix = load_prompt("planner_fix_ids").render(unknown_ids=", ".join(unknown), known_ids=ids)
            return {"messages": [HumanMessage(fix)], "fixes": 1}
        if not state.get("steps") and not state.get("budget_hit") and state.get("nudges", 0) < 1:
            nudge = load_prompt("planner_use_tools").render(image_id=state["image_id"])
            return {"messages": [HumanMessage(nudge)], "nudges": 1}
        return {}

    def _invoke(self, model: Any, messages: list) -> AIMessage:
        try:
            reply = model.invoke(messages)
        except GARError:
            raise
        except NotImplementedError:
            raise PlannerError(f"planner model {model_name(self.model)} cannot call tools") from None
        except Exception as exc:  # provider SDK errors: connection, auth, rate limit, bad request, timeout
            raise PlannerError(failure_text(self, exc)) from None
        if not isinstance(reply, AIMessage):
            raise PlannerError(f"planner model returned {type(reply).__name__}, expected an AI message")
        return reply

    def _prompt_slots(self) -> int:
        gar = getattr(self.toolkit, "gar", None)
        return int(getattr(gar, "prompt_slots", 5))

    def _zoom_text(self) -> dict[str, str]:
        if "gar_zoom" not in self.tool_names:
            return {"zoom_tool": "", "zoom_step": ""}
        return {"zoom_tool": "\n- gar_zoom(image, region, padding): a zoomed picture of one region with its outline "
                             "drawn, for you to look at yourself.",
                "zoom_step": " Look at doubtful or small regions with gar_zoom when seeing them helps."}


def _unique_id(reply: AIMessage, history: list[AnyMessage]) -> AIMessage:
    """``reply`` with a message id no earlier message has: the state merges messages by id, and some
    servers send the same response id every time (or a client reuses a message object)."""
    if reply.id and all(m.id != reply.id for m in history):
        return reply
    return reply.model_copy(update={"id": f"planner-{uuid.uuid4().hex}"})


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _after_check(state: PlannerState) -> str:
    return "agent" if isinstance(state["messages"][-1], HumanMessage) else END


def _batched(toolkit: Any) -> tuple[Any, Any]:
    """``toolkit`` with its GAR behind a new MicroBatcher (and that batcher), when it is an
    in-process toolkit whose GAR is not batched yet."""
    from gar_tool.gar.batching import MicroBatcher
    from gar_tool.tools.core import GARToolkit

    gar = getattr(toolkit, "gar", None)
    if not isinstance(toolkit, GARToolkit) or gar is None or isinstance(gar, MicroBatcher):
        return toolkit, None
    from gar_tool.integrations.serving import with_batcher

    kit = with_batcher(toolkit, max_batch=16, max_wait=0.02)
    return kit, kit.gar


__all__ = ["Planner", "PlannerError", "PlannerState", "DOUBTFUL_SCORE"]
