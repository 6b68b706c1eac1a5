"""The planner graph, driven by scripted chat models that emit real tool calls, against the tiny
random GAR and Grounding DINO checkpoints (or the fakes). These test orchestration, not intelligence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from gar_agents import AnswerEvent, ErrorEvent, Planner, PlannerError, ToolCallFinished, ToolCallStarted
from gar_tool.gar.batching import MicroBatcher
from gar_tool.tools import GARToolkit, ImageInputConfig, RegionOut
from gar_tool.tools.errors import FINAL_HINT, RETRY_HINT
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from planner_support import ScriptedChatModel, call, ids_in_last_tool_message
from tools_support import FakeDetector, FakeGAR

IMAGE = (np.random.RandomState(3).rand(240, 320, 3) * 255).astype(np.uint8)
NO_PATHS = ImageInputConfig(allowed_roots=[])


@pytest.fixture(scope="module")
def toolkit(tiny_gar, tiny_dino_dir):  # noqa: F811
    from gar_tool.grounding import GroundingDetector

    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=None, device="cpu")
    return GARToolkit(tiny_gar, det, max_new_tokens=3)


def fake_kit(**kw) -> GARToolkit:
    det = FakeDetector({"a cup": [([20, 20, 120, 120], 0.9)], "a spoon": [([150, 40, 300, 90], 0.4)],
                        "a plate": [([10, 150, 310, 230], 0.8)]})
    return GARToolkit(kw.pop("gar", FakeGAR()), det, inputs=NO_PATHS, **kw)


def ground(phrases="a cup. a spoon.", max_regions=None):
    def step(msgs, bound):
        return AIMessage("", tool_calls=[call("gar_ground", image="ignored", phrases=phrases, box_threshold=0.0,
                                              max_regions=max_regions)])
    return step


def answer(text_fn):
    return lambda msgs, bound: AIMessage(text_fn(msgs))


def test_multi_step_plan_with_evidence(toolkit):
    def measure(msgs, bound):
        ids = ids_in_last_tool_message(msgs)[:2]
        return AIMessage("", tool_calls=[call("gar_measure", regions=ids)])

    def relate(msgs, bound):
        ids = ids_in_last_tool_message(msgs)[:2]
        return AIMessage("", tool_calls=[call("gar_relate", regions=ids, question="Is <Prompt0> left of <Prompt1>?"),
                                         call("gar_describe", region=ids[0])])

    def final(msgs, bound):
        relate_msg = [m for m in msgs if isinstance(m, ToolMessage)][-2]  # gar_relate's observation
        ids = ids_in_last_tool_message([relate_msg])
        return AIMessage(f"The cup ({ids[0]}) is left of the spoon ({ids[1]}).")

    model = ScriptedChatModel(steps=[ground(max_regions=2), measure, relate, final])
    with Planner(toolkit, model, max_steps=6) as planner:
        res = planner.ask(IMAGE, "Is the cup left of the spoon?")
    assert res.stopped == "answer" and res.invented == [] and res.warnings == []
    assert [s.tool for s in res.steps] == ["gar_ground", "gar_measure", "gar_relate", "gar_describe"]
    assert [s.turn for s in res.steps] == [1, 2, 3, 3] and [s.index for s in res.steps] == [1, 2, 3, 4]
    assert all(s.ok for s in res.steps)
    assert len(res.cited) == 2 and set(res.cited) <= set(res.evidence.regions)
    assert all(isinstance(r, RegionOut) for r in res.evidence.regions.values())  # typed evidence
    assert [g.tool for g in res.evidence.gar] == ["gar_relate", "gar_describe"]
    assert res.evidence.gar[0].regions == res.cited
    d = res.to_dict()
    assert d["evidence"]["regions"][0]["id"] == res.cited[0] and "rle" in d["evidence"]["regions"][0]
    json.dumps(d)
    assert res.overlay_png.startswith(b"\x89PNG")
    first_ai, tools_bound = model.calls[0]
    assert tools_bound and model.tool_names == ["gar_describe", "gar_relate", "gar_ground", "gar_measure"]
    assert all(s.args["image"] == res.image_id for s in res.steps)


def test_more_than_five_regions_are_chunked(toolkit):
    def relate_all(msgs, bound):
        ids = ids_in_last_tool_message(msgs)
        q = "Which is the largest: " + ", ".join(f"<Prompt{i}>" for i in range(len(ids))) + "?"
        return AIMessage("", tool_calls=[call("gar_relate", regions=ids, question=q)])

    model = ScriptedChatModel(steps=[ground("a cup. a spoon. a plate. a table.", max_regions=7), relate_all,
                                     answer(lambda m: "Compared them all.")])
    res = Planner(toolkit, model).ask(IMAGE, "Which object is largest?")
    relate_step = res.steps[1]
    assert relate_step.tool == "gar_relate" and relate_step.ok
    assert len(relate_step.args["regions"]) == 7
    assert len(res.evidence.gar[0].regions) == 7


def test_failed_calls_are_observations_in_the_adapters_wording():
    bad_json = AIMessage("", invalid_tool_calls=[{"name": "gar_measure", "args": "{regions: [r1", "id": "bad1",
                                                   "error": "Expecting property name", "type": "invalid_tool_call"}])
    steps = [
        ground(),
        AIMessage("", tool_calls=[call("gar_describe", region="r999")]),          # unknown id
        AIMessage("", tool_calls=[call("gar_measure", regions="r1")]),            # wrong type
        AIMessage("", tool_calls=[call("gar_zoom", region="r1")]),                # not offered (no vision)
        bad_json,                                                                  # not JSON
        AIMessage("", tool_calls=[call("gar_relate", regions=["r1"], question="Is it red?")]),  # names no region
        answer(lambda m: "Done."),
    ]
    model = ScriptedChatModel(steps=steps)
    res = Planner(fake_kit(gar=FakeGAR(fail=RuntimeError("device lost"))), model, max_steps=8).ask(IMAGE, "What?")
    oks = [s.ok for s in res.steps]
    assert oks[0] and not any(oks[1:])
    texts = [s.content for s in res.steps[1:]]
    assert all(t.startswith("Error: ") for t in texts)
    assert "region id 'r999' is unknown" in texts[0] and texts[0].endswith(RETRY_HINT)
    assert "invalid arguments: regions: Input should be a valid list" in texts[1]
    assert "there is no tool 'gar_zoom'" in texts[2] and "gar_measure" in texts[2]
    assert "the call of gar_measure could not be read (Expecting property name): '{regions: [r1'" in texts[3]
    assert "the question names no region" in texts[4]
    tool_msgs = [m for m in model.calls[-1][0] if isinstance(m, ToolMessage)]
    assert [m.status for m in tool_msgs] == ["success"] + ["error"] * 5
    assert [m.content for m in tool_msgs[1:]] == texts  # what the model read is what the trace says
    assert res.answer == "Done." and res.stopped == "answer"


def test_model_failure_of_a_tool_is_a_final_error_observation():
    model = ScriptedChatModel(steps=[ground(), AIMessage("", tool_calls=[call("gar_describe", region="r1")]),
                                     answer(lambda m: "The cup is r1.")])
    res = Planner(fake_kit(gar=FakeGAR(fail=RuntimeError("device lost"))), model).ask(IMAGE, "What?")
    assert not res.steps[1].ok and "the model failed (RuntimeError: device lost)" in res.steps[1].content
    assert res.steps[1].content.endswith(FINAL_HINT) and res.warnings == []
    # an answer after nothing but failed calls is flagged
    model = ScriptedChatModel(steps=[AIMessage("", tool_calls=[call("gar_describe", region="r5")]),
                                     answer(lambda m: "A cup.")])
    res = Planner(fake_kit(), model).ask(IMAGE, "What?")
    assert res.stopped == "answer" and res.warnings == ["no tool call of the planner succeeded, so the answer "
                                                        "is not grounded in tool results"]


def test_step_budget_forces_an_answer(toolkit):
    def forever(msgs, bound):
        if not bound:
            return AIMessage("Out of steps: probably a cup (r1).")
        return AIMessage("", tool_calls=[call("gar_ground", phrases="a cup.", box_threshold=0.0, max_regions=1)])

    model = ScriptedChatModel(steps=[forever])
    res = Planner(toolkit, model, max_steps=3).ask(IMAGE, "Is there a cup?")
    assert res.stopped == "budget" and len(res.steps) == 3
    assert model.calls[-1][1] is False  # the last call had no tools bound
    assert "used all 3 tool steps" in str(model.calls[-1][0][-1].content)


def test_hallucinated_region_ids_are_corrected_then_struck(toolkit):
    model = ScriptedChatModel(steps=[ground(max_regions=1), answer(lambda m: "It is r42, next to r1."),
                                     answer(lambda m: "Still r42.")])
    res = Planner(toolkit, model).ask(IMAGE, "What is it?")
    fix_request = model.calls[2][0][-1]
    assert "r42" in str(fix_request.content) and "Rewrite the answer" in str(fix_request.content)
    assert res.invented == ["r42"] and "r42 [no such region]" in res.answer
    assert res.cited == []


def test_parallel_calls_of_one_turn_are_batched_with_the_results_of_one_at_a_time(tiny_gar):
    """Three GAR calls of one reply: one batch through the planner's MicroBatcher, and exactly the
    observations (texts, region ids, evidence) of the same calls made one per reply."""
    from gar_tool import GAR

    boxes = [[20, 20, 120, 120], [150, 40, 300, 90]]
    together = [AIMessage("", tool_calls=[call("gar_describe", region={"box": boxes[0]}),
                                          call("gar_describe", region={"box": boxes[1]}),
                                          call("gar_relate", regions=[{"box": boxes[0]}, {"box": boxes[1]}],
                                               question="Is <Prompt0> near <Prompt1>?")]),
                AIMessage("The cup (r1) is near the spoon (r2).")]
    apart = [AIMessage("", tool_calls=[c]) for c in together[0].tool_calls] + [together[1]]

    def run(steps):
        gar = GAR(tiny_gar.model, tiny_gar.processor)  # its own caches and counters
        planner = Planner(GARToolkit(gar, inputs=NO_PATHS, max_new_tokens=4), ScriptedChatModel(steps=steps))
        try:
            assert isinstance(planner.toolkit.gar, MicroBatcher) and planner.toolkit.gar.gar is gar
            res = planner.ask(IMAGE, "Is the cup near the spoon?")
            return res, planner.toolkit.gar.batches_run
        finally:
            planner.close()

    (res_t, batches_t), (res_a, batches_a) = run(together), run(apart)
    assert batches_t == 1 and batches_a == 3
    assert [s.turn for s in res_t.steps] == [1, 1, 1] and [s.turn for s in res_a.steps] == [1, 2, 3]
    assert [(s.tool, s.ok, s.content) for s in res_t.steps] == [(s.tool, s.ok, s.content) for s in res_a.steps]
    assert res_t.to_dict()["evidence"] == res_a.to_dict()["evidence"] and res_t.cited == ["r1", "r2"]


def test_stream_yields_json_events_as_the_run_goes():
    steps = [ground(), AIMessage("", tool_calls=[call("gar_describe", region="r1"), call("gar_fly"),
                                                 call("gar_measure", regions=["r1", "r2"])]),
             AIMessage("The cup is r1.")]
    planner = Planner(fake_kit(), ScriptedChatModel(steps=steps))
    events = list(planner.stream(IMAGE, "Where is the cup?"))
    kinds = [type(e) for e in events]
    assert kinds == [ToolCallStarted, ToolCallFinished] + [ToolCallStarted] * 3 + [ToolCallFinished] * 3 + [AnswerEvent]
    dicts = [json.loads(json.dumps(e.to_dict())) for e in events]  # every event is JSON-serialisable
    assert [d["type"] for d in dicts][:2] == ["tool_call", "tool_result"] and dicts[-1]["type"] == "answer"
    started = {d["call_id"]: d for d in dicts if d["type"] == "tool_call"}
    finished = [d for d in dicts if d["type"] == "tool_result"]
    assert {d["call_id"] for d in finished} == set(started)
    assert [d["step"] for d in finished[1:]] == [3, 2, 4]  # the unrun call answers first, then in order
    fly = next(d for d in finished if d["tool"] == "gar_fly")
    assert not fly["ok"] and fly["output"] is None and "there is no tool 'gar_fly'" in fly["content"]
    assert finished[0]["output"]["regions"][0]["id"] == "r1" and started[finished[2]["call_id"]]["args"]["image"]
    final = events[-1].result
    assert final.answer == "The cup is r1." and [s.index for s in final.steps] == [1, 2, 3, 4]
    assert dicts[-1]["result"]["steps"][2]["tool"] == "gar_fly"


def test_graph_is_compiled_once_and_runs_do_not_share_state():
    steps = [ground(), AIMessage("The cup is r1."), ground("a plate."), AIMessage("The plate is r3.")]
    planner = Planner(fake_kit(), ScriptedChatModel(steps=steps))
    graph = planner.graph
    first = planner.ask(IMAGE, "Where is the cup?")
    second = planner.ask(IMAGE, "Where is the plate?")
    assert planner.graph is graph
    assert [s.index for s in second.steps] == [1] and second.steps[0].args["phrases"] == "a plate."
    assert set(first.evidence.regions) == {"r1", "r2"} and set(second.evidence.regions) == {"r3"}


def test_checkpointed_runs_keep_their_state_by_thread():
    from langgraph.checkpoint.memory import InMemorySaver

    planner = Planner(fake_kit(), ScriptedChatModel(steps=[ground(), AIMessage("The cup is r1.")]),
                      checkpointer=InMemorySaver())
    res = planner.ask(IMAGE, "Where is the cup?", thread_id="run-1")
    state = planner.graph.get_state({"configurable": {"thread_id": "run-1"}}).values
    assert [s.tool for s in state["steps"]] == ["gar_ground"] and state["image_id"] == res.image_id
    assert set(state["regions"]) == {"r1", "r2"} and isinstance(state["regions"]["r1"], RegionOut)
    assert isinstance(state["messages"][-1], AIMessage) and state["messages"][-1].content == "The cup is r1."


def test_answer_without_tools_is_flagged_after_one_reminder():
    model = ScriptedChatModel(steps=[AIMessage("It is a red cup."), AIMessage("Surely a red cup.")])
    res = Planner(fake_kit(), model).ask(IMAGE, "What is it?")
    assert res.stopped == "no_tools" and res.answer == "Surely a red cup." and res.steps == []
    assert len(res.warnings) == 1 and "without calling any tool" in res.warnings[0]
    reminder = model.calls[1][0][-1]
    assert isinstance(reminder, HumanMessage) and "cannot see the image" in reminder.content
    # once reminded, a planner that uses the tools answers normally
    model = ScriptedChatModel(steps=[AIMessage("A cup."), ground(), AIMessage("The cup is r1.")])
    assert Planner(fake_kit(), model).ask(IMAGE, "What is it?").stopped == "answer"


def test_require_tools_makes_an_answer_without_tools_an_error():
    planner = Planner(fake_kit(), ScriptedChatModel(steps=[AIMessage("A cup.")]), require_tools=True)
    with pytest.raises(PlannerError, match="without calling any tool") as info:
        planner.ask(IMAGE, "What is it?")
    assert info.value.result.stopped == "error" and info.value.result.steps == []


def test_a_planner_failure_keeps_the_steps_taken():
    def broken(msgs, bound):
        raise ConnectionError("server went away")

    planner = Planner(fake_kit(), ScriptedChatModel(steps=[ground(), broken]))
    events = list(planner.stream(IMAGE, "Where is the cup?"))
    assert isinstance(events[-1], ErrorEvent) and "ConnectionError: server went away" in events[-1].message
    partial = events[-1].to_dict()["result"]
    assert partial["stopped"] == "error" and [s["tool"] for s in partial["steps"]] == ["gar_ground"]
    assert {r["id"] for r in partial["evidence"]["regions"]} == {"r1", "r2"}
    with pytest.raises(PlannerError) as info:
        Planner(fake_kit(), ScriptedChatModel(steps=[ground(), broken])).ask(IMAGE, "Where is the cup?")
    assert [s.tool for s in info.value.result.steps] == ["gar_ground"]


def test_an_unexpected_failure_is_one_line_with_the_partial_result(caplog):
    class Broken(GARToolkit):
        def call_many(self, calls, **kw):
            raise ZeroDivisionError()

    det = FakeDetector({"a cup": [([20, 20, 120, 120], 0.9)]})
    planner = Planner(Broken(FakeGAR(), det, inputs=NO_PATHS), ScriptedChatModel(steps=[ground()]))
    (event,) = [e for e in planner.stream(IMAGE, "?") if isinstance(e, ErrorEvent)]
    assert event.message == "the planner failed unexpectedly (ZeroDivisionError: ZeroDivisionError)"
    assert event.result.stopped == "error" and "Traceback" in caplog.text  # the bug stays in the log


def test_tool_calls_written_as_text_are_run():
    text_call = AIMessage('Let me look. <tool_call>{"name": "gar_ground", "arguments": {"phrases": "a cup."}}'
                          '</tool_call>')
    broken = AIMessage("<tool_call>{'name': 'gar_describe', 'arguments': {'region': 'r1'}}</tool_call>")
    model = ScriptedChatModel(steps=[text_call, broken, AIMessage("The cup is r1.")])
    res = Planner(fake_kit(), model).ask(IMAGE, "Where is the cup?")
    assert [(s.tool, s.ok) for s in res.steps] == [("gar_ground", True), ("gar_describe", False)]
    assert "could not be read" in res.steps[1].content and "double quotes" in res.steps[1].content
    sent = model.calls[1][0][2]  # the first reply as the planner keeps it: a real tool call
    assert isinstance(sent, AIMessage) and sent.tool_calls[0]["name"] == "gar_ground" and sent.content == "Let me look."
    assert res.stopped == "answer"


def test_too_many_calls_in_one_reply_are_refused():
    many = AIMessage("", tool_calls=[call("gar_measure", regions=[{"box": [i, i, i + 5, i + 5]}]) for i in range(5)])
    res = Planner(fake_kit(), ScriptedChatModel(steps=[many, AIMessage("Done.")]), max_calls_per_step=3).ask(IMAGE, "?")
    assert [s.ok for s in res.steps] == [True, True, True, False, False]
    assert "more than 3 tool calls in one reply" in res.steps[3].content


def test_vision_planners_get_the_zoom_picture_in_a_user_message():
    steps = [ground(), AIMessage("", tool_calls=[call("gar_zoom", region="r2", padding=0.5)]),
             AIMessage("The spoon (r2) is real.")]
    model = ScriptedChatModel(steps=steps)
    res = Planner(fake_kit(), model, vision=True).ask(IMAGE, "Is the spoon real?")
    assert "gar_zoom" in model.tool_names and res.steps[1].ok
    last = model.calls[-1][0]
    tool_msg, picture = last[-2], last[-1]
    assert isinstance(tool_msg, ToolMessage) and isinstance(tool_msg.content, str) and "Zoomed view of r2" in tool_msg.content
    assert isinstance(picture, HumanMessage) and picture.content[1]["type"] == "image"
    assert picture.content[1]["mime_type"] == "image/jpeg" and len(picture.content[1]["base64"]) > 100
    assert "gar_zoom(image, region, padding)" in str(model.calls[0][0][0].content)  # the system prompt says so


def test_model_without_tool_calling_is_a_clear_error(toolkit):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    with pytest.raises(PlannerError, match="cannot call tools"):
        Planner(toolkit, FakeListChatModel(responses=["hi"]))


@pytest.mark.parametrize("kwargs, message", [
    ({"max_steps": 0}, "max_steps must be an integer >= 1"),
    ({"timeout": 5}, "timeout / retries apply to planner specs"),
    ({"retries": 2}, "timeout / retries apply to planner specs"),
])
def test_bad_planner_options(kwargs, message):
    from gar_tool.errors import InputError

    with pytest.raises(InputError, match=message):
        Planner(fake_kit(), ScriptedChatModel(steps=[AIMessage("x")]), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"timeout": 0}, "planner timeout must be a number of seconds > 0"),
    ({"retries": -1}, "planner retries must be an integer >= 0"),
])
def test_bad_planner_spec_options(kwargs, message):
    from gar_tool.errors import InputError

    with pytest.raises(InputError, match=message):
        Planner(fake_kit(), "openai:m", base_url="http://127.0.0.1:9/v1", **kwargs)
