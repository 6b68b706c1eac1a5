"""Region tracks: one object through the sampled frames of a clip.

A :class:`RegionTrack` holds, per sampled frame ``i`` of a :class:`~gar_tool.video.clip.Clip`, the
object's :class:`~gar_tool.regions.region.Region` (a mask of the frame's size) or ``None``, and a
state saying where that entry comes from:

* ``"given"`` — a mask (or box / points rectangle) the caller gave for that frame;
* ``"tracked"`` — a mask a tracker (SAM 2) produced;
* ``"absent"`` — the caller or the tracker says the object is not visible there;
* ``"unknown"`` — nothing is known about that frame (no mask given and no tracker run).

GAR replays the object only on frames that have a region; absent and unknown frames are still
seen (their image features are in the prompt) and are reported, never filled in.

:func:`coerce_track` turns the forms callers pass into a track: a ``RegionTrack``; a list with
one entry per sampled frame (or per source frame: the sampled ones are picked) where an entry is
any region form (:func:`~gar_tool.regions.forms.coerce_region`: mask array, COCO RLE dict,
``{"box": ...}``, ...) or ``None`` for absent; or ``{"frames": {FRAME: form | None, ...}}`` with
sampled-frame keys (frames not listed are unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from gar_tool.errors import RegionError
from gar_tool.regions.forms import coerce_region
from gar_tool.regions.region import Region
from gar_tool.regions.rle import rle_encode
from gar_tool.video.clip import Clip

FrameState = Literal["given", "tracked", "absent", "unknown"]
FRAME_STATES: tuple[str, ...] = ("given", "tracked", "absent", "unknown")


@dataclass(frozen=True, eq=False)
class RegionTrack:
    """One object through a clip (see the module docstring).

    Attributes:
        regions: per sampled frame the object's region (``H×W`` mask) or ``None``.
        states: per sampled frame one of :data:`FRAME_STATES`; a region is present exactly when
            the state is ``"given"`` or ``"tracked"``.
        label: optional name of the object (e.g. the grounded phrase).
        id: optional handle (``"t1"``) given by a session store.
        scores: optional per-frame tracker confidence in ``[0, 1]`` (``None`` where not tracked).
    """

    regions: tuple[Region | None, ...]
    states: tuple[FrameState, ...]
    label: str | None = None
    id: str | None = None
    scores: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.regions)
        if n == 0:
            raise RegionError("a track needs at least one frame")
        if len(self.states) != n or (self.scores is not None and len(self.scores) != n):
            raise RegionError(f"a track of {n} frames needs {n} states (and scores), got {len(self.states)}")
        for i, (r, s) in enumerate(zip(self.regions, self.states)):
            if s not in FRAME_STATES:
                raise RegionError(f"frame {i}: state must be one of {FRAME_STATES}, got {s!r}")
            if (r is not None) != (s in ("given", "tracked")):
                raise RegionError(f"frame {i}: state {s!r} {'needs' if r is None else 'cannot have'} a region")
            if r is not None and not isinstance(r, Region):
                raise RegionError(f"frame {i}: expected a Region, got {type(r).__name__}")
        sizes = {r.size for r in self.regions if r is not None}
        if len(sizes) > 1:
            raise RegionError(f"the masks of one track must have one size, got {sorted(sizes)} (HxW)")

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the masks (``None`` when no frame has one)."""
        return next((r.size for r in self.regions if r is not None), None)

    def frames_in(self, *states: str) -> list[int]:
        """Sampled frames whose state is one of ``states``."""
        return [i for i, s in enumerate(self.states) if s in states]

    @property
    def present(self) -> list[int]:
        """Frames with a region (given or tracked)."""
        return self.frames_in("given", "tracked")

    @property
    def absent(self) -> list[int]:
        return self.frames_in("absent")

    def with_meta(self, **changes: Any) -> "RegionTrack":
        """Copy with ``label`` / ``id`` replaced."""
        from dataclasses import replace

        return replace(self, **changes)

    def check_clip(self, clip: Clip, what: str = "track") -> "RegionTrack":
        """``self`` if it fits ``clip`` (one entry per sampled frame, masks of the frame size)."""
        if len(self) != len(clip):
            raise RegionError(f"{what} has {len(self)} frames but the clip has {len(clip)} sampled frames")
        if self.size is not None and self.size != clip.size:
            raise RegionError(f"{what} masks are {self.size[1]}x{self.size[0]} but the clip's frames are "
                              f"{clip.size[1]}x{clip.size[0]} (WxH)")
        return self

    def summary(self) -> str:
        """One line per state: ``"given: #0; tracked: #1-#5, #7; absent: #6"``."""
        parts = []
        for state in FRAME_STATES:
            frames = self.frames_in(state)
            if frames:
                parts.append(f"{state}: {_ranges(frames)}")
        return "; ".join(parts)

    def as_dict(self, clip: Clip | None = None, masks: bool = True) -> dict[str, Any]:
        """JSON-ready: ``{"id", "label", "frames": [{"frame", "time", "source_index", "state",
        "box", "area", "score"[, "rle"]}]}`` (times and source indices when ``clip`` is given)."""
        frames = []
        for i, (r, s) in enumerate(zip(self.regions, self.states)):
            entry: dict[str, Any] = {"frame": i, "state": s}
            if clip is not None:
                entry["time"] = clip.timestamps[i]
                entry["source_index"] = clip.source_indices[i]
            entry["box"] = list(r.box) if r is not None else None
            entry["area"] = r.area if r is not None else 0
            entry["score"] = self.scores[i] if self.scores is not None else None
            if masks:
                entry["rle"] = rle_encode(r.mask) if r is not None else None
            frames.append(entry)
        return {"id": self.id, "label": self.label, "frames": frames}


