"""The planner graph, driven by scripted chat models that emit real tool calls, against the tiny
random GAR and Grounding DINO checkpoints. These test orchestration, not intelligence."""

from __future__ import annotations

import re

import numpy as np
import pytest
from langchain_core.messages import AIMessage, ToolMessage

from gar_agents import Planner, PlannerError
from gar_tool.tools import GARToolkit
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from planner_support import OpenAIStub, ScriptedChatModel, call, ids_in_last_tool_message, last_tool_text, \
    openai_tool_call

IMAGE = (np.random.RandomState(3).rand(240, 320, 3) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def toolkit(tiny_gar, tiny_dino_dir):  # noqa: F811
    from gar_tool.grounding import GroundingDetector

    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=None, device="cpu")
    return GARToolkit(tiny_gar, det, max_new_tokens=3)


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
        ids = [m for m in ids_in_last_tool_message(msgs)][:2]
        return AIMessage("", tool_calls=[call("gar_relate", regions=ids, question="Is <Prompt0> left of <Prompt1>?"),
                                         call("gar_describe", region=ids[0])])

    def final(msgs, bound):
        relate_msg = [m for m in msgs if isinstance(m, ToolMessage)][-2]  # gar_relate's observation
        ids = ids_in_last_tool_message([relate_msg])
        return AIMessage(f"The cup ({ids[0]}) is left of the spoon ({ids[1]}).")

    model = ScriptedChatModel(steps=[ground(max_regions=2), measure, relate, final])
    res = Planner(toolkit, model, max_steps=6).ask(IMAGE, "Is the cup left of the spoon?")
    assert res.stopped == "answer" and res.invented == []
    assert [s.tool for s in res.steps] == ["gar_ground", "gar_measure", "gar_relate", "gar_describe"]
    assert all(s.ok for s in res.steps)
    assert len(res.cited) == 2 and set(res.cited) <= set(res.evidence.regions)
    assert [g.tool for g in res.evidence.gar] == ["gar_relate", "gar_describe"]
    assert res.evidence.gar[0].regions == res.cited
    d = res.to_dict()
    assert d["evidence"]["regions"][0]["id"] == res.cited[0] and "rle" in d["evidence"]["regions"][0]
    assert res.overlay_png.startswith(b"\x89PNG")
    # every tool call the model made was answered, with the run's image forced in
    first_ai, tools_bound = model.calls[0]
    assert tools_bound and "gar_ground" in model.tool_names
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


def test_tool_errors_and_malformed_arguments_are_observations(toolkit):
    bad_json = AIMessage("", invalid_tool_calls=[{"name": "gar_measure", "args": "{regions: [r1", "id": "bad1",
                                                   "error": "Expecting property name", "type": "invalid_tool_call"}])

    def recover(msgs, bound):
        ids = ids_in_last_tool_message(msgs)
        return AIMessage("", tool_calls=[call("gar_describe", region=ids[0] if ids else "r1")])

    steps = [
        ground(max_regions=2),
        AIMessage("", tool_calls=[call("gar_describe", region="r999")]),          # unknown id
        AIMessage("", tool_calls=[call("gar_measure", regions="r1")]),            # wrong type
        AIMessage("", tool_calls=[call("gar_zoom", region="r1")]),                # no such tool
        bad_json,                                                                  # not JSON
        lambda msgs, bound: AIMessage("", tool_calls=[call("gar_measure", regions=[])]),
        answer(lambda m: "Done."),
    ]
    model = ScriptedChatModel(steps=steps)
    res = Planner(toolkit, model, max_steps=8).ask(IMAGE, "What is there?")
    oks = [s.ok for s in res.steps]
    assert oks[0] and not any(oks[1:])
    assert "r999" in res.steps[1].content and "retry" in res.steps[1].content
    assert "no tool 'gar_zoom'" in res.steps[3].content
    assert "not valid JSON" in res.steps[4].content
    tool_msgs = [m for m, _ in model.calls[-1:] for m in m if isinstance(m, ToolMessage)]
    assert any(m.status == "error" for m in tool_msgs)
    assert res.answer == "Done." and res.stopped == "answer"


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


def test_model_without_tool_calling_is_a_clear_error(toolkit):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    with pytest.raises(PlannerError, match="cannot call tools"):
        Planner(toolkit, FakeListChatModel(responses=["hi"]))


def test_planner_over_http_against_an_openai_compatible_stub(toolkit, monkeypatch):
    """The openai: spec with a base URL, for real over HTTP on 127.0.0.1."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def first(body):
        assert any(t["function"]["name"] == "gar_ground" for t in body["tools"])
        return openai_tool_call("gar_ground", {"image": "x", "phrases": "a cup.", "box_threshold": 0.0,
                                               "max_regions": 2})

    def second(body):
        ids = re.findall(r"\br\d+\b", last_tool_text(body))
        return openai_tool_call("gar_relate", {"image": "x", "regions": ids[:2],
                                               "question": "Is <Prompt0> above <Prompt1>?"}, 1)

    def final(body):
        ids = sorted(set(re.findall(r"\br\d+\b", last_tool_text(body))))
        return {"content": f"Yes: {ids[0]} is above {ids[1]}."}

    with OpenAIStub([first, second, final]) as stub:
        res = Planner(toolkit, "openai:stub-model", base_url=stub.base_url).ask(IMAGE, "Is the cup above?")
        assert len(stub.requests) == 3 and stub.requests[0]["model"] == "stub-model"
        assert stub.requests[1]["messages"][-1]["role"] == "tool"
    assert res.stopped == "answer" and len(res.cited) == 2
    assert [s.tool for s in res.steps] == ["gar_ground", "gar_relate"]


def test_unreachable_planner_endpoint_is_a_clear_error(toolkit, monkeypatch):
    import socket

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    planner = Planner(toolkit, "openai:m", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(PlannerError, match=r"failed: \w*ConnectionError: Connection error\.$"):
        planner.ask(IMAGE, "Anything?")
