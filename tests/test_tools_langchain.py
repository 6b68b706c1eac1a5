"""LangChain tools: schemas, plain invocations, ToolCall → ToolMessage with artifact, errors as messages."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from gar_tool.integrations.langchain import FINAL_HINT, RETRY_HINT, get_tools
from gar_tool.tools import GARToolkit, ImageInputConfig, RelateOutput
from gar_tool.tools.specs import get_spec, input_schema, openai_tools
from tools_support import FakeDetector, FakeGAR, b64, png_bytes, rgb

IMAGE = b64(png_bytes(rgb(40, 50, 3)))
NO_PATHS = ImageInputConfig(allowed_roots=[])


def call(tool: BaseTool, args: dict, call_id: str = "call_1") -> ToolMessage:
    msg = tool.invoke({"type": "tool_call", "id": call_id, "name": tool.name, "args": args})
    assert isinstance(msg, ToolMessage) and msg.tool_call_id == call_id and msg.name == tool.name
    return msg


@pytest.fixture()
def tools():
    det = FakeDetector({"a dog": [([5, 5, 20, 30], 0.8)], "a ball": [([30, 10, 45, 25], 0.7)]})
    return {t.name: t for t in get_tools(gar=FakeGAR(), detector=det, inputs=NO_PATHS)}


def test_tool_set_follows_the_components():
    assert [t.name for t in get_tools(gar=FakeGAR(), inputs=NO_PATHS)] == ["gar_describe", "gar_relate", "gar_measure"]
    assert [t.name for t in get_tools(inputs=NO_PATHS)] == ["gar_measure"]
    assert [t.name for t in get_tools(inputs=NO_PATHS, vision=True)] == ["gar_measure", "gar_zoom"]
    kit = GARToolkit(FakeGAR(), inputs=NO_PATHS)
    (only,) = get_tools(kit, names=["gar_relate"])
    assert only.toolkit is kit and only.response_format == "content_and_artifact"
    with pytest.raises(TypeError, match="either a toolkit or its components"):
        get_tools(kit, gar=FakeGAR())


def test_schemas_are_the_exported_schemas(tools):
    """What LangChain sends a chat model is exactly `gar tools --schema openai` (and the strict form)."""
    for name, t in tools.items():
        assert t.args_schema == input_schema(name) and t.description == get_spec(name).description
        assert convert_to_openai_tool(t) == openai_tools([name])[0]
    (strict,) = get_tools(gar=FakeGAR(), inputs=NO_PATHS, names=["gar_describe"], strict=True)
    assert convert_to_openai_tool(strict, strict=True) == openai_tools(["gar_describe"], strict=True)[0]


def test_plain_invoke_returns_the_content(tools):
    text = tools["gar_describe"].invoke({"image": IMAGE, "region": {"box": [1, 1, 11, 11]}})
    assert isinstance(text, str) and text.startswith("r1 (box [1, 1, 11, 11]) in img_") and text.endswith("region of 100 px")


def test_tool_call_gives_a_tool_message_with_artifact_and_chains(tools):
    msg = call(tools["gar_ground"], {"image": IMAGE, "phrases": "a dog. a ball."})
    assert msg.status == "success" and "Found 2 region(s)" in msg.content
    out = msg.artifact["output"]
    assert msg.artifact["tool"] == "gar_ground" and [r["id"] for r in out["regions"]] == ["r1", "r2"]
    assert out["regions"][0]["rle"]["size"] == [40, 50] and msg.artifact["overlay_png"].startswith(b"\x89PNG")
    rel = call(tools["gar_relate"], {"image": out["image_id"], "regions": ["r2", "r1"],
                                     "question": "Is <Prompt0> near <Prompt1>?"}, "call_2")
    parsed = RelateOutput.model_validate(rel.artifact["output"])
    assert [r.label for r in parsed.regions] == ["a ball", "a dog"] and parsed.answer_with_ids.endswith("Is r2 near r1?")
    meas = call(tools["gar_measure"], {"image": out["image_id"], "regions": ["r1", "r2"]}, "call_3")
    assert meas.artifact["output"]["left_to_right"] == ["r1", "r2"]


@pytest.mark.parametrize("name, args, expected, hint", [
    ("gar_describe", {"image": IMAGE, "region": "r42"}, "region id 'r42' is unknown in this session", RETRY_HINT),
    ("gar_describe", {"image": IMAGE, "region": {"box": [1, 2]}},
     "invalid arguments: region.box: List should have at least 4 items", RETRY_HINT),
    ("gar_describe", {"region": "r1"}, "invalid arguments: input: image: Field required "
     "(or, for a clip: video and track)", RETRY_HINT),
    ("gar_describe", {"image": IMAGE, "region": "r1", "colour": "red"},
     "invalid arguments: colour: Extra inputs are not permitted", RETRY_HINT),
    ("gar_relate", {"image": IMAGE, "regions": [{"box": [0, 0, 5, 5]}], "question": "What is it?"},
     "the question names no region", RETRY_HINT),
    ("gar_describe", {"image": "/etc/passwd", "region": {"box": [0, 0, 5, 5]}}, "image paths are disabled", RETRY_HINT),
    ("gar_ground", {"image": IMAGE, "phrases": "a dog", "box_threshold": 2}, "box_threshold: Input should be less",
     RETRY_HINT),
])
def test_bad_arguments_come_back_as_error_messages(tools, name, args, expected, hint):
    msg = call(tools[name], args)
    assert msg.status == "error" and msg.content.startswith("Error: ") and expected in msg.content
    assert msg.content.endswith(hint)
    assert tools[name].invoke(args).startswith("Error: ")  # plain invoke: the same text, no exception


def test_tool_failures_come_back_as_final_errors():
    (describe,) = get_tools(gar=FakeGAR(fail=RuntimeError("device lost")), inputs=NO_PATHS, names=["gar_describe"])
    msg = call(describe, {"image": IMAGE, "region": {"box": [0, 0, 5, 5]}})
    assert msg.status == "error" and "the model failed (RuntimeError: device lost)" in msg.content
    assert msg.content.endswith(FINAL_HINT)
    (ground,) = get_tools(inputs=NO_PATHS, names=["gar_ground"])
    msg = call(ground, {"image": IMAGE, "phrases": "a dog"})
    assert msg.status == "error" and "no grounding detector" in msg.content


def test_async_invoke_and_overlay_switch():
    (describe,) = get_tools(gar=FakeGAR(), inputs=NO_PATHS, names=["gar_describe"], include_overlay=False)
    msg = asyncio.run(describe.ainvoke({"type": "tool_call", "id": "c9", "name": "gar_describe",
                                        "args": {"image": IMAGE, "region": {"points": [[10, 10]]}}}))
    assert msg.status == "success" and msg.artifact["overlay_png"] is None
    assert msg.artifact["output"]["region"]["source"] == "points-disc"