def _ranges(frames: Sequence[int]) -> str:
    out, start = [], frames[0]
    for a, b in zip(frames, list(frames[1:]) + [None]):
        if b is None or b != a + 1:
            out.append(f"#{start}" if start == a else f"#{start}-#{a}")
            if b is not None:
                start = b
    return ", ".join(out)


def coerce_track(obj: Any, clip: Clip, *, what: str = "track") -> RegionTrack:
    """Any accepted track form (see the module docstring) → a :class:`RegionTrack` for ``clip``."""
    if isinstance(obj, RegionTrack):
        return obj.check_clip(clip, what)
    size = clip.size
    if isinstance(obj, dict) and set(obj) <= {"frames", "label", "id"} and "frames" in obj:
        frames = obj["frames"]
        label, tid = obj.get("label"), obj.get("id")
        if isinstance(frames, dict):
            regions: list[Region | None] = [None] * len(clip)
            states: list[FrameState] = ["unknown"] * len(clip)
            for key, form in frames.items():
                try:
                    k = int(key)
                except (TypeError, ValueError):
                    raise RegionError(f"{what}: frame keys must be sampled-frame indices, got {key!r}") from None
                k = clip.frame_index(k, f"{what} frame")
                regions[k], states[k] = _entry(form, size, f"{what} frame {k}")
            return _checked(RegionTrack(tuple(regions), tuple(states), label, tid), what)
        if isinstance(frames, (list, tuple)):
            return _from_list(list(frames), clip, what, label, tid)
        raise RegionError(f"{what}: 'frames' must be a list (one entry per frame) or a dict {{frame: region}}, "
                          f"got {type(frames).__name__}")
    if isinstance(obj, (list, tuple)):
        return _from_list(list(obj), clip, what, None, None)
    raise RegionError(f"{what} must be a RegionTrack, a list of per-frame regions (None = absent) or "
                      f"{{'frames': ...}}; got {type(obj).__name__}")


def _from_list(items: list[Any], clip: Clip, what: str, label: Any, tid: Any) -> RegionTrack:
    n = len(clip)
    if len(items) == n:
        picked = items
    elif len(items) == clip.source_frames:
        picked = [items[i] for i in clip.source_indices]  # one mask per source frame: take the sampled ones
    else:
        extra = f" or {clip.source_frames} (one per source frame)" if clip.source_frames != n else ""
        raise RegionError(f"{what} has {len(items)} per-frame masks but the clip has {n} sampled frames: give {n} "
                          f"(one per sampled frame, None where the object is absent){extra}")
    entries = [_entry(form, clip.size, f"{what} frame {i}") for i, form in enumerate(picked)]
    return _checked(RegionTrack(tuple(r for r, _ in entries), tuple(s for _, s in entries), label, tid), what)


def _entry(form: Any, size: tuple[int, int], what: str) -> tuple[Region | None, FrameState]:
    if form is None:
        return None, "absent"
    if isinstance(form, dict) and set(form) == {"segmentation"}:  # VideoRefer-Bench's per-frame entry
        return _entry(form["segmentation"], size, what)
    if _empty_mask(form, what):
        return None, "absent"  # an all-zero mask says the object is not there
    try:
        return coerce_region(form, size), "given"
    except RegionError as exc:
        raise RegionError(f"{what}: {exc}") from None


def _empty_mask(form: Any, what: str) -> bool:
    """True for an all-zero mask array or COCO RLE (other forms cannot be empty)."""
    import numpy as np

    if isinstance(form, np.ndarray):
        return form.size > 0 and not form.any()
    rle = form.get("rle") if isinstance(form, dict) and set(form) == {"rle"} else form
    if isinstance(rle, dict) and "counts" in rle and "size" in rle:
        from gar_tool.regions.rle import rle_decode

        try:
            return not rle_decode(rle).any()
        except RegionError as exc:
            raise RegionError(f"{what}: {exc}") from None
    return False


def _checked(track: RegionTrack, what: str) -> RegionTrack:
    if not track.present:
        raise RegionError(f"{what} has no mask on any frame: give the object's mask on at least one frame")
    return track


__all__ = ["RegionTrack", "FrameState", "FRAME_STATES", "coerce_track"]
