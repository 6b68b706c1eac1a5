"""The video side of the tools: a session store of clips and tracks, video inputs, and the work of
``gar_track`` and of ``gar_describe`` / ``gar_relate`` on a clip.

* :class:`VideoStore` — clips by content (``clip_id = "vid_" + 12 hex`` of the sampled frames,
  so the same video sampled the same way gets one id) and tracks (``t1``, ``t2``, ... never reused,
  each belonging to one clip); bounded, least recently used evicted first (evicting a clip evicts
  its tracks); unknown and expired ids are :class:`~gar_tool.tools.errors.ToolInputError` s.
* :class:`VideoInputs` — a ``video`` string → a stored clip: a ``clip_id``, or a path to a video
  file / frame folder that must resolve (symlinks and ``..`` resolved first) into the toolkit's
  allowed image directories. Videos are never fetched from URLs or sent inline.
* ``prepare_* / execute_* / finish_*`` — the tool bodies in three steps (see below), on any
  toolkit with ``gar`` (a :class:`~gar_tool.gar.video_protocol.GARVideoBackend`, possibly behind
  a micro-batcher), ``tracker``, ``detector``, ``videos`` (:class:`VideoInputs`) and ``decode`` /
  ``max_new_tokens``.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from gar_tool.regions.refs import prompt_token
from gar_tool.regions.rle import rle_encode
from gar_tool.tools.errors import ToolFailure, ToolInputError
from gar_tool.tools.results import ToolResult
from gar_tool.tools.schemas import RleMask, region_wire
from gar_tool.tools.video_schemas import (CLIP_ID_RE, DEFAULT_FRAMES, TRACK_ID_RE, ClipOut, FrameOut, TrackInput,
                                          TrackOut, TrackOutput, frames_of)

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.video_protocol import GARVideoBackend
    from gar_tool.video.clip import Clip
    from gar_tool.video.track import RegionTrack


@dataclass
class StoredClip:
    clip_id: str
    clip: "Clip"


class VideoStore:
    """Bounded, thread-safe store of clips and tracks (see the module docstring)."""

    def __init__(self, max_clips: int = 8, max_tracks: int = 256) -> None:
        if max_clips < 1 or max_tracks < 1:
            raise ValueError(f"max_clips and max_tracks must be >= 1, got {max_clips}, {max_tracks}")
        self.max_clips, self.max_tracks = max_clips, max_tracks
        self._clips: OrderedDict[str, "Clip"] = OrderedDict()
        self._tracks: OrderedDict[str, tuple[str, "RegionTrack"]] = OrderedDict()
        self._evicted_clips: set[str] = set()
        self._next = 1
        self._lock = threading.Lock()

    def put_clip(self, clip: "Clip") -> StoredClip:
        clip_id = "vid_" + clip.key[:12]
        with self._lock:
            self._clips[clip_id] = clip
            self._clips.move_to_end(clip_id)
            self._evicted_clips.discard(clip_id)
            while len(self._clips) > self.max_clips:
                old, _ = self._clips.popitem(last=False)
                self._evicted_clips.add(old)
                for tid in [t for t, (c, _) in self._tracks.items() if c == old]:
                    del self._tracks[tid]
        return StoredClip(clip_id, clip)

    def get_clip(self, clip_id: str) -> StoredClip:
        with self._lock:
            clip = self._clips.get(clip_id)
            if clip is None:
                how = "has expired (evicted from the session)" if clip_id in self._evicted_clips else "is unknown"
                raise ToolInputError(f"clip {clip_id!r} {how}; pass the video's path again to get a new clip_id")
            self._clips.move_to_end(clip_id)
            return StoredClip(clip_id, clip)

    def put_track(self, clip_id: str, track: "RegionTrack") -> "RegionTrack":
        with self._lock:
            tid = f"t{self._next}"
            self._next += 1
            stored = track.with_meta(id=tid)
            self._tracks[tid] = (clip_id, stored)
            while len(self._tracks) > self.max_tracks:
                self._tracks.popitem(last=False)
            return stored

    def get_track(self, track_id: str, clip_id: str) -> "RegionTrack":
        with self._lock:
            item = self._tracks.get(track_id)
            if item is None:
                number = int(track_id[1:]) if TRACK_ID_RE.match(track_id) else self._next
                how = "has expired" if number < self._next else "is unknown"
                raise ToolInputError(f"track {track_id!r} {how}; run gar_track again to get a track id")
            owner, track = item
            if owner != clip_id:
                raise ToolInputError(f"track {track_id!r} belongs to clip {owner}, not {clip_id}; pass video={owner!r}")
            self._tracks.move_to_end(track_id)
            return track

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"clips": len(self._clips), "tracks": len(self._tracks)}


class VideoInputs:
    """``video`` strings → stored clips, under the image input rules' allowed directories."""

    def __init__(self, store: VideoStore, roots: Sequence[Path]) -> None:
        self.store = store
        self.roots = tuple(roots)

    def resolve(self, ref: str, frames: int | None = None) -> StoredClip:
        """The stored clip of ``ref`` (a clip_id, or a path sampled to ``frames`` frames)."""
        from gar_tool.video.decode import load_clip

        text = ref.strip() if isinstance(ref, str) else ""
        if not text:
            raise ToolInputError("video must be a non-empty string: a clip_id or a path to a video file / frame folder")
        if CLIP_ID_RE.match(text):
            return self.store.get_clip(text)
        if "://" in text or text[:5].lower() == "data:":
            raise ToolInputError("videos are read from paths on the tool's machine (or a clip_id), not URLs or "
                                 "inline data")
        if not self.roots:
            raise ToolInputError("video paths are disabled on this tool")
        if "\x00" in text:
            raise ToolInputError("video path contains a NUL character")
        raw = Path(text)
        path = (raw if raw.is_absolute() else self.roots[0] / raw).resolve()
        if not any(path.is_relative_to(root) for root in self.roots):
            raise ToolInputError(f"video path {text!r} resolves outside the allowed directories "
                                 f"({', '.join(str(r) for r in self.roots)})")
        return self.store.put_clip(load_clip(path, frames or DEFAULT_FRAMES))


