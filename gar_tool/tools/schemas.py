"""Pydantic models of every tool's input and output: the one wire format of all adapters.

Conventions (repeated in the field descriptions, which an LLM reads):

* Coordinates are image pixels, origin at the top-left corner, x to the right, y down, of the
  image *as displayed* (EXIF orientation applied). Boxes are ``[x1, y1, x2, y2]`` with ``x2`` /
  ``y2`` exclusive (a mask covering pixel columns 3..7 has ``x1 = 3``, ``x2 = 8``).
* An image is one string: a file path, a ``data:image/...;base64,`` URI, raw base64, an
  ``image_id`` (``"img_" + 12 hex``, returned by every tool) or, when enabled, an http(s) URL.
* A region is a region id (``"r2"``, returned by the tools) or one dict with exactly one of
  ``box``, ``points`` (+ optional ``labels``), ``rle``, ``polygon``.
* Output regions are :class:`RegionOut` (id, label, score, box, area, source, COCO RLE mask);
  the output models live in :mod:`gar_tool.tools.outputs` and are re-exported here.
* ``gar_describe`` / ``gar_relate`` also take a ``video`` and ``track`` / ``tracks`` instead of an
  image and regions (:mod:`gar_tool.tools.video_schemas`).

Input models forbid unknown keys, so a misspelt argument is an error rather than silently ignored.
Sizes (string lengths, list lengths) are bounded by :data:`gar_tool.limits.LIMITS` in validation
(:mod:`gar_tool.tools.bounds`), not in the JSON schema, which stays simple enough for
grammar-constrained decoders. Optional arguments also accept ``null`` (= their default), which is
what OpenAI strict function calling sends for an argument the model leaves out.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from gar_tool.limits import limit
from gar_tool.tools.bounds import check_count, list_bound, text_bound

REGION_ID_RE = re.compile(r"^r[1-9][0-9]*$")
IMAGE_ID_RE = re.compile(r"^img_[0-9a-f]{12}$")

#: Most regions one relate / measure call accepts (relate chunks them, see ``relate_chunks``).
MAX_REGIONS_PER_CALL = limit("regions_per_call")

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
    description="Id of a region returned by an earlier call, e.g. 'r2'.")]


def _default_if_none(default: Any) -> BeforeValidator:
    """``null`` → ``default`` (strict function calling sends null for an omitted argument)."""
    return BeforeValidator(lambda v: default if v is None else v)

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
    points: Annotated[list[Point], list_bound("points_per_region", "send fewer points")] = Field(
        min_length=1, description="Click points [[x, y], ...] in pixels, origin top-left.")
    labels: Annotated[list[Literal[0, 1]] | None, list_bound("points_per_region", "one label per point")] = Field(
        default=None, description="One per point: 1 = on the object, 0 = not on it (background). Default: all 1.")


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
    polygon: Annotated[list[Point], list_bound("polygon_vertices", "simplify the polygon")] = Field(
        min_length=3, description="Vertices [[x, y], ...] in pixels, origin top-left, at least 3.")


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


_REGIONS_BOUND = list_bound("regions_per_call", "split the regions over several calls")

# Video forms of gar_describe / gar_relate (defined there: they use RegionInput and RleMask above).
from gar_tool.tools.video_schemas import FrameCount, TrackRef, VideoRef  # noqa: E402


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


def _check_phrases(value: Any) -> Any:
    """The phrases as the detector will read them: at most ``phrases_per_call`` of at most
    ``phrase_chars`` characters (the string or list itself is kept)."""
    from gar_tool.errors import InputError
    from gar_tool.grounding.phrases import parse_phrases

    try:
        parsed = parse_phrases(value)
    except InputError as exc:
        raise PydanticCustomError("phrases", "{reason}", {"reason": str(exc)}) from None
    check_count("phrases_per_call", parsed, "phrases", "ground fewer phrases per call")
    for phrase in parsed:
        if len(phrase) > limit("phrase_chars"):
            raise PydanticCustomError(
                "limit", "the phrase '{start}...' has {count} characters, more than the limit of {lim} "
                "(phrase_chars); use short noun phrases",
                {"start": phrase[:30], "count": len(phrase), "lim": limit("phrase_chars")})
    return value


# --------------------------------------------------------------------------- tool inputs
class DescribeInput(BaseModel):
    """Arguments of ``gar_describe``: an image and a region, or a video and a track."""

    model_config = _STRICT
    image: ImageRef | None = None
    region: RegionInput | None = None
    video: VideoRef | None = None
    track: TrackRef | None = None
    frames: FrameCount | None = None
    instruction: Annotated[str | None, text_bound("instruction_chars")] = Field(default=None, description=(
        "Optional instruction replacing the default 'Describe this masked region in detail.', e.g. "
        "'What is written on this sign?'. Refer to the region as 'this masked region'. "
        f"At most {limit('instruction_chars')} characters."))

    @model_validator(mode="after")
    def _one_input(self) -> "DescribeInput":
        return _image_or_video(self, "region", "track")


class RelateInput(BaseModel):
    """Arguments of ``gar_relate``: an image and regions, or a video and tracks."""

    model_config = _STRICT
    image: ImageRef | None = None
    regions: Annotated[list[RegionInput] | None, _REGIONS_BOUND] = Field(default=None, min_length=1, description=(
        "The regions the question is about, in order: regions[0] is <Prompt0>, regions[1] is "
        "<Prompt1>, and so on. Each item is a region id ('r2') or a box / points / rle / polygon dict. "
        f"At most {MAX_REGIONS_PER_CALL}."))
    video: VideoRef | None = None
    tracks: Annotated[list[TrackRef] | None, _REGIONS_BOUND] = Field(default=None, min_length=1, description=(
        "For a clip instead of regions: the tracks the question is about, in order: tracks[0] is "
        "<Prompt0>, ... (track ids from gar_track, or {'frames': [rle or 'absent', ...]}). At most 5."))
    frames: FrameCount | None = None
    question: Annotated[str, text_bound("question_chars")] = Field(min_length=1, description=(
        "The question, naming every region (or track) as <Prompt0>, <Prompt1>, ... in list order, "
        "e.g. 'Is <Prompt0> holding <Prompt1>?'. Each must be named at least once. "
        f"At most {limit('question_chars')} characters."))

    @model_validator(mode="after")
    def _one_input(self) -> "RelateInput":
        return _image_or_video(self, "regions", "tracks")


class GroundInput(BaseModel):
    """Arguments of ``gar_ground``."""

    model_config = _STRICT
    image: ImageRef
    phrases: Annotated[Union[str, list[Annotated[str, Field(min_length=1)]]], AfterValidator(_check_phrases)] = Field(
        description=(
            "What to find: short noun phrases separated by '.', e.g. 'a dog. a red ball.', or a list "
            "['a dog', 'a red ball']. Each found region is labelled with the phrase it matched. "
            f"At most {limit('phrases_per_call')} phrases of {limit('phrase_chars')} characters."))
    box_threshold: Annotated[float, _default_if_none(0.35)] = Field(default=0.35, ge=0.0, le=1.0, description=(
        "Keep detections scoring above this (0-1). Lower it (e.g. 0.25) if nothing is found."))
    max_regions: int | None = Field(default=None, ge=1, le=100, description=(
        "Keep at most this many regions (1-100), highest scores first. Default: all above the threshold."))


class MeasureInput(BaseModel):
    """Arguments of ``gar_measure``."""

    model_config = _STRICT
    image: ImageRef
    regions: Annotated[list[RegionInput], _REGIONS_BOUND] = Field(min_length=1, description=(
        "Regions to measure: region ids ('r2') or box / points / rle / polygon dicts. "
        f"At most {MAX_REGIONS_PER_CALL}."))


class ZoomInput(BaseModel):
    """Arguments of ``gar_zoom``."""

    model_config = _STRICT
    image: ImageRef
    region: RegionInput
    padding: Annotated[float, _default_if_none(0.25)] = Field(default=0.25, ge=0.0, le=2.0, description=(
        "Context around the region, as a fraction of its box's width / height added on each side "
        "(0-2; 0 = just the box, 0.25 = default, 1 = a box three times as large)."))


_OUTPUTS = ("RegionOut", "ImageSize", "DescribeOutput", "PromptBinding", "RelateChunk", "RelateOutput",
            "GroundOutput", "RegionGeometry", "PairGeometry", "MeasureOutput", "ZoomOutput")


def __getattr__(name: str) -> Any:
    """The output models, re-exported from :mod:`gar_tool.tools.outputs` (imported lazily: that
    module imports this one)."""
    if name in _OUTPUTS:
        from gar_tool.tools import outputs

        return getattr(outputs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REGION_ID_RE", "IMAGE_ID_RE", "MAX_REGIONS_PER_CALL", "RegionInput", "ImageRef",
           "BoxRegion", "PointsRegion", "RleMask", "RleRegion", "PolygonRegion", "region_wire",
           "DescribeInput", "RelateInput", "GroundInput", "MeasureInput", "ZoomInput",
           # outputs (gar_tool.tools.outputs), re-exported
           "RegionOut", "ImageSize", "DescribeOutput", "PromptBinding", "RelateChunk", "RelateOutput",
           "GroundOutput", "RegionGeometry", "PairGeometry", "MeasureOutput", "ZoomOutput"]
