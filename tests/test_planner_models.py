"""Planner model specs, tool calls written as text, the OpenAI wire normalisation, and the
in-process transformers chat model with tool calling."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from chat_fixtures import build_tiny_chat_model
from gar_agents.hf_chat import LocalHFChatModel, to_chat_dicts
from gar_agents.models import make_chat_model
from gar_agents.openai_compat import CompatChatOpenAI, is_openai_host, normalise_message, split_bad_calls
from gar_agents.replies import normalise_reply
from gar_agents.toolcall_text import parse_tool_calls
from gar_tool.errors import InputError
from gar_tool.tools.specs import openai_tools

GROUND = '{"name": "gar_ground", "arguments": {"phrases": "a cup"}}'


@pytest.mark.parametrize("text, calls, content", [
    (f"<tool_call>{GROUND}</tool_call>", [("gar_ground", {"phrases": "a cup"})], ""),
    (f"<tool_call>\n{GROUND}\n", [("gar_ground", {"phrases": "a cup"})], ""),                 # no closing tag
    ('Let me look.\n<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", '
     '"arguments": "{\\"x\\": 1}"}</tool_call>', [("a", {}), ("b", {"x": 1})], "Let me look."),
    ('{"name": "gar_measure", "parameters": {"regions": ["r1"]}}', [("gar_measure", {"regions": ["r1"]})], ""),
    (f"I will ground them first: {GROUND} and then relate.", [("gar_ground", {"phrases": "a cup"})],
     "I will ground them first: and then relate."),                                        # text before the JSON
    ('[TOOL_CALLS] [{"name": "gar_describe", "arguments": {"region": "r2"}}]', [("gar_describe", {"region": "r2"})], ""),
    ('[TOOL_CALLS]gar_describe[ARGS]{"region": "r2"}', [("gar_describe", {"region": "r2"})], ""),
    ('<function=gar_measure>{"regions": ["r1"]}</function>', [("gar_measure", {"regions": ["r1"]})], ""),
    ('<|python_tag|>{"name": "gar_measure", "parameters": {"regions": ["r1"]}}', [("gar_measure", {"regions": ["r1"]})], ""),
    (f"```json\n{GROUND}\n```", [("gar_ground", {"phrases": "a cup"})], ""),
    ('[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"y": 2}}]', [("a", {}), ("b", {"y": 2})], ""),
    ('{"type": "function", "function": {"name": "gar_zoom", "arguments": "{\\"region\\": \\"r1\\"}"}}',
     [("gar_zoom", {"region": "r1"})], ""),
    ("The cup is red (r1).", [], "The cup is red (r1)."),
    ('The answer is {"type": "cup", "colour": "red"}.', [], 'The answer is {"type": "cup", "colour": "red"}.'),
])
def test_well_formed_calls_in_text(text, calls, content):
    out = parse_tool_calls(text)
    assert [(c["name"], c["args"]) for c in out.calls] == calls and out.invalid == []
    assert out.content == content
    assert all(c["id"].startswith("call_") for c in out.calls) and len({c["id"] for c in out.calls}) == len(calls)


@pytest.mark.parametrize("text, name, error, content", [
    ('<tool_call>{"name": "gar_ground", "arguments": {</tool_call>', "gar_ground", "not valid JSON", ""),
    ("<tool_call>{'name': 'gar_ground', 'arguments': {'phrases': 'a cup'}}</tool_call>", "gar_ground",
     "JSON needs double quotes", ""),
    ("{'name': 'gar_ground', 'arguments': {'phrases': 'a cup'}}", "gar_ground", "double quotes", ""),
    ('Sure! {"name": "gar_ground", "arguments": {"phrases": "a cup"}', "gar_ground", "not valid JSON", "Sure!"),
    ('{"name": "gar_ground", "arguments": {"phrases": "a"},}', "gar_ground", "not valid JSON", ""),  # trailing comma
    ('{"name": "gar_ground", "arguments": "{bad"}', "gar_ground", "arguments of gar_ground are not valid JSON", ""),
    ('{"name": "gar_ground", "arguments": [1, 2]}', "gar_ground", "must be a JSON object, got list", ""),
    ('<tool_call>{"arguments": {"phrases": "a"}}</tool_call>', None, 'has no "name"', ""),
    ('[TOOL_CALLS] [{"name": "gar_describe", "arguments": {"region": "r2"}', "gar_describe", "not valid JSON", ""),
])
def test_malformed_calls_are_invalid_calls_not_the_answer(text, name, error, content):
    out = parse_tool_calls(text)
    assert out.calls == [] and len(out.invalid) == 1
    bad = out.invalid[0]
    assert bad["name"] == name and error in bad["error"] and bad["type"] == "invalid_tool_call"
    assert out.content == content and isinstance(bad["args"], str) and bad["args"]


def test_replies_are_made_safe_to_send_back():
    history = [AIMessage("", tool_calls=[{"name": "gar_ground", "args": {}, "id": "call_0"}])]
    reply = AIMessage("", tool_calls=[{"name": "gar_describe", "args": {"region": "r1"}, "id": "call_0"},
                                      {"name": "gar_describe", "args": {"region": "r2"}, "id": None}],
                      invalid_tool_calls=[{"name": None, "args": "{oops", "id": "call_9", "error": "bad JSON",
                                           "type": "invalid_tool_call"}])
    fixed, bad = normalise_reply(reply, history, parse_text=True)
    ids = [c["id"] for c in fixed.tool_calls]
    assert len(set(ids)) == 3 and "call_0" not in ids and ids[2] == "call_9"  # repeated and missing ids replaced
    assert [c["name"] for c in fixed.tool_calls] == ["gar_describe", "gar_describe", "unnamed_tool"]
    assert fixed.tool_calls[2]["args"] == {} and fixed.invalid_tool_calls == []
    assert [(b.call_id, b.raw, b.error) for b in bad] == [("call_9", "{oops", "bad JSON")]
    plain = AIMessage("The cup is r1.")
    assert normalise_reply(plain, history, parse_text=True) == (plain, [])


def test_openai_messages_are_normalised_for_every_server():
    assistant = normalise_message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": {"x": 1}}}]})
    assert assistant["content"] == "" and [c["function"]["arguments"] for c in assistant["tool_calls"]] == ["{}", '{"x": 1}']
    tool = normalise_message({"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "one"},
                                                                               {"type": "text", "text": "two"}]})
    assert tool["content"] == "one\ntwo"
    user = {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}]}
    assert normalise_message(dict(user)) == user  # user content parts (images) stay parts
    assert is_openai_host(None) and is_openai_host("https://api.openai.com/v1")
    assert not is_openai_host("http://127.0.0.1:8000/v1") and not is_openai_host("https://openai.com.evil.net/v1")


def test_request_payload_for_a_local_server():
    model = make_chat_model("openai:local", base_url="http://127.0.0.1:9/v1", max_tokens=77)
    assert isinstance(model, CompatChatOpenAI)
    bound = model.bind_tools(openai_tools(["gar_measure"]), tool_choice="auto")
    payload = model._get_request_payload([HumanMessage("q"), AIMessage("", tool_calls=[
        {"name": "gar_measure", "args": {"regions": ["r1"]}, "id": "c1"}]), ToolMessage("ok", tool_call_id="c1")],
        **bound.kwargs)
    assert payload["max_tokens"] == 77 and "max_completion_tokens" not in payload
    assert payload["tool_choice"] == "auto" and payload["tools"] == openai_tools(["gar_measure"])
    assert payload["messages"][1]["content"] == "" and payload["messages"][2] == {
        "role": "tool", "tool_call_id": "c1", "content": "ok"}
    openai = make_chat_model("openai:gpt-4o-mini", api_key="sk-test")._get_request_payload([HumanMessage("q")])
    assert "max_completion_tokens" in openai  # api.openai.com gets OpenAI's own field


def test_malformed_calls_in_a_reply_are_split_off():
    msg = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "gar_measure", "arguments": '{"regions": ["r1"]}'}},
        {"id": "2", "type": "function", "function": {"name": "gar_measure", "arguments": "[1]"}},
        {"id": "3", "type": "function", "function": {"arguments": "{}"}},
        {"id": "4", "type": "function", "function": {"name": "gar_zoom", "arguments": {"region": "r1"}}}]}
    bad = split_bad_calls(msg)
    assert [c["id"] for c in msg["tool_calls"]] == ["1", "4"] and msg["tool_calls"][1]["function"]["arguments"] == \
        '{"region": "r1"}'
    assert [(b["id"], b["name"]) for b in bad] == [("2", "gar_measure"), ("3", None)]
    assert "must be a JSON object, got list" in bad[0]["error"] and "no function name" in bad[1]["error"]


def test_chat_dicts_keep_tool_turns():
    msgs = [SystemMessage("sys"), HumanMessage("q"),
            AIMessage("", tool_calls=[{"name": "t", "args": {"a": 1}, "id": "c1"}]),
            ToolMessage("result", tool_call_id="c1", name="t")]
    d = to_chat_dicts(msgs)
    assert [m["role"] for m in d] == ["system", "user", "assistant", "tool"]
    assert d[2]["tool_calls"][0]["function"] == {"name": "t", "arguments": {"a": 1}}


@pytest.mark.parametrize("spec, kwargs, message", [
    ("gpt-4o", {}, "PROVIDER:MODEL"), ("cohere:command", {}, "unknown planner provider"), ("openai:", {}, "PROVIDER:MODEL"),
    ("openai:m", {"base_url": "http://127.0.0.1:9/v1", "timeout": -1}, "timeout must be a number of seconds > 0"),
    ("openai:m", {"base_url": "http://127.0.0.1:9/v1", "retries": 1.5}, "retries must be an integer >= 0"),
])
def test_bad_specs(spec, kwargs, message):
    with pytest.raises(InputError, match=message):
        make_chat_model(spec, **kwargs)


def test_openai_spec_needs_a_key_or_a_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        make_chat_model("openai:gpt-4o-mini")
    m = make_chat_model("openai:local-model", base_url="http://127.0.0.1:9/v1", timeout=7.5, retries=3)
    assert m.model_name == "local-model" and str(m.openai_api_base).startswith("http://127.0.0.1:9")
    assert m.request_timeout == 7.5 and m.max_retries == 3
    default = make_chat_model("ollama:qwen2.5")
    assert default.openai_api_base.endswith(":11434/v1") and default.request_timeout == 120.0


class _ScriptedLM:
    """Stands in for the transformers model inside LocalHFChatModel: ``generate`` appends the token
    ids of a fixed text to the prompt and records its keyword arguments."""

    def __init__(self, tok, *texts):
        import torch

        self.device = torch.device("cpu")
        self.replies = [torch.tensor([tok.encode(t, add_special_tokens=False)]) for t in texts]
        self.seen = {}
        self.n = 0

    def generate(self, input_ids, attention_mask=None, **kw):
        import torch

        self.seen = {"prompt_len": input_ids.shape[1], **kw}
        ids = self.replies[min(self.n, len(self.replies) - 1)]
        self.n += 1
        return torch.cat([input_ids, ids], dim=1)


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("chat") / "chat")


def test_local_hf_model_turns_generated_text_into_calls(chat_dir):
    model = make_chat_model(f"hf:{chat_dir}", max_tokens=40, timeout=9)
    assert isinstance(model, LocalHFChatModel) and model.max_time == 9
    model._load()
    bound = model.bind_tools(openai_tools(["gar_measure", "gar_ground"]))
    model._lm = _ScriptedLM(model._tok, "Looking. <tool_call>{\"name\": \"gar_measure\", \"arguments\": "
                                        "{\"regions\": [\"r1\"]}}</tool_call><tool_call>{'name': 'gar_ground'}")
    out = bound.invoke([SystemMessage("plan"), HumanMessage("Where is the cup?")])
    assert out.content == "Looking." and [(c["name"], c["args"]) for c in out.tool_calls] == [
        ("gar_measure", {"regions": ["r1"]})]
    assert [c["name"] for c in out.invalid_tool_calls] == ["gar_ground"]  # single quotes: an invalid call
    assert model._lm.seen["max_new_tokens"] == 40 and model._lm.seen["max_time"] == 9
    model._lm = _ScriptedLM(model._tok, "The cup (r1) is on the left.")
    plain = model.invoke([HumanMessage("Where is the cup?")])  # no tools bound: text stays text
    assert plain.content == "The cup (r1) is on the left." and plain.tool_calls == []


@pytest.mark.parametrize("malformed", [
    "<tool_call>{'name': 'gar_ground', 'arguments': {'phrases': 'a cup'}}</tool_call>",     # single quotes
    '<tool_call>{"name": "gar_ground", "arguments": {"phrases": "a cup"}',                  # no closing brace / tag
    'I will look first. {"name": "gar_ground", "arguments": {"phrases": "a cup",}}',        # text, then bad JSON
])
def test_hf_planner_reads_a_malformed_call_as_an_error_not_the_answer(chat_dir, malformed):
    import numpy as np

    from gar_agents import Planner
    from gar_tool.tools import GARToolkit, ImageInputConfig
    from tools_support import FakeDetector, FakeGAR

    model = make_chat_model(f"hf:{chat_dir}", max_tokens=60)
    model._load()
    model._lm = _ScriptedLM(model._tok, malformed,
                            '<tool_call>{"name": "gar_ground", "arguments": {"phrases": "a cup"}}</tool_call>',
                            "The cup is r1.")
    kit = GARToolkit(FakeGAR(), FakeDetector({"a cup": [([5, 5, 30, 30], 0.9)]}),
                     inputs=ImageInputConfig(allowed_roots=[]))
    res = Planner(kit, model).ask(np.zeros((40, 50, 3), np.uint8), "Where is the cup?")
    assert [(s.tool, s.ok) for s in res.steps] == [("gar_ground", False), ("gar_ground", True)]
    assert res.steps[0].content.startswith("Error: the call of gar_ground could not be read (")
    assert res.answer == "The cup is r1." and res.stopped == "answer" and res.cited == ["r1"]


def test_local_hf_model_renders_tools_and_generates_greedily(chat_dir):
    import torch

    model = make_chat_model(f"hf:{chat_dir}", max_tokens=5)
    tools = openai_tools(["gar_measure"])
    bound = model.bind_tools(tools)
    msgs = [SystemMessage("plan"), HumanMessage("Where is the cup?")]
    out = bound.invoke(msgs)
    prompt = model._tok.apply_chat_template(to_chat_dicts(msgs), tools=tools, tokenize=False, add_generation_prompt=True)
    assert json.dumps(tools[0]) in prompt and prompt.endswith("<|im_start|>assistant\n")
    ids = model._tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        gen = model._lm.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=model._tok.pad_token_id)
    text = model._tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    expected = parse_tool_calls(text)
    assert out.content == expected.content and 1 <= gen.shape[1] - ids["input_ids"].shape[1] <= 5


def test_local_hf_model_missing_is_a_clear_error(tmp_path):
    from gar_tool.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="planner model"):
        make_chat_model(f"hf:{tmp_path / 'nothing'}").invoke("hi")