# --------------------------------------------------------------------------- helpers
def video_backend(gar: Any, tool: str) -> "GARVideoBackend":
    """The toolkit's GAR as a video backend (through a micro-batcher's wrapped ``gar``)."""
    from gar_tool.gar.video_protocol import GARVideoBackend

    for candidate in (gar, getattr(gar, "gar", None)):
        if isinstance(candidate, GARVideoBackend):
            return candidate
    if gar is None:
        raise ToolFailure(f"{tool} is not available: this toolkit has no GAR model")
    raise ToolFailure(f"{tool}: this GAR backend ({type(gar).__name__}) does not answer about videos")


def clip_out(stored: StoredClip) -> ClipOut:
    c = stored.clip
    return ClipOut(clip_id=stored.clip_id, source=c.source, frames=len(c), source_frames=c.source_frames,
                   fps=c.fps, times=[None if t is None else round(t, 3) for t in c.timestamps])


def track_out(track: "RegionTrack", clip: "Clip") -> TrackOut:
    frames = []
    for i, (r, state) in enumerate(zip(track.regions, track.states)):
        score = track.scores[i] if track.scores is not None else None
        frames.append(FrameOut(
            frame=i, time=None if clip.timestamps[i] is None else round(clip.timestamps[i], 3),  # type: ignore[arg-type]
            source_index=clip.source_indices[i], state=state,
            box=None if r is None else [round(float(v), 2) for v in r.box], area=0 if r is None else r.area,
            score=None if score is None else round(float(score), 4),
            rle=None if r is None else RleMask(**rle_encode(r.mask))))
    return TrackOut(id=track.id or "", label=track.label, summary=track.summary(), frames=frames)


def track_phrase(track: "RegionTrack") -> str:
    """``"t1 (a dog; tracked: #1-#14; absent: #15)"`` — a track as the LLM reads it."""
    parts = ([track.label] if track.label else []) + [track.summary()]
    return f"{track.id} ({'; '.join(parts)})"


def sheet_png(clip: "Clip", tracks: Sequence["RegionTrack"]) -> bytes:
    from gar_tool.video.sheet import contact_sheet

    buf = io.BytesIO()
    contact_sheet(clip, list(tracks)).save(buf, format="PNG")
    return buf.getvalue()


def resolve_track(kit: Any, stored: StoredClip, ref: Any, where: str) -> "RegionTrack":
    """A validated track argument → a track of the clip: a stored one for an id, else the inline
    masks as a new track (``id`` None; :func:`store_tracks` stores it when the call finishes)."""
    from gar_tool.video.track import coerce_track

    value = frames_of(ref)
    if isinstance(value, str):
        return kit.videos.store.get_track(value, stored.clip_id)
    try:
        return coerce_track(value, stored.clip, what=where).with_meta(id=None)
    except ToolInputError:
        raise
    except Exception as exc:
        from gar_tool.tools.errors import as_tool_error

        raise as_tool_error(exc) from None


def store_tracks(kit: Any, stored: StoredClip, tracks: Sequence["RegionTrack"]) -> list["RegionTrack"]:
    """``tracks`` with the new ones stored (they get ids ``t{n}``), in order."""
    return [t if t.id is not None else kit.videos.store.put_track(stored.clip_id, t) for t in tracks]


