"""The tool specs: names, descriptions, input / output models, and the schema exports.

Every adapter lists tools from :data:`TOOL_SPECS` and publishes :func:`input_schema` /
:func:`output_schema`, so names, descriptions and schemas are identical in LangChain, MCP, HTTP
and ``gar tools --schema`` (a test compares them). The schemas are made by
:mod:`gar_tool.tools.schema_export`: clean and simple enough for grammar-constrained decoders, and
with ``strict=True`` in the form OpenAI strict function calling requires. The code that runs each
tool is in :mod:`gar_tool.tools.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import BaseModel

from gar_tool.limits import limit
from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.outputs import DescribeOutput, GroundOutput, MeasureOutput, RelateOutput, ZoomOutput
from gar_tool.tools.schema_export import clean_schema, strict_schema
from gar_tool.tools.schemas import DescribeInput, GroundInput, MeasureInput, RelateInput, ZoomInput
from gar_tool.tools.video_schemas import TrackInput, TrackOutput


@dataclass(frozen=True)
class ToolSpec:
    """One tool. ``method`` is its short name: the :class:`~gar_tool.tools.GARToolkit` convenience
    method and the HTTP path ``/v1/<method>`` (tools are run by name through the registry, never
    looked up by this string). ``needs`` is the component it requires (``"gar"``, ``"detector"``,
    ``"tracker"`` or None); ``vision`` marks a tool whose answer is a picture, useful only to a model that sees
    images."""

    name: str
    title: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    method: str
    needs: str | None
    vision: bool = False


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
        "gar_zoom", "Look at a region",
        "Return a zoomed picture of one region (its box plus some context, enlarged, with the region's "
        "outline drawn) for you to look at yourself, if you can see images. Use it to check a doubtful "
        "detection or to read details before asking GAR. Give the image and a region id such as 'r2' "
        "(or a box / points / rle / polygon); padding adds context around it. The picture is at most "
        f"{limit('zoom_side')} pixels on its longer side. " + _IDS,
        ZoomInput, ZoomOutput, "zoom", None, vision=True),
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


def input_schema(name: str, *, strict: bool = False) -> dict[str, Any]:
    """JSON schema of tool ``name``'s arguments (simple; the strict-mode form with ``strict``)."""
    schema = clean_schema(get_spec(name).input_model.model_json_schema(), inputs=True)
    return strict_schema(schema) if strict else schema


def output_schema(name: str) -> dict[str, Any]:
    """Clean JSON schema of tool ``name``'s structured output."""
    return clean_schema(get_spec(name).output_model.model_json_schema(mode="serialization"), inputs=False)


def openai_tools(names: Iterable[str] | None = None, *, strict: bool = False) -> list[dict[str, Any]]:
    """OpenAI function-calling tool list: ``[{"type": "function", "function": {...}}, ...]``; with
    ``strict`` the strict-mode schemas and ``"strict": true`` (OpenAI strict function calling)."""
    out = []
    for s in select_specs(names):
        fn: dict[str, Any] = {"name": s.name, "description": s.description,
                              "parameters": input_schema(s.name, strict=strict)}
        if strict:
            fn["strict"] = True
        out.append({"type": "function", "function": fn})
    return out


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
