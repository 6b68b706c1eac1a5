"""The planner (``openai:`` specs, the real LangChain ``ChatOpenAI`` client over HTTP) against local
OpenAI-compatible stubs that behave like the servers that showed each interop problem: a server that
offers tools only with ``tool_choice``, one that answers 500 to ``content: null``, one that refuses
tool choices without tools, one that parses the history strictly, grammar-constrained decoders,
strict mode, slow servers, servers returning malformed or id-less tool calls or the same response id."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gar_agents import Planner, PlannerError
from gar_tool.tools import GARToolkit, ImageInputConfig
from gar_tool.tools.specs import openai_tools
from openai_servers import (content_parts_in_user_messages_only, grammar_compiler, history_arguments_are_json,
                            ignores_tools_unless_tool_choice, images_in_user_messages_only, rejects_null_content,
                            rejects_unknown_fields, strict_mode, tool_choice_needs_tools, tool_messages_answer_calls)
from planner_support import OpenAIStub, Refuse, last_tool_text, openai_tool_call, openai_tool_calls
from tools_support import FakeDetector, FakeGAR

IMAGE = (np.random.RandomState(4).rand(240, 320, 3) * 255).astype(np.uint8)
#: Every behaviour at once: what the union of the servers tried accepts.
PICKY = [rejects_null_content, content_parts_in_user_messages_only, images_in_user_messages_only,
         tool_choice_needs_tools, history_arguments_are_json, tool_messages_answer_calls, rejects_unknown_fields,
         grammar_compiler, strict_mode]


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def kit() -> GARToolkit:
    det = FakeDetector({"a cup": [([20, 20, 120, 120], 0.9)], "a spoon": [([150, 40, 300, 90], 0.8)]})
    return GARToolkit(FakeGAR(), det, inputs=ImageInputConfig(allowed_roots=[]))


def ground(body):
    return openai_tool_call("gar_ground", {"image": "x", "phrases": "a cup. a spoon."})


def relate_and_describe(body):
    ids = re.findall(r"\br\d+\b", last_tool_text(body))[:2]
    return openai_tool_calls([("gar_relate", {"image": "x", "regions": ids, "question": "Is <Prompt0> on <Prompt1>?"}),
                              ("gar_describe", {"image": "x", "region": ids[1]}),
                              ("gar_measure", {"image": "x", "regions": ids})], first=1)


def final(body):
    return {"content": "The cup (r1) is left of the spoon (r2)."}


def ask(stub: OpenAIStub, toolkit: GARToolkit | None = None, **kw):
    return Planner(toolkit or kit(), "openai:stub", base_url=stub.base_url, **kw).ask(IMAGE, "Is the cup on the spoon?")


def test_a_picky_server_accepts_every_request_of_a_full_run():
    """Parallel tool calls, null-content assistant turns, a forced answer without tools: each request
    passes every server behaviour, and the run is the planned one."""
    with OpenAIStub([ground, relate_and_describe, final], checks=PICKY) as stub:
        res = ask(stub, max_steps=2)
    assert len(stub.requests) == 3 and stub.answered == 3
    assert [s.tool for s in res.steps] == ["gar_ground", "gar_relate", "gar_describe", "gar_measure"]
    assert all(s.ok for s in res.steps) and [s.turn for s in res.steps] == [1, 2, 2, 2]
    assert res.stopped == "budget" and res.cited == ["r1", "r2"]
    first, last = stub.requests[0], stub.requests[-1]
    assert first["tool_choice"] == "auto" and [t["function"]["name"] for t in first["tools"]] == [
        "gar_describe", "gar_relate", "gar_ground", "gar_measure"]
    assert first["tools"] == openai_tools(["gar_describe", "gar_relate", "gar_ground", "gar_measure"])
    assert "tools" not in last and "tool_choice" not in last  # the forced final answer
    assistant = [m for m in last["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in assistant] == ["", ""]  # never null
    tool_ids = [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"]
    assert tool_ids == ["call_0", "call_1", "call_2", "call_3"]  # every parallel call answered, in order
    assert first["max_tokens"] == 1024 and "max_completion_tokens" not in first


def test_server_that_offers_tools_only_with_tool_choice():
    with OpenAIStub([ignores_tools_unless_tool_choice(r) for r in (ground, final)]) as stub:
        res = ask(stub)
    assert res.stopped == "answer" and [s.tool for s in res.steps] == ["gar_ground"]
    # the failure the issue saw: without tool_choice the same server never calls a tool
    with OpenAIStub([ignores_tools_unless_tool_choice(r) for r in (ground, final)]) as stub:
        res = ask(stub, tool_choice=None)
    assert res.stopped == "no_tools" and res.steps == [] and "without calling any tool" in res.warnings[0]
    assert len(stub.requests) == 2  # the answer, then once more after the reminder to use the tools


def test_answer_without_tools_is_an_error_with_require_tools():
    with OpenAIStub([lambda body: {"content": "A made-up answer."}]) as stub:
        with pytest.raises(PlannerError, match="without calling any tool") as info:
            ask(stub, require_tools=True)
    assert info.value.result.stopped == "error" and info.value.result.answer == ""


def test_null_content_is_never_sent():
    with OpenAIStub([ground, final], checks=[rejects_null_content]) as stub:
        res = ask(stub)
    assert res.stopped == "answer" and stub.answered == 2


def test_slow_server_times_out_with_the_steps_taken():
    slow_second = (lambda n, body: 1.5 if n == 2 else 0.0)
    with OpenAIStub([ground, final], delay=slow_second) as stub:
        with pytest.raises(PlannerError, match=r"did not answer within 0.5 s; raise --planner-timeout") as info:
            ask(stub, timeout=0.5, retries=0)
    partial = info.value.result
    assert partial.stopped == "error" and [s.tool for s in partial.steps] == ["gar_ground"]
    assert set(partial.evidence.regions) == {"r1", "r2"} and len(stub.requests) == 2


def test_retries_resend_a_request_that_timed_out():
    slow_once = (lambda n, body: 1.5 if n == 2 else 0.0)
    with OpenAIStub([ground, final], delay=slow_once) as stub:
        res = ask(stub, timeout=0.5, retries=1)
    assert res.stopped == "answer" and len(stub.requests) == 3  # the second request was sent twice
    assert stub.requests[1]["messages"] == stub.requests[2]["messages"]


def test_grammar_constrained_server_compiles_the_tool_schemas():
    """llama.cpp builds a grammar from each tool schema: large maxLength / maxItems crashed it."""
    with OpenAIStub([ground, final], checks=[grammar_compiler]) as stub:
        assert ask(stub).stopped == "answer"
    with OpenAIStub([ground, final], checks=[grammar_compiler]) as stub:
        ask(stub, strict=True)
    assert all("strict" in t["function"] for t in stub.requests[0]["tools"])


def test_strict_function_calling():
    def strict_ground(body):  # strict mode sends every argument, null for the ones left out
        return openai_tool_call("gar_ground", {"image": "x", "phrases": "a cup.", "box_threshold": None,
                                               "max_regions": None})

    toolkit = kit()
    with OpenAIStub([strict_ground, final], checks=[strict_mode]) as stub:
        res = ask(stub, toolkit, strict=True)
    tools = stub.requests[0]["tools"]
    assert all(t["function"]["strict"] is True for t in tools) and tools == openai_tools(
        [t["function"]["name"] for t in tools], strict=True)
    assert res.steps[0].ok and res.steps[0].args["box_threshold"] is None  # null = the default (0.35)
    assert toolkit.detector.calls[-1]["box_threshold"] == 0.35 and toolkit.detector.calls[-1]["max_regions"] is None


def test_the_server_checks_refuse_what_the_servers_refused():
    """The stub behaviours are not vacuous: the schemas of before (maxLength 4000, optional fields
    not required) and a null assistant content are refused."""
    old = {"type": "function", "function": {"name": "gar_relate", "strict": True, "parameters": {
        "type": "object", "properties": {"question": {"type": "string", "maxLength": 4000}}, "required": []}}}
    with pytest.raises(Refuse, match="maxLength=4000") as info:
        grammar_compiler({"tools": [old]})
    assert info.value.status == 500
    with pytest.raises(Refuse, match="required"):
        strict_mode({"tools": [old]})
    loose = openai_tools(["gar_ground"])
    loose[0]["function"]["strict"] = True
    with pytest.raises(Refuse, match="required"):
        strict_mode({"tools": loose})
    with pytest.raises(Refuse) as info:
        rejects_null_content({"messages": [{"role": "assistant", "content": None, "tool_calls": []}]})
    assert info.value.status == 500
    with pytest.raises(Refuse, match="only allowed when 'tools'"):
        tool_choice_needs_tools({"messages": [], "tool_choice": "auto"})
    with pytest.raises(Refuse, match="not a JSON object"):
        history_arguments_are_json({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{bad"}}]}]})
    with pytest.raises(Refuse, match="must be a response"):
        tool_messages_answer_calls({"messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}]})
    with pytest.raises(Refuse, match="max_completion_tokens"):
        rejects_unknown_fields({"model": "m", "messages": [], "max_completion_tokens": 5})


def test_malformed_tool_calls_from_the_server_become_error_observations():
    def broken(body):
        return openai_tool_calls([("gar_measure", '{"regions": ["r1", "r2"'),    # cut-off JSON
                                  ("gar_describe", "{'region': 'r1'}"),             # single quotes
                                  ("gar_describe", '["r1"]')], first=5)            # not an object

    def recover(body):
        errors = [m["content"] for m in body["messages"] if m["role"] == "tool"][-3:]
        assert all(e.startswith("Error: the call of gar_") and "could not be read" in e for e in errors), errors
        return final(body)

    with OpenAIStub([ground, broken, recover], checks=[history_arguments_are_json, tool_messages_answer_calls]) as stub:
        res = ask(stub)
    assert [(s.tool, s.ok) for s in res.steps] == [("gar_ground", True), ("gar_measure", False),
                                                    ("gar_describe", False), ("gar_describe", False)]
    sent = [m for m in stub.requests[-1]["messages"] if m["role"] == "assistant"][1]
    assert [c["function"]["arguments"] for c in sent["tool_calls"]] == ["{}", "{}", "{}"]
    assert res.stopped == "answer" and stub.answered == 3


def test_tool_calls_without_ids_or_with_repeated_ids_and_a_constant_response_id():
    def no_ids(body):
        msg = openai_tool_call("gar_ground", {"image": "x", "phrases": "a cup. a spoon."})
        del msg["tool_calls"][0]["id"]
        return msg

    def same_ids(body):  # call_0 again, twice in one message
        msg = openai_tool_calls([("gar_describe", {"image": "x", "region": "r1"}),
                                 ("gar_describe", {"image": "x", "region": "r2"})])
        msg["tool_calls"][1]["id"] = "call_0"
        return msg

    with OpenAIStub([no_ids, same_ids, final], checks=[tool_messages_answer_calls, history_arguments_are_json],
                    response_id="chatcmpl-same") as stub:
        res = ask(stub)
    assert [(s.tool, s.ok) for s in res.steps] == [("gar_ground", True), ("gar_describe", True), ("gar_describe", True)]
    assert len({s.call_id for s in res.steps}) == 3 and res.stopped == "answer"
    assistants = [m for m in stub.requests[-1]["messages"] if m["role"] == "assistant"]
    assert len(assistants) == 2  # two replies with the same response id are both kept


def test_tool_calls_in_the_content_of_a_server_without_a_tool_parser():
    def as_text(body):
        return {"content": 'I will ground them.\n<tool_call>\n{"name": "gar_ground", "arguments": '
                           '{"image": "x", "phrases": "a cup. a spoon."}}\n</tool_call>'}

    with OpenAIStub([as_text, final], checks=[tool_messages_answer_calls, rejects_null_content]) as stub:
        res = ask(stub)
    assert [(s.tool, s.ok) for s in res.steps] == [("gar_ground", True)] and res.stopped == "answer"
    sent = [m for m in stub.requests[-1]["messages"] if m["role"] == "assistant"][0]
    assert sent["content"] == "I will ground them." and sent["tool_calls"][0]["function"]["name"] == "gar_ground"


def test_vision_planner_sends_the_zoom_picture_as_a_user_image_part():
    def zoom(body):
        return openai_tool_call("gar_zoom", {"image": "x", "region": "r1"}, 1)

    with OpenAIStub([ground, zoom, final], checks=PICKY) as stub:
        res = ask(stub, vision=True)
    assert res.steps[1].tool == "gar_zoom" and res.steps[1].ok
    msgs = stub.requests[-1]["messages"]
    tool = [m for m in msgs if m["role"] == "tool"][-1]
    assert isinstance(tool["content"], str) and "Zoomed view of r1" in tool["content"]
    picture = msgs[-1]
    assert picture["role"] == "user" and picture["content"][1]["type"] == "image_url"
    assert picture["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "gar_zoom" in [t["function"]["name"] for t in stub.requests[0]["tools"]]


def test_unreachable_planner_endpoint_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    planner = Planner(kit(), "openai:m", base_url=f"http://127.0.0.1:{port}/v1", retries=0)
    with pytest.raises(PlannerError, match=r"failed: \w*ConnectionError: Connection error\.$") as info:
        planner.ask(IMAGE, "Anything?")
    assert info.value.result.steps == []


def test_requests_are_json_all_the_way():
    with OpenAIStub([ground, final]) as stub:
        ask(stub)
    for body in stub.requests:
        json.dumps(body)  # what the server received parses back as plain JSON
        assert body["model"] == "stub" and body["temperature"] == 0.0
