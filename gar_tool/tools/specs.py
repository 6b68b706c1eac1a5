"""The tool registry: names, descriptions, input / output models, and schema exports.

Every adapter lists tools from :data:`TOOL_SPECS`, so names and descriptions are identical in
LangChain, MCP, HTTP and ``gar tools --schema``. Exported JSON schemas are *clean*: ``$ref`` /
``$defs`` inlined (the models are not recursive), ``oneOf`` written as ``anyOf``, pydantic's
``title`` keys removed, and in input schemas an optional argument is its plain type (omit it to
get the default) rather than ``anyOf [..., null]``. Output schemas keep ``null`` where a value
can be null, so clients validating ``structuredContent`` accept real results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import BaseModel

from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.schemas import (DescribeInput, DescribeOutput, GroundInput, GroundOutput, MeasureInput, MeasureOutput,
                      RelateInput, RelateOutput)
from gar_tool.tools.video_schemas import TrackInput, TrackOutput


@dataclass(frozen=True)
class ToolSpec:
    """One tool: ``method`` is the :class:`~gar_tool.tools.GARToolkit` method that runs it and
    ``needs`` the component it requires (``"gar"``, ``"detector"``, ``"tracker"`` or None)."""

    name: str
    title: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    method: str
    needs: str | None


_IDS = ("Regions you pass or that are found get ids ('r1', 'r2', ...) and the image an image_id "
        "('img_...'); pass those ids in later calls instead of resending pixels or masks.")

TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "gar_describe", "Describe a region",
        "Describe one region of an image in detail with GAR, a region-level vision-language model that "
        "sees the whole image as context. Give the image and one region: an id such as 'r2' (from "
        "gar_ground or an earlier call) or a box / points / rle / polygon in pixels (origin top-left). "
        "An optional instruction asks something specific about the region instead. For a video, give "
        "video (a clip_id or a path) and track (a track id from gar_track, or per-frame masks) instead of "
        "image and region: GAR sees the sampled frames with the object's mask on each. " + _IDS,
        DescribeInput, DescribeOutput, "describe", "gar"),
    ToolSpec(
        "gar_relate", "Ask about regions",
        "Ask GAR a question about one or several regions of an image: relations, comparisons, "
        "interactions, attributes. List the regions and name them in the question as <Prompt0>, "
        "<Prompt1>, ... in list order, e.g. regions=['r1', 'r3'], question='What is <Prompt0> doing "
        "with <Prompt1>?'. GAR sees at most 5 regions per question (released models); with more, the "
        "question is asked in parts of consecutive regions and each part's answer is returned "
        "separately. For a video, give video and tracks (track ids from gar_track) instead of image and "
        "regions; tracks[i] is <Prompt{i}>, at most 5. " + _IDS,
        RelateInput, RelateOutput, "relate", "gar"),
    ToolSpec(
        "gar_ground", "Find regions by name",
        "Find the regions of an image matching short noun phrases (open-vocabulary detection, masks from "
        "a segmenter when available), e.g. phrases='a dog. a red ball.'. Returns regions with ids, the "
        "phrase each matched (label), detector scores (0-1) and boxes in pixels (x1, y1, x2, y2, origin "
        "top-left). Use the ids with gar_describe, gar_relate and gar_measure. If nothing is found, try "
        "a lower box_threshold or simpler phrases. " + _IDS,
        GroundInput, GroundOutput, "ground", "detector"),
    ToolSpec(
        "gar_measure", "Measure regions",
        "Exact geometry of regions computed from their masks (no model, no guessing): area in pixels "
        "and as a fraction of the image, bounding box and centroid of each region; for every pair, "
        "whether A is left/right of and above/below B (by centroid, with pixel offsets), IoU, overlap "
        "and containment (fraction of A inside B); orderings left-to-right and top-to-bottom. Prefer it "
        "to asking GAR about sizes, positions and counts. " + _IDS,
        MeasureInput, MeasureOutput, "measure", None),
    ToolSpec(
        "gar_track", "Track an object in a video",
        "Follow one object through a video with SAM 2: give the video (a path to a video file or a folder "
        "of frames, or a clip_id), the sampled frame it is on (frame, 0 = first) and the object there as a "
        "box / points / rle / polygon in that frame's pixels, or a phrase to find it. Returns a track id "
        "('t1') with, for every sampled frame, its time, whether the object is there ('given', 'tracked', "
        "'absent') and its mask and box. Pass the track id and clip_id to gar_describe (track=) or "
        "gar_relate (tracks=) to ask GAR about the object over the clip.",
        TrackInput, TrackOutput, "track", "tracker"),
)

_BY_NAME = {s.name: s for s in TOOL_SPECS}
TOOL_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def get_spec(name: str) -> ToolSpec:
    """The spec of tool ``name``; :class:`ToolInputError` listing the tools when unknown."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ToolInputError(f"unknown tool {name!r}; tools are {', '.join(TOOL_NAMES)}")
    return spec


