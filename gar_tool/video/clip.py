"""A clip: the frames of a video sampled for GAR, and where and when each one comes from.

Frames are RGB ``PIL.Image`` s of one size (``H×W``, as displayed: rotation metadata applied),
in time order. ``timestamps[i]`` is frame ``i``'s presentation time in seconds from the start of
the video (``None`` for frame folders and lists without an ``fps``), ``source_indices[i]`` its
index among all the frames of the source (0-based). Region tracks and prompts address frames by
their position ``i`` in the clip ("sampled frame ``i``"), which is what the contact sheet shows.

Sampling (:func:`uniform_indices`) takes the middle frame of each of ``n`` equal segments of the
source — the uniform scheme of the VideoLLaMA / VideoRefer family, whose VideoRefer-Bench-Q
protocol samples 16 frames (:data:`DEFAULT_FRAMES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from gar_tool.errors import InputError
from gar_tool.limits import limit

#: Frames sampled from a clip unless asked otherwise (VideoRefer-Bench-Q's protocol samples 16).
DEFAULT_FRAMES = 16


def uniform_indices(total: int, n: int) -> list[int]:
    """Indices of ``n`` frames spread uniformly over ``total``: the middle frame of each of ``n``
    equal segments (``floor((i + 0.5) · total / n)``). Every frame when ``n >= total``."""
    if total < 1:
        raise InputError("the video has no frames")
    if n >= total:
        return list(range(total))
    return [int((i + 0.5) * total / n) for i in range(n)]


def check_frame_count(n: int, what: str = "frames") -> int:
    """``n`` if it is a usable number of frames to sample (1 .. ``clip_frames``), else InputError."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"{what} must be a positive integer, got {n!r}")
    cap = limit("clip_frames")
    if n > cap:
        raise InputError(f"{what} = {n} is over the limit of {cap} sampled frames per clip (clip_frames)")
    return n


def check_source(what: str, *, frames: int | None = None, seconds: float | None = None,
                 width: int | None = None, height: int | None = None) -> None:
    """Raise InputError when a source's declared size is over a limit (called before decoding)."""
    if frames is not None and frames > limit("clip_source_frames"):
        raise InputError(f"{what} has {frames} frames, more than the limit of "
                         f"{limit('clip_source_frames')} (clip_source_frames)")
    if seconds is not None and seconds > limit("clip_seconds"):
        raise InputError(f"{what} lasts {seconds:.1f} s, more than the limit of {limit('clip_seconds')} s "
                         "(clip_seconds)")
    if width is not None and height is not None:
        from gar_tool.media.images import check_pixels

        check_pixels(width, height, f"{what}: a frame", name="frame_pixels")


@dataclass(frozen=True, eq=False)
class Clip:
    """Sampled frames of a video (see the module docstring for the conventions).

    Attributes:
        frames: RGB images, all ``width × height``, in time order.
        timestamps: seconds from the start of the video per frame, ``None`` when unknown.
        source_indices: index of each frame among the source's frames, strictly increasing.
        source_frames: how many frames the source has (``T``).
        fps: the source's frame rate, when known.
        source: where the frames came from (a path, or ``"frames"`` for an in-memory list).
    """

    frames: tuple[Image.Image, ...]
    timestamps: tuple[float | None, ...]
    source_indices: tuple[int, ...]
    source_frames: int
    fps: float | None = None
    source: str = "frames"
    _key: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        n = len(self.frames)
        if n == 0:
            raise InputError("a clip needs at least one frame, got 0")
        if len(self.timestamps) != n or len(self.source_indices) != n:
            raise InputError(f"a clip of {n} frames needs {n} timestamps and source indices, got "
                             f"{len(self.timestamps)} and {len(self.source_indices)}")
        sizes = {f.size for f in self.frames}
        if len(sizes) > 1:
            raise InputError(f"all frames of a clip must have one size; got {sorted(sizes)} (width, height)")
        if any(f.mode != "RGB" for f in self.frames):
            raise InputError("clip frames must be RGB images")
        if any(b <= a for a, b in zip(self.source_indices, self.source_indices[1:])):
            raise InputError(f"source_indices must increase, got {list(self.source_indices)}")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of every frame."""
        w, h = self.frames[0].size
        return h, w

    @property
    def key(self) -> str:
        """Content hash of the frames (pixels and size), for caches and session stores."""
        if not self._key:
            from gar_tool.cache import content_key

            self._key.append(content_key(*(np.asarray(f) for f in self.frames)))
        return self._key[0]

    def frame_index(self, k: object, what: str = "frame") -> int:
        """``k`` if it names a sampled frame (``0 <= k < len(self)``), else InputError."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InputError(f"{what} must be a sampled-frame index (an integer), got {k!r}")
        if not 0 <= int(k) < len(self):
            raise InputError(f"{what} {int(k)} is outside the clip: it has {len(self)} sampled frames "
                             f"(0..{len(self) - 1})")
        return int(k)

    def label(self, i: int) -> str:
        """``"#3 t=1.50s"`` (or ``"#3 src 45"`` when the time is unknown): how frame ``i`` is named."""
        t = self.timestamps[i]
        return f"#{i} t={t:.2f}s" if t is not None else f"#{i} src {self.source_indices[i]}"

    def subset(self, indices: Sequence[int]) -> "Clip":
        """The clip restricted to sampled frames ``indices`` (increasing)."""
        idx = [self.frame_index(i) for i in indices]
        return Clip(tuple(self.frames[i] for i in idx), tuple(self.timestamps[i] for i in idx),
                    tuple(self.source_indices[i] for i in idx), self.source_frames, self.fps, self.source)


def timestamps_for(indices: Sequence[int], fps: float | None) -> tuple[float | None, ...]:
    """``index / fps`` per index (``None`` each when the rate is unknown)."""
    if fps is None or not math.isfinite(fps) or fps <= 0:
        return tuple(None for _ in indices)
    return tuple(i / fps for i in indices)


__all__ = ["Clip", "DEFAULT_FRAMES", "uniform_indices", "check_frame_count", "check_source", "timestamps_for"]
