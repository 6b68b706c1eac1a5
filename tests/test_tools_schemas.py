"""Tool schemas: wire inputs accepted / refused, clean exported JSON schemas, `gar tools --schema`."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gar_tool.cli import main
from gar_tool.tools.errors import format_validation_error
from gar_tool.tools.schemas import (BoxRegion, DescribeInput, GroundInput, MeasureInput, RelateInput, RleRegion,
                                    region_wire)
from gar_tool.tools.specs import (TOOL_NAMES, get_spec, input_schema, json_schemas, mcp_tools, openai_tools,
                                  output_schema)

IMG = "img_0123456789ab"


@pytest.mark.parametrize("region", [
    "r2", "r10", {"box": [1, 2, 3.5, 4]}, {"points": [[1, 2]]}, {"points": [[1, 2], [3, 4]], "labels": [1, 0]},
    {"rle": {"size": [4, 5], "counts": "abc"}}, {"rle": {"size": [2, 2], "counts": [0, 4]}},
    {"polygon": [[0, 0], [4, 0], [2, 3]]},
])
def test_good_regions(region):
    wire = region_wire(DescribeInput(image=IMG, region=region).region)
    assert wire == region  # numbers compare equal whether int or float


@pytest.mark.parametrize("region, message", [
    ("dog", "region: a region given as a string must be a region id like 'r2'"),
    ("r0", "region id like 'r2'"),
    ({"box": [1, 2, 3]}, "region.box: List should have at least 4 items"),
    ({"box": [1, 2, 3, "x"]}, "region.box.3: Input should be a valid number"),
    ({"box": [0, 0, 2, 2], "points": [[1, 1]]}, "exactly one of the keys box, points, rle, polygon"),
    ({"mask": [[1]]}, "exactly one of the keys"),
    ({"box": [0, 0, 2, 2], "label": "dog"}, "region.label: Extra inputs are not permitted"),
    ({"points": [[1, 2, 3]]}, "region.points.0: List should have at most 2 items"),
    ({"points": [[1, 2]], "labels": [2]}, "region.labels.0: Input should be 0 or 1"),
    ({"polygon": [[0, 0], [1, 1]]}, "region.polygon: List should have at least 3 items"),
    ({"rle": {"size": [4], "counts": "a"}}, "region.rle.size: List should have at least 2 items"),
    (7, "exactly one of the keys"),
])
def test_bad_regions(region, message):
    with pytest.raises(ValidationError) as info:
        DescribeInput(image=IMG, region=region)
    assert message in format_validation_error(info.value)


@pytest.mark.parametrize("model, args, message", [
    (DescribeInput, {"region": "r1"}, "image: Field required"),
    (DescribeInput, {"image": "", "region": "r1"}, "image: String should have at least 1 character"),
    (DescribeInput, {"image": IMG, "region": "r1", "extra": 1}, "extra: Extra inputs are not permitted"),
    (RelateInput, {"image": IMG, "regions": [], "question": "<Prompt0>"}, "regions: List should have at least 1"),
    (RelateInput, {"image": IMG, "regions": ["r1", {"box": [1]}], "question": "q"}, "regions.1.box: List should"),
    (RelateInput, {"image": IMG, "regions": ["r1"] * 33, "question": "q"},
     "regions: 33 regions, more than the limit of 32 (regions_per_call)"),
    (GroundInput, {"image": IMG, "phrases": "a dog", "box_threshold": 1.5}, "box_threshold: Input should be less"),
    (GroundInput, {"image": IMG, "phrases": "a dog", "max_regions": 0}, "max_regions: Input should be greater"),
    (GroundInput, {"image": IMG, "phrases": ["a dog", ""]}, "phrases"),
    (MeasureInput, {"image": IMG, "regions": "r1"}, "regions: Input should be a valid list"),
])
def test_bad_tool_inputs(model, args, message):
    with pytest.raises(ValidationError) as info:
        model.model_validate(args)
    assert message in format_validation_error(info.value)


def test_good_tool_inputs_and_defaults():
    g = GroundInput(image="photo.jpg", phrases=["a dog", "a ball"])
    assert g.box_threshold == 0.35 and g.max_regions is None
    r = RelateInput(image=IMG, regions=["r1", {"box": [0, 0, 5, 5]}], question="Is <Prompt0> on <Prompt1>?")
    assert isinstance(r.regions[1], BoxRegion)
    assert region_wire(r.regions[1]) == {"box": [0.0, 0.0, 5.0, 5.0]}
    assert region_wire(RleRegion(rle={"size": [2, 2], "counts": "04"})) == {"rle": {"size": [2, 2], "counts": "04"}}
    assert MeasureInput.model_validate({"image": IMG, "regions": [{"points": [[1, 1]]}]}).regions[0].labels is None


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}/{i}")


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_exported_schemas_are_clean(name):
    for schema, inputs in ((input_schema(name), True), (output_schema(name), False)):
        assert schema["type"] == "object" and "$defs" not in schema
        for path, key, value in _walk(schema):
            assert key not in ("$ref", "oneOf", "$defs"), (path, key)
            if key == "title":
                assert path.endswith("/properties"), path  # only a property *named* title
            if inputs and key == "anyOf":
                assert {"type": "null"} not in value, path  # optional inputs are plain types
    params = input_schema(name)
    assert params["additionalProperties"] is False
    for prop in params["properties"].values():
        assert prop.get("description"), prop  # every argument explains itself to the LLM
    if name in ("gar_describe", "gar_relate"):  # an image and regions, or a video and tracks
        assert {"image", "video"} <= set(params["properties"]) and "image" not in params.get("required", [])
    elif name == "gar_track":
        assert params["required"] == ["video"]
    else:
        assert "image" in params["required"]


def test_region_schema_lists_all_wire_forms():
    region = input_schema("gar_describe")["properties"]["region"]
    kinds = [b.get("type") if b.get("type") == "string" else next(iter(b["properties"])) for b in region["anyOf"]]
    assert kinds == ["string", "box", "points", "rle", "polygon"]
    assert "Pixels, origin top-left" in region["description"]


def test_openai_and_mcp_formats():
    tools = openai_tools()
    assert [t["function"]["name"] for t in tools] == list(TOOL_NAMES)
    assert all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in tools)
    mcp = mcp_tools(["gar_ground"])
    assert list(mcp[0]) == ["name", "title", "description", "inputSchema", "outputSchema", "annotations"]
    import mcp.types as mcp_types

    for entry in mcp_tools():
        mcp_types.Tool.model_validate(entry)
    assert [s["name"] for s in json_schemas()] == list(TOOL_NAMES)


@pytest.mark.parametrize("kind", ["openai", "openai-strict", "mcp", "json"])
def test_cli_prints_valid_json(capsys, kind):
    assert main(["tools", "--schema", kind]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert err == "" and len(data) == len(TOOL_NAMES)
    expected = {"openai": openai_tools(), "openai-strict": openai_tools(strict=True), "mcp": mcp_tools(),
                "json": json_schemas()}[kind]
    assert data == json.loads(json.dumps(expected))


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_input_schemas_are_simple_for_grammar_constrained_decoders(name):
    from openai_servers import grammar_problems

    assert grammar_problems(input_schema(name)) == []
    assert grammar_problems(input_schema(name, strict=True)) == []
    # the bounds dropped from the schema are still enforced, and stated for the LLM to read
    assert grammar_problems({"properties": {"q": {"type": "string", "maxLength": 4000}}}) == ["maxLength=4000"]


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_strict_schemas_follow_openai_strict_mode_and_validate_what_it_sends(name):
    from openai_servers import strict_problems

    strict = input_schema(name, strict=True)
    assert strict_problems(strict) == [] and strict_problems(input_schema(name)) != []
    assert set(strict["required"]) == set(input_schema(name)["properties"])  # every property, nullable if optional
    (fn,) = [t["function"] for t in openai_tools([name], strict=True)]
    assert fn["strict"] is True and fn["parameters"] == strict
    # strict mode sends every argument, null for those the model leaves out: that must validate
    model = get_spec(name).input_model
    values = {"image": IMG, "region": "r1", "regions": ["r1"], "question": "Is <Prompt0> red?", "phrases": "a dog",
              "video": "clip_0123456789ab", "frame": 0}
    given = {"gar_describe": ["image", "region"], "gar_relate": ["image", "regions", "question"],
             "gar_track": ["video", "region"]}.get(name, input_schema(name).get("required", []))
    if name == "gar_track":
        values["region"] = {"box": [0, 0, 5, 5]}  # a track starts from a prompt on the frame, not an id
    args = {k: (values[k] if k in given else None) for k in strict["required"]}
    from gar_tool.tools.unit import _nulls_as_defaults

    validated = model.model_validate(_nulls_as_defaults(model, args))  # as the tools validate arguments
    for k in strict["required"]:
        if k not in given:
            assert getattr(validated, k) == model.model_fields[k].default  # null means the default


def test_one_schema_for_every_adapter(capsys):
    """LangChain (what ChatOpenAI sends), MCP tools/list, the HTTP OpenAPI request bodies and
    `gar tools --schema` publish the same schemas."""
    import anyio
    from mcp import Client

    from gar_tool.integrations.http.server import create_app
    from gar_tool.integrations.langchain import get_tools
    from gar_tool.integrations.mcp import create_server
    from gar_tool.tools import GARToolkit, ImageInputConfig
    from gar_agents.models import make_chat_model
    from langchain_core.messages import HumanMessage
    from tools_support import FakeDetector, FakeGAR

    kit = GARToolkit(FakeGAR(), FakeDetector({}), inputs=ImageInputConfig(allowed_roots=[]))
    names = kit.available_tools()
    assert names == [n for n in TOOL_NAMES if n != "gar_track"]  # (gar_track needs a video tracker)
    expected = {n: input_schema(n) for n in names}

    assert main(["tools", "--schema", "openai"]) == 0
    cli = {t["function"]["name"]: t["function"]["parameters"] for t in json.loads(capsys.readouterr().out)
           if t["function"]["name"] in names}

    chat = make_chat_model("openai:m", base_url="http://127.0.0.1:9/v1")
    bound = chat.bind_tools(get_tools(kit, vision=True))
    sent = chat._get_request_payload([HumanMessage("q")], **bound.kwargs)["tools"]
    langchain = {t["function"]["name"]: t["function"]["parameters"] for t in sent}
    assert [t["function"]["description"] for t in sent] == [get_spec(n).description for n in names]

    async def listed():
        async with Client(create_server(kit)) as client:
            return (await client.list_tools()).tools
    mcp = {t.name: t.input_schema for t in anyio.run(listed)}

    paths = create_app(kit).openapi()["paths"]
    http = {n: paths[f"/v1/{get_spec(n).method}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            for n in names}
    for source in (cli, langchain, mcp, http):
        assert source == expected


def test_cli_tool_filter_and_bad_choice(capsys):
    assert main(["tools", "--schema", "openai", "--tool", "gar_measure", "--indent", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and [t["function"]["name"] for t in json.loads(out)] == ["gar_measure"]
    with pytest.raises(SystemExit) as info:
        main(["tools", "--schema", "yaml"])
    assert info.value.code == 2