def select_specs(names: Iterable[str] | None = None) -> list[ToolSpec]:
    """Specs of ``names`` in the given order (all tools when None)."""
    return list(TOOL_SPECS) if names is None else [get_spec(n) for n in names]


# --------------------------------------------------------------------------- schema cleaning
def _clean(node: Any, defs: dict[str, Any], inputs: bool) -> Any:
    if isinstance(node, list):
        return [_clean(v, defs, inputs) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _clean(merged, defs, inputs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "title"):
            continue
        if key == "properties":
            out[key] = {name: _property(sub, defs, inputs) for name, sub in value.items()}
        elif key == "oneOf":
            out["anyOf"] = _clean(value, defs, inputs)
        else:
            out[key] = _clean(value, defs, inputs)
    return out


def _property(node: dict[str, Any], defs: dict[str, Any], inputs: bool) -> Any:
    prop = _clean(node, defs, inputs)
    if not inputs or "anyOf" not in prop or prop.get("default", 0) is not None:
        return prop
    branches = [b for b in prop["anyOf"] if b != {"type": "null"}]
    if len(branches) == len(prop["anyOf"]):
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    if len(branches) == 1:
        return {**branches[0], **rest}
    return {"anyOf": branches, **rest}


def clean_schema(schema: dict[str, Any], *, inputs: bool) -> dict[str, Any]:
    """A pydantic JSON schema without ``$ref``/``$defs``/titles (see module docstring)."""
    out = _clean(schema, schema.get("$defs", {}), inputs)
    if inputs:
        out.pop("description", None)  # the tool description says it; parameters stay plain
    return out


def input_schema(name: str) -> dict[str, Any]:
    """Clean JSON schema of tool ``name``'s arguments."""
    return clean_schema(get_spec(name).input_model.model_json_schema(), inputs=True)


def output_schema(name: str) -> dict[str, Any]:
    """Clean JSON schema of tool ``name``'s structured output."""
    return clean_schema(get_spec(name).output_model.model_json_schema(mode="serialization"), inputs=False)


def openai_tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI function-calling tool list: ``[{"type": "function", "function": {...}}, ...]``."""
    return [{"type": "function", "function": {"name": s.name, "description": s.description,
                                              "parameters": input_schema(s.name)}}
            for s in select_specs(names)]


def mcp_tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """MCP ``tools/list`` entries: ``{name, title, description, inputSchema, outputSchema, annotations}``."""
    return [{"name": s.name, "title": s.title, "description": s.description,
             "inputSchema": input_schema(s.name), "outputSchema": output_schema(s.name),
             "annotations": {"title": s.title, "readOnlyHint": True, "destructiveHint": False,
                             "openWorldHint": False}}
            for s in select_specs(names)]


def json_schemas(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Plain list: ``{name, description, input_schema, output_schema}`` per tool."""
    return [{"name": s.name, "description": s.description, "input_schema": input_schema(s.name),
             "output_schema": output_schema(s.name)} for s in select_specs(names)]


__all__ = ["ToolSpec", "TOOL_SPECS", "TOOL_NAMES", "get_spec", "select_specs", "clean_schema",
           "input_schema", "output_schema", "openai_tools", "mcp_tools", "json_schemas"]
