"""Pydantic models of every tool's structured output (``ToolResult.artifact``).

Output schemas keep ``null`` where a value can be null, so clients validating MCP
``structuredContent`` accept real results. Input models are in :mod:`gar_tool.tools.schemas`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gar_tool.tools.schemas import RleMask
from gar_tool.tools.video_schemas import ClipOut, TrackOut


class RegionOut(BaseModel):
    """A region as the tools return it."""

    id: str = Field(description="Region id, e.g. 'r2': pass it to later calls instead of the mask.")
    label: str | None = Field(default=None, description="Phrase the region matched (gar_ground), else null.")
    score: float | None = Field(default=None, description="Detector confidence 0-1 (gar_ground), else null.")
    box: list[float] = Field(description="[x1, y1, x2, y2] bounding box of the mask, pixels, x2/y2 exclusive.")
    area: int = Field(description="Mask area in pixels.")
    source: str = Field(description=(
        "How the mask was made: 'sam' (an object mask from the segmenter), 'box-rect' (just the box's "
        "rectangle), 'points-disc' (discs around clicks), 'rle', 'polygon' or 'mask' (as given)."))
    rle: RleMask = Field(description="The mask as COCO compressed RLE.")


class ImageSize(BaseModel):
    width: int = Field(description="Image width in pixels (as displayed).")
    height: int = Field(description="Image height in pixels (as displayed).")


class DescribeOutput(BaseModel):
    """Result of ``gar_describe`` (``image_id`` + ``region`` for an image, ``clip`` + ``track`` for a video)."""

    image_id: str | None = Field(default=None, description="Id of the image; pass it as 'image' in later calls.")
    region: RegionOut | None = None
    clip: ClipOut | None = None
    track: TrackOut | None = None
    description: str = Field(description="GAR's description of the region.")
    finish_reason: Literal["stop", "length"] = Field(description="'length' = cut at the token limit.")


class PromptBinding(BaseModel):
    prompt: str = Field(description="The visual prompt as GAR saw it, e.g. '<Prompt0>'.")
    region_id: str = Field(description="The region it stands for.")


class RelateChunk(BaseModel):
    """One GAR question of a (possibly chunked) relate call."""

    regions: list[PromptBinding] = Field(description="Which region each <PromptK> of this question is.")
    question: str = Field(description="The question exactly as GAR was asked (chunk-local <PromptK>).")
    answer: str = Field(description="GAR's raw answer (chunk-local <PromptK>).")
    answer_with_ids: str = Field(description="The answer with each <PromptK> replaced by its region id.")
    finish_reason: Literal["stop", "length"]


class RelateOutput(BaseModel):
    """Result of ``gar_relate`` (``image_id`` + ``regions`` for an image, ``clip`` + ``tracks`` for a video)."""

    image_id: str | None = None
    question: str = Field(description="The question as given (global <PromptN> numbering).")
    regions: list[RegionOut] = Field(default_factory=list, description="regions[i] is <Prompti> of the question.")
    clip: ClipOut | None = None
    tracks: list[TrackOut] = Field(default_factory=list, description="For a clip: tracks[i] is <Prompti>.")
    answer: str = Field(description=(
        "The answer, <PromptN> in the question's numbering; when chunked, one line per part."))
    answer_with_ids: str = Field(description="The answer with <PromptN> replaced by region ids.")
    chunked: bool = Field(description=(
        "True when there were more regions than GAR sees at once, so the question was asked in "
        "parts; each part saw only its own regions (see 'chunks')."))
    chunks: list[RelateChunk]


class GroundOutput(BaseModel):
    """Result of ``gar_ground``."""

    image_id: str
    phrases: list[str] = Field(description="The phrases searched for, as parsed.")
    regions: list[RegionOut] = Field(description="Found regions, highest score first (may be empty).")


class RegionGeometry(BaseModel):
    """Exact geometry of one region's mask."""

    id: str
    label: str | None = None
    area_px: int = Field(description="Mask area in pixels.")
    area_fraction: float = Field(description="Mask area / image area (0-1).")
    box: list[float] = Field(description="[x1, y1, x2, y2], pixels, x2/y2 exclusive.")
    centroid: list[float] = Field(description=(
        "[x, y] mean of the mask's pixel centres (pixel (col, row) has centre (col + 0.5, row + 0.5))."))


class PairGeometry(BaseModel):
    """How region ``a`` lies relative to region ``b`` (every unordered pair, in list order)."""

    a: str = Field(description="Region id of A (earlier in the list).")
    b: str = Field(description="Region id of B.")
    horizontal: Literal["left_of", "right_of", "same_x"] = Field(description=(
        "A's centroid relative to B's: 'left_of' when A's centroid x is smaller."))
    vertical: Literal["above", "below", "same_y"] = Field(description=(
        "A's centroid relative to B's: 'above' when A's centroid y is smaller (y grows downward)."))
    dx: float = Field(description="Centroid x of B minus centroid x of A, pixels (> 0: A is left of B).")
    dy: float = Field(description="Centroid y of B minus centroid y of A, pixels (> 0: A is above B).")
    distance: float = Field(description="Distance between the centroids, pixels.")
    intersection_px: int = Field(description="Pixels in both masks.")
    iou: float = Field(description="Intersection over union of the masks (0-1).")
    overlap_fraction: float = Field(description="Intersection / area of the smaller mask (0-1).")
    a_inside_b: float = Field(description="Fraction of A's pixels that are inside B (1 = A within B).")
    b_inside_a: float = Field(description="Fraction of B's pixels that are inside A (1 = B within A).")


class MeasureOutput(BaseModel):
    """Result of ``gar_measure``."""

    image_id: str
    image_size: ImageSize
    regions: list[RegionOut]
    geometry: list[RegionGeometry] = Field(description="Per region, in the order given.")
    pairs: list[PairGeometry] = Field(description="Every pair (A before B in the list).")
    left_to_right: list[str] = Field(description="Region ids by centroid x, smallest first.")
    top_to_bottom: list[str] = Field(description="Region ids by centroid y, smallest (highest) first.")


class ZoomOutput(BaseModel):
    """Result of ``gar_zoom`` (the picture itself is image content of the result, not JSON)."""

    image_id: str
    region: RegionOut
    crop_box: list[int] = Field(description=(
        "[x1, y1, x2, y2] of the crop in the image's pixels (x2/y2 exclusive): the region's box "
        "with the padding, clipped to the image."))
    width: int = Field(description="Width of the returned picture in pixels.")
    height: int = Field(description="Height of the returned picture in pixels.")
    scale: float = Field(description="Picture pixels per image pixel (> 1: enlarged).")
    mime_type: str = Field(description="Media type of the returned picture, e.g. 'image/jpeg'.")


__all__ = ["RegionOut", "ImageSize", "DescribeOutput", "PromptBinding", "RelateChunk", "RelateOutput",
           "GroundOutput", "RegionGeometry", "PairGeometry", "MeasureOutput", "ZoomOutput"]
