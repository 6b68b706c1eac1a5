"""Pydantic models of every tool's input and output: the one wire format of all adapters.

Conventions (repeated in the field descriptions, which an LLM reads):

* Coordinates are image pixels, origin at the top-left corner, x to the right, y down, of the
  image *as displayed* (EXIF orientation applied). Boxes are ``[x1, y1, x2, y2]`` with ``x2`` /
  ``y2`` exclusive (a mask covering pixel columns 3..7 has ``x1 = 3``, ``x2 = 8``).
* An image is one string: a file path, a ``data:image/...;base64,`` URI, raw base64, an
  ``image_id`` (``"img_" + 12 hex``, returned by every tool) or, when enabled, an http(s) URL.
* A region is a region id (``"r2"``, returned by the tools) or one dict with exactly one of
  ``box``, ``points`` (+ optional ``labels``), ``rle``, ``polygon``.
* Output regions are :class:`RegionOut` (id, label, score, box, area, source, COCO RLE mask).
* ``gar_describe`` / ``gar_relate`` also take a ``video`` and ``track`` / ``tracks`` instead of an
  image and regions (:mod:`gar_tool.tools.video_schemas`).

Input models forbid unknown keys, so a misspelt argument is an error rather than silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

REGION_ID_RE = re.compile(r"^r[1-9][0-9]*$")
IMAGE_ID_RE = re.compile(r"^img_[0-9a-f]{12}$")

#: Most regions one relate / measure call accepts (relate chunks them, see ``relate_chunks``).
MAX_REGIONS_PER_CALL = 32

IMAGE_DESCRIPTION = (
    "The image, as one string: an image_id returned by an earlier call (e.g. 'img_3f2a9c01be47'; "
    "cheapest, use it whenever you have one), a file path on the tool's machine, a "
    "'data:image/png;base64,...' URI, raw base64 of the file, or an http(s) URL if the tool allows "
    "URLs. Region coordinates refer to this image as displayed: pixels, origin top-left.")

REGION_DESCRIPTION = (
    "One region: a region id from an earlier call (e.g. 'r2'), or exactly one of "
    "{'box': [x1, y1, x2, y2]}, {'points': [[x, y], ...], 'labels': [1, ...]}, "
    "{'rle': {'size': [height, width], 'counts': '...'}}, {'polygon': [[x, y], ...]}. "
    "Pixels, origin top-left. New regions get ids in the result.")

_STRICT = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- regions (input)
def _check_region_id(value: str) -> str:
    if not REGION_ID_RE.match(value):
        raise PydanticCustomError(
            "region_id", "a region given as a string must be a region id like 'r2' (got '{value}'); "
                         "for new regions pass a dict with box, points, rle or polygon",
            {"value": value[:40]})
    return value


RegionId = Annotated[str, AfterValidator(_check_region_id), Field(
    json_schema_extra={"pattern": REGION_ID_RE.pattern},
    description="Id of a region returned by an earlier call, e.g. 'r2'.")]

Number = float
Point = Annotated[list[Number], Field(min_length=2, max_length=2, description="[x, y] in pixels")]


class BoxRegion(BaseModel):
    """A box prompt (becomes an object mask when the tool has a segmenter, else its rectangle)."""

    model_config = _STRICT
    box: list[Number] = Field(min_length=4, max_length=4, description=(
        "[x1, y1, x2, y2] in pixels, origin top-left, x1 < x2, y1 < y2, inside the image."))


class PointsRegion(BaseModel):
    """Click points (an object mask with a segmenter, else small discs around positive points)."""

    model_config = _STRICT
    points: list[Point] = Field(min_length=1, max_length=64, description=(
        "Click points [[x, y], ...] in pixels, origin top-left."))
    labels: list[Literal[0, 1]] | None = Field(default=None, description=(
        "One per point: 1 = on the object, 0 = not on it (background). Default: all 1."))


class RleMask(BaseModel):
    """A mask as COCO run-length encoding (column-major, compressed string)."""

    model_config = _STRICT
    size: list[Annotated[int, Field(ge=1)]] = Field(min_length=2, max_length=2, description=(
        "[height, width] of the image in pixels."))
    counts: Union[str, list[Annotated[int, Field(ge=0)]]] = Field(description=(
        "COCO compressed RLE string (as pycocotools writes it); a list of run lengths is also accepted."))


class RleRegion(BaseModel):
    """An exact mask as COCO RLE (e.g. copied from an earlier result's 'rle')."""

    model_config = _STRICT
    rle: RleMask


class PolygonRegion(BaseModel):
    """A closed polygon, filled."""

    model_config = _STRICT
    polygon: list[Point] = Field(min_length=3, description=(
        "Vertices [[x, y], ...] in pixels, origin top-left, at least 3."))


_REGION_KEYS = ("box", "points", "rle", "polygon")
_REGION_MODELS = {"box": BoxRegion, "points": PointsRegion, "rle": RleRegion, "polygon": PolygonRegion}


def _region_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "region_id"
    if isinstance(value, dict):
        found = [k for k in _REGION_KEYS if k in value]
        return found[0] if len(found) == 1 else None
    for kind, model in _REGION_MODELS.items():
        if isinstance(value, model):
            return kind
    return None


RegionInput = Annotated[
    Union[Annotated[RegionId, Tag("region_id")], Annotated[BoxRegion, Tag("box")],
          Annotated[PointsRegion, Tag("points")], Annotated[RleRegion, Tag("rle")],
          Annotated[PolygonRegion, Tag("polygon")]],
    Discriminator(_region_kind, custom_error_type="region",
                  custom_error_message="a region must be a region id like 'r2' or a dict with exactly one "
                                       "of the keys box, points, rle, polygon"),
    Field(description=REGION_DESCRIPTION)]

ImageRef = Annotated[str, Field(min_length=1, description=IMAGE_DESCRIPTION)]


def region_wire(region: Any) -> str | dict:
    """A validated :data:`RegionInput` → the plain form :func:`gar_tool.regions.forms.coerce_region`
    accepts (a region id string, or a dict without ``None`` values)."""
    if isinstance(region, str):
        return region
    return region.model_dump(exclude_none=True)


# Video forms of gar_describe / gar_relate (defined there: they use RegionInput and RleMask above).
from gar_tool.tools.video_schemas import ClipOut, FrameCount, TrackOut, TrackRef, VideoRef  # noqa: E402


def _image_or_video(inp: Any, region_field: str, track_field: str) -> Any:
    """Exactly one of (image + ``region_field``) or (video + ``track_field``)."""
    picture = inp.image is not None or getattr(inp, region_field) is not None
    clip = inp.video is not None or getattr(inp, track_field) is not None or inp.frames is not None
    if picture and clip:
        raise PydanticCustomError("image_or_video", "give either image and {r} (a picture) or video and {t} "
                                  "(a clip), not both", {"r": region_field, "t": track_field})
    if clip:
        if inp.video is None or getattr(inp, track_field) is None:
            raise PydanticCustomError("image_or_video", "a clip needs both video and {t}", {"t": track_field})
    elif inp.image is None or getattr(inp, region_field) is None:
        missing = " and ".join(f for f in ("image", region_field) if getattr(inp, f) is None)
        raise PydanticCustomError("image_or_video", "{m}: Field required (or, for a clip: video and {t})",
                                  {"m": missing, "t": track_field})
    return inp


# --------------------------------------------------------------------------- tool inputs
class DescribeInput(BaseModel):
    """Arguments of ``gar_describe``: an image and a region, or a video and a track."""

    model_config = _STRICT
    image: ImageRef | None = None
    region: RegionInput | None = None
    video: VideoRef | None = None
    track: TrackRef | None = None
    frames: FrameCount | None = None
    instruction: str | None = Field(default=None, max_length=2000, description=(
        "Optional instruction replacing the default 'Describe this masked region in detail.', e.g. "
        "'What is written on this sign?'. Refer to the region as 'this masked region'."))

    @model_validator(mode="after")
    def _one_input(self) -> "DescribeInput":
        return _image_or_video(self, "region", "track")


class RelateInput(BaseModel):
    """Arguments of ``gar_relate``: an image and regions, or a video and tracks."""

    model_config = _STRICT
    image: ImageRef | None = None
    regions: list[RegionInput] | None = Field(default=None, min_length=1, max_length=MAX_REGIONS_PER_CALL, description=(
        "The regions the question is about, in order: regions[0] is <Prompt0>, regions[1] is "
        "<Prompt1>, and so on. Each item is a region id ('r2') or a box / points / rle / polygon dict."))
    video: VideoRef | None = None
    tracks: list[TrackRef] | None = Field(default=None, min_length=1, max_length=MAX_REGIONS_PER_CALL, description=(
        "For a clip instead of regions: the tracks the question is about, in order: tracks[0] is "
        "<Prompt0>, ... (track ids from gar_track, or {'frames': [rle or 'absent', ...]}). At most 5."))
    frames: FrameCount | None = None
    question: str = Field(min_length=1, max_length=4000, description=(
        "The question, naming every region (or track) as <Prompt0>, <Prompt1>, ... in list order, "
        "e.g. 'Is <Prompt0> holding <Prompt1>?'. Each must be named at least once."))

    @model_validator(mode="after")
    def _one_input(self) -> "RelateInput":
        return _image_or_video(self, "regions", "tracks")


class GroundInput(BaseModel):
    """Arguments of ``gar_ground``."""

    model_config = _STRICT
    image: ImageRef
    phrases: Union[str, list[Annotated[str, Field(min_length=1)]]] = Field(description=(
        "What to find: short noun phrases separated by '.', e.g. 'a dog. a red ball.', or a list "
        "['a dog', 'a red ball']. Each found region is labelled with the phrase it matched."))
    box_threshold: float = Field(default=0.35, ge=0.0, le=1.0, description=(
        "Keep detections scoring above this (0-1). Lower it (e.g. 0.25) if nothing is found."))
    max_regions: int | None = Field(default=None, ge=1, le=100, description=(
        "Keep at most this many regions, highest scores first. Default: all above the threshold."))


class MeasureInput(BaseModel):
    """Arguments of ``gar_measure``."""

    model_config = _STRICT
    image: ImageRef
    regions: list[RegionInput] = Field(min_length=1, max_length=MAX_REGIONS_PER_CALL, description=(
        "Regions to measure: region ids ('r2') or box / points / rle / polygon dicts."))


# --------------------------------------------------------------------------- outputs
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


__all__ = ["REGION_ID_RE", "IMAGE_ID_RE", "MAX_REGIONS_PER_CALL", "RegionInput", "ImageRef",
           "BoxRegion", "PointsRegion", "RleMask", "RleRegion", "PolygonRegion", "region_wire",
           "DescribeInput", "RelateInput", "GroundInput", "MeasureInput", "RegionOut", "ImageSize",
           "DescribeOutput", "PromptBinding", "RelateChunk", "RelateOutput", "GroundOutput",
           "RegionGeometry", "PairGeometry", "MeasureOutput"]
