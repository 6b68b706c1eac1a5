"""Planner model specs and the in-process transformers chat model with tool calling."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from gar_agents.hf_chat import LocalHFChatModel, parse_tool_calls, to_chat_dicts
from gar_agents.models import make_chat_model
from chat_fixtures import build_tiny_chat_model
from gar_tool.errors import InputError


@pytest.mark.parametrize("text, names, args, rest", [
    ('<tool_call>{"name": "gar_ground", "arguments": {"phrases": "a cup"}}</tool_call>',
     ["gar_ground"], [{"phrases": "a cup"}], ""),
    ('Let me look.\n<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", '
     '"arguments": "{\\"x\\": 1}"}</tool_call>', ["a", "b"], [{}, {"x": 1}], "Let me look."),
    ('{"name": "gar_measure", "parameters": {"regions": ["r1"]}}', ["gar_measure"], [{"regions": ["r1"]}], ""),
    ('[TOOL_CALLS] [{"name": "gar_describe", "arguments": {"region": "r2"}}]', ["gar_describe"],
     [{"region": "r2"}], ""),
    ('<tool_call>{"name": "broken", "arguments": {</tool_call>', [], [], None),
    ("The cup is red (r1).", [], [], "The cup is red (r1)."),
])
def test_parse_tool_calls(text, names, args, rest):
    content, calls = parse_tool_calls(text)
    assert [c["name"] for c in calls] == names and [c["args"] for c in calls] == args
    assert all(c["id"].startswith("call_") for c in calls)
    if rest is not None:
        assert content == rest
    else:
        assert "broken" in content  # malformed calls stay visible text, never an invented call


def test_chat_dicts_keep_tool_turns():
    msgs = [SystemMessage("sys"), HumanMessage("q"),
            AIMessage("", tool_calls=[{"name": "t", "args": {"a": 1}, "id": "c1"}]),
            ToolMessage("result", tool_call_id="c1", name="t")]
    d = to_chat_dicts(msgs)
    assert [m["role"] for m in d] == ["system", "user", "assistant", "tool"]
    assert d[2]["tool_calls"][0]["function"] == {"name": "t", "arguments": {"a": 1}}


@pytest.mark.parametrize("spec, message", [
    ("gpt-4o", "PROVIDER:MODEL"), ("cohere:command", "unknown planner provider"), ("openai:", "PROVIDER:MODEL"),
])
def test_bad_specs(spec, message):
    with pytest.raises(InputError, match=message):
        make_chat_model(spec)


def test_openai_spec_needs_a_key_or_a_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        make_chat_model("openai:gpt-4o-mini")
    m = make_chat_model("openai:local-model", base_url="http://127.0.0.1:9/v1")
    assert m.model_name == "local-model" and str(m.openai_api_base).startswith("http://127.0.0.1:9")
    assert make_chat_model("ollama:qwen2.5").openai_api_base.endswith(":11434/v1")


def test_local_hf_model_renders_tools_and_generates(tmp_path):
    directory = build_tiny_chat_model(tmp_path / "chat")
    model = make_chat_model(f"hf:{directory}", max_tokens=5)
    assert isinstance(model, LocalHFChatModel)

    @tool
    def gar_measure(regions: list[str]) -> str:
        """Measure regions."""
        return "ok"

    bound = model.bind_tools([gar_measure])
    out = bound.invoke([SystemMessage("plan"), HumanMessage("Where is the cup?")])
    assert isinstance(out, AIMessage) and isinstance(out.content, str)
    prompt = model._tok.apply_chat_template(to_chat_dicts([HumanMessage("hi")]),
                                            tools=[{"type": "function", "function": {"name": "gar_measure"}}],
                                            tokenize=False, add_generation_prompt=True)
    assert "gar_measure" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_local_hf_model_missing_is_a_clear_error(tmp_path):
    from gar_tool.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="planner model"):
        make_chat_model(f"hf:{tmp_path / 'nothing'}").invoke("hi")