def decode_options(kit: Any) -> Any:
    from gar_tool.gar.protocol import DecodeOptions

    return getattr(kit, "decode", None) or DecodeOptions(max_new_tokens=kit.max_new_tokens)


# --------------------------------------------------------------------------- the tools' work
# Each tool runs in three steps (prepare: validate and resolve, nothing stored; execute: the model
# work; finish: store new tracks and build the result), so that it fits a toolkit that runs calls
# one at a time as well as one that prepares in order, executes concurrently and finishes in order.
@dataclass
class TrackCall:
    stored: StoredClip
    frame: int
    prompt: Any  # a region wire form, or None with a phrase
    phrase: str | None
    box_threshold: float


def prepare_track(kit: Any, inp: TrackInput, tool: str = "gar_track") -> TrackCall:
    if kit.tracker is None:
        raise ToolFailure(f"{tool} is not available: this toolkit has no video tracker (start it with "
                          "--tracker sam2 or a SAM 2 checkpoint directory)")
    if inp.phrase is not None and kit.detector is None:
        raise ToolFailure(f"{tool} with a phrase needs a grounding detector (start the tools with --detector)")
    stored = kit.videos.resolve(inp.video, inp.frames)
    k = stored.clip.frame_index(inp.frame, "frame")
    prompt = None if inp.region is None else region_wire(inp.region)
    return TrackCall(stored, k, prompt, inp.phrase, inp.box_threshold)


def execute_track(kit: Any, call: TrackCall) -> "RegionTrack":
    clip = call.stored.clip
    if call.phrase is not None:
        return kit.tracker.track_phrase(clip, call.phrase, call.frame, kit.detector, box_threshold=call.box_threshold)
    return kit.tracker.track(clip, call.prompt, call.frame)


def finish_track(kit: Any, call: TrackCall, track: "RegionTrack", tool: str = "gar_track") -> ToolResult:
    stored = call.stored
    clip = stored.clip
    (track,) = store_tracks(kit, stored, [track])
    out = TrackOutput(clip=clip_out(stored), track=track_out(track, clip))
    what = repr(call.phrase) if call.phrase is not None else "the region"
    content = (f"Track {track_phrase(track)} of {what} on frame {call.frame} of {stored.clip_id} "
               f"({len(clip)} frames sampled from {clip.source_frames}).")
    return ToolResult(tool, content, out, lambda: sheet_png(clip, [track]))


@dataclass
class ClipCall:
    gar: "GARVideoBackend"
    stored: StoredClip
    tracks: list["RegionTrack"]
    request: Any  # GARVideoRequest


def prepare_clip(kit: Any, tool: str, video: str, track_refs: Sequence[Any], question: str | None,
                 frames: int | None, instruction: str | None = None) -> ClipCall:
    """``gar_describe`` (``question=None``, one track) / ``gar_relate`` on a clip: resolve and
    validate (a clip question is never split: at most ``prompt_slots`` tracks)."""
    gar = video_backend(kit.gar, tool)
    if len(track_refs) > gar.prompt_slots:
        raise ToolInputError(f"GAR sees at most {gar.prompt_slots} objects in one clip question, got "
                             f"{len(track_refs)} tracks; ask about fewer at a time")
    stored = kit.videos.resolve(video, frames)
    where = ["track"] if question is None else [f"tracks[{i}]" for i in range(len(track_refs))]
    tracks = [resolve_track(kit, stored, ref, w) for ref, w in zip(track_refs, where)]
    req = gar.video_request(stored.clip, tracks, question, instruction=instruction)
    return ClipCall(gar, stored, tracks, req)


def execute_clip(kit: Any, call: ClipCall) -> Any:
    """The answer (a :class:`~gar_tool.gar.protocol.GARAnswer`)."""
    return call.gar.answer_video([call.request], decode_options(kit))[0]


def finish_clip(kit: Any, call: ClipCall) -> list["RegionTrack"]:
    """The call's tracks, new ones stored."""
    return store_tracks(kit, call.stored, call.tracks)


def binding_text(tracks: Sequence["RegionTrack"]) -> str:
    return ", ".join(f"{prompt_token(i)} = {track_phrase(t)}" for i, t in enumerate(tracks))


__all__ = ["VideoStore", "VideoInputs", "StoredClip", "video_backend", "clip_out", "track_out", "track_phrase",
           "sheet_png", "resolve_track", "store_tracks", "TrackCall", "prepare_track", "execute_track",
           "finish_track", "ClipCall", "prepare_clip", "execute_clip", "finish_clip", "binding_text"]
