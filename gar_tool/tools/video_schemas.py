"""Wire models of the video tools: clips, tracks, ``gar_track``, and the video forms of
``gar_describe`` / ``gar_relate``.

Conventions (repeated in the field descriptions, which an LLM reads):

* A video is one string: a ``clip_id`` (``"vid_"`` + 12 hex, returned by every video call) or a
  path on the tool's machine to a video file or a folder of frames (under the allowed
  directories). ``frames`` uniformly sampled frames are used (default 16); frames are addressed by
  their index in the clip (``0 .. frames-1``), which every result lists with its time.
* A track is a track id (``"t1"``, from ``gar_track`` or an earlier call) or
  ``{"frames": [rle | "absent", ...]}`` with one COCO RLE mask (or ``"absent"`` / null: not visible)
  per sampled frame.
* Masks are COCO RLE of the frame as displayed; pixels, origin top-left; boxes
  ``[x1, y1, x2, y2]`` with ``x2`` / ``y2`` exclusive.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from gar_tool.limits import limit
from gar_tool.tools.schemas import RegionInput, RleMask

CLIP_ID_RE = re.compile(r"^vid_[0-9a-f]{12}$")
TRACK_ID_RE = re.compile(r"^t[1-9][0-9]*$")
DEFAULT_FRAMES = 16

VIDEO_DESCRIPTION = (
    "The video, as one string: a clip_id returned by an earlier call (e.g. 'vid_3f2a9c01be47'; use it "
    "whenever you have one: the same sampled frames), or a path on the tool's machine to a video file "
    "(.mp4, .mov, .mkv, .webm, ...) or a folder of frames. Frames are addressed by their index in the "
    "clip (0 = first sampled frame); results list each frame's time in seconds.")
TRACK_DESCRIPTION = (
    "An object through the clip: a track id from gar_track or an earlier call (e.g. 't1'), or "
    "{'frames': [rle or 'absent', ...]} with one COCO RLE mask per sampled frame ('absent' = not visible).")
FRAMES_DESCRIPTION = (f"How many frames to sample uniformly from a video path (1-{limit('clip_frames')}, default "
                      f"{DEFAULT_FRAMES}); ignored for a clip_id, which keeps its frames.")

_STRICT = ConfigDict(extra="forbid")


def _check_track_id(value: str) -> str:
    if not TRACK_ID_RE.match(value):
        raise PydanticCustomError("track_id", "a track given as a string must be a track id like 't1' (got "
                                  "'{value}'); for your own masks pass {{'frames': [rle or 'absent', ...]}}",
                                  {"value": value[:40]})
    return value


TrackId = Annotated[str, AfterValidator(_check_track_id), Field(
    json_schema_extra={"pattern": TRACK_ID_RE.pattern}, description="Id of a track, e.g. 't1'.")]
VideoRef = Annotated[str, Field(min_length=1, description=VIDEO_DESCRIPTION)]
FrameCount = Annotated[int, Field(ge=1, le=limit("clip_frames"), description=FRAMES_DESCRIPTION)]


def _nulls_to_absent(value: Any) -> Any:
    return [("absent" if v is None else v) for v in value] if isinstance(value, list) else value


class TrackFrames(BaseModel):
    """A track given as masks: one per sampled frame ('absent' — or null — where not visible)."""

    model_config = _STRICT
    frames: Annotated[list[Union[RleMask, Literal["absent"]]], BeforeValidator(_nulls_to_absent)] = Field(
        min_length=1, max_length=limit("clip_frames"), description=(
            "One COCO RLE mask per sampled frame of the clip, in order; 'absent' where the object is not visible."))


TrackRef = Annotated[Union[TrackId, TrackFrames], Field(description=TRACK_DESCRIPTION)]


class TrackInput(BaseModel):
    """Arguments of ``gar_track``."""

    model_config = _STRICT
    video: VideoRef
    frame: int = Field(default=0, ge=0, description=(
        "The sampled frame (0-based) the region or phrase is on. Default 0, the first."))
    region: RegionInput | None = Field(default=None, description=(
        "The object on that frame: {'box': [x1, y1, x2, y2]}, {'points': [[x, y], ...], 'labels': [...]}, "
        "{'rle': {...}} or {'polygon': [...]}, pixels of the frame, origin top-left. Give region or phrase."))
    phrase: str | None = Field(default=None, min_length=1, max_length=limit("phrase_chars"), description=(
        "Or: a short noun phrase ('the red car') found on that frame by the detector; the best match is "
        "tracked."))
    frames: FrameCount = DEFAULT_FRAMES
    box_threshold: float = Field(default=0.35, ge=0.0, le=1.0, description=(
        "With a phrase: keep detections scoring above this (0-1)."))

    @model_validator(mode="after")
    def _one_prompt(self) -> "TrackInput":
        if (self.region is None) == (self.phrase is None):
            raise ValueError("give exactly one of region (a box / points / rle / polygon on the frame) or "
                             "phrase (a noun phrase to find on the frame)")
        if isinstance(self.region, str):
            raise ValueError("region ids ('r2') belong to images; give the object on the frame as a box, "
                             "points, rle or polygon")
        return self


# --------------------------------------------------------------------------- outputs
class FrameOut(BaseModel):
    """One sampled frame of a track."""

    frame: int = Field(description="Index of the sampled frame in the clip.")
    time: float | None = Field(description="Its time in seconds from the start of the video (null: unknown).")
    source_index: int = Field(description="Its index among all the frames of the video.")
    state: Literal["given", "tracked", "absent", "unknown"] = Field(description=(
        "'given' (your mask or prompt), 'tracked' (the tracker's mask), 'absent' (not visible there), "
        "'unknown' (nothing known: no tracker ran)."))
    box: list[float] | None = Field(description="[x1, y1, x2, y2] of the mask, pixels, x2/y2 exclusive; null if none.")
    area: int = Field(description="Mask area in pixels (0 if none).")
    score: float | None = Field(description="Tracker confidence 0-1 that the object is visible (null: not tracked).")
    rle: RleMask | None = Field(description="The mask as COCO RLE (null if none).")


class TrackOut(BaseModel):
    """A track as the tools return it."""

    id: str = Field(description="Track id, e.g. 't1': pass it to gar_describe / gar_relate with the clip_id.")
    label: str | None = Field(default=None, description="The phrase it was found by, if any.")
    summary: str = Field(description="Frames per state, e.g. 'given: #0; tracked: #1-#14; absent: #15'.")
    frames: list[FrameOut]


class ClipOut(BaseModel):
    """The sampled frames of a video."""

    clip_id: str = Field(description="Id of the clip: pass it as 'video' in later calls.")
    source: str = Field(description="The video it was sampled from.")
    frames: int = Field(description="Number of sampled frames.")
    source_frames: int = Field(description="Number of frames of the video.")
    fps: float | None = Field(description="The video's frame rate (null: unknown, e.g. a frame folder).")
    times: list[float | None] = Field(description="Time in seconds of each sampled frame.")


class TrackOutput(BaseModel):
    """Result of ``gar_track``."""

    clip: ClipOut
    track: TrackOut


def frames_of(value: Any) -> Any:
    """A validated :data:`TrackRef` → what :func:`gar_tool.video.track.coerce_track` takes (a track id
    stays a string)."""
    if isinstance(value, TrackFrames):
        return [None if isinstance(f, str) else f.model_dump() for f in value.frames]
    return value


__all__ = ["CLIP_ID_RE", "TRACK_ID_RE", "DEFAULT_FRAMES", "VideoRef", "TrackRef", "TrackId", "TrackFrames",
           "FrameCount", "TrackInput", "FrameOut", "TrackOut", "ClipOut", "TrackOutput", "frames_of",
           "VIDEO_DESCRIPTION", "TRACK_DESCRIPTION"]
