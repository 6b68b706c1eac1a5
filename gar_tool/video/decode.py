"""Turning a video file, a folder of frames or a list of frames into a :class:`~gar_tool.video.clip.Clip`.

:func:`load_clip` accepts

* a video file (``.mp4``, ``.mov``, ``.mkv``, ``.webm``, ``.avi``, ...), decoded with PyAV
  (FFmpeg; ``pip install gar-agent[video]``). Frame size, duration and frame count are read from
  the container header and checked against the limits (``frame_pixels``, ``clip_seconds``,
  ``clip_source_frames``) before any frame is decoded. Frames are sampled by index
  (:func:`~gar_tool.video.clip.uniform_indices`) and fetched by seeking to the nearest key frame
  before each far-away sample, so a long video costs about one group of pictures per sample, not a
  full decode. The stream's rotation metadata is applied (frames as displayed);
* a folder of image files (sorted by name, numbers compared as numbers: ``2.jpg`` < ``10.jpg``) —
  the layout of DAVIS / MeViS / VideoRefer-Bench — of which only the sampled files are decoded,
  after their headers passed the size check;
* a list of frames (paths, ``PIL`` images, ``H×W×3`` uint8 arrays, encoded bytes) or one
  ``T×H×W×3`` uint8 array;
* a :class:`Clip` (returned as is).

``fps`` gives frame folders and lists their timestamps (video files carry their own).
Errors are :class:`~gar_tool.errors.InputError` s naming the problem: missing or undecodable file,
no video stream, no frames, frames of different sizes, a limit exceeded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import numpy as np
from PIL import Image

from gar_tool.errors import InputError
from gar_tool.limits import limit
from gar_tool.media.images import ImageLike, load_image
from gar_tool.video.clip import (DEFAULT_FRAMES, Clip, check_frame_count, check_source, timestamps_for,
                                 uniform_indices)

VideoLike = Union[str, os.PathLike, Sequence[ImageLike], np.ndarray, Clip]

#: File suffixes read as videos (anything else with a suffix is an image to the CLI).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv",
                            ".flv", ".ts", ".3gp", ".ogv"})
#: Files of a frame folder.
FRAME_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: A sample farther ahead than this (seconds) is reached by seeking rather than decoding on.
_SEEK_GAP = 2.0


def is_video_path(path: str | os.PathLike) -> bool:
    """True for a directory (a frame folder) or a file with a video suffix."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES


def load_clip(video: VideoLike, num_frames: int = DEFAULT_FRAMES, *, fps: float | None = None,
              indices: Sequence[int] | None = None) -> Clip:
    """Sample ``num_frames`` frames of ``video`` (see the module docstring for the accepted forms).

    Args:
        video: a video file, a frame folder, a list of frames, a ``T×H×W×3`` uint8 array or a Clip.
        num_frames: how many frames to sample uniformly (all of them when the source has fewer).
        fps: frame rate of a frame folder or list (for timestamps); ignored for video files.
        indices: take exactly these source frame indices (increasing) instead of sampling.

    Returns:
        A :class:`Clip`.
    """
    if isinstance(video, Clip):
        return video
    if fps is not None and not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    check_frame_count(num_frames, "num_frames")
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            return _from_folder(path, num_frames, fps, indices)
        if not path.is_file():
            raise InputError(f"video not found: {str(path)!r} (expected a video file or a folder of frames)")
        return _from_file(path, num_frames, indices)
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] not in (3, 4) or video.dtype != np.uint8:
            raise InputError(f"a video array must be T×H×W×3 uint8, got shape {video.shape} {video.dtype}")
        return _from_list(list(video), num_frames, fps, indices, "video array")
    if isinstance(video, (list, tuple)):
        return _from_list(list(video), num_frames, fps, indices, "frame list")
    raise InputError("video must be a video file, a folder of frames, a list of frames or a T×H×W×3 array; "
                     f"got {type(video).__name__}")


def _pick(total: int, num_frames: int, indices: Sequence[int] | None, what: str) -> list[int]:
    if indices is None:
        return uniform_indices(total, num_frames)
    idx = [int(i) for i in indices]
    check_frame_count(len(idx), "the number of frame indices")
    if any(b <= a for a, b in zip(idx, idx[1:])) or idx[0] < 0 or idx[-1] >= total:
        raise InputError(f"frame indices must increase within 0..{total - 1} ({what} has {total} frames), "
                         f"got {idx}")
    return idx


# --------------------------------------------------------------------------- lists and folders
def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder, in frame order (natural sort of the names)."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _from_folder(folder: Path, num_frames: int, fps: float | None, indices: Sequence[int] | None) -> Clip:
    files = frame_files(folder)
    what = f"frame folder {str(folder)!r}"
    if not files:
        raise InputError(f"{what} holds no image files ({', '.join(sorted(FRAME_SUFFIXES))})")
    check_source(what, frames=len(files))
    picked = _pick(len(files), num_frames, indices, what)
    for i in picked:  # headers only: sizes are checked before any frame is decoded
        size = _declared_size(files[i])
        if size is None:
            raise InputError(f"{what}: {files[i].name} is not a readable image")
        check_source(f"{what} ({files[i].name})", width=size[0], height=size[1])
    frames = [load_image(files[i], max_pixels=limit("frame_pixels")) for i in picked]
    _same_size(frames, [files[i].name for i in picked], what)
    return Clip(tuple(frames), timestamps_for(picked, fps), tuple(picked), len(files), fps, str(folder))


def _from_list(items: list[Any], num_frames: int, fps: float | None, indices: Sequence[int] | None,
               what: str) -> Clip:
    if not items:
        raise InputError(f"{what} is empty: a clip needs at least one frame")
    check_source(what, frames=len(items))
    picked = _pick(len(items), num_frames, indices, what)
    frames = []
    for i in picked:
        size = _declared_size(items[i])
        if size is not None:  # checked before the frame is decoded
            check_source(f"{what} item {i}", width=size[0], height=size[1])
        frames.append(load_image(items[i], max_pixels=limit("frame_pixels")))
        check_source(f"{what} item {i}", width=frames[-1].width, height=frames[-1].height)
    _same_size(frames, [f"item {i}" for i in picked], what)
    return Clip(tuple(frames), timestamps_for(picked, fps), tuple(picked), len(items), fps, "frames")


def _declared_size(item: Any) -> tuple[int, int] | None:
    """``(width, height)`` of a frame without decoding it (file / bytes header, array shape)."""
    if isinstance(item, np.ndarray):
        return (int(item.shape[1]), int(item.shape[0])) if item.ndim >= 2 else None
    if isinstance(item, Image.Image):
        return item.size
    import io

    from gar_tool.media.images import open_header

    try:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_file():
            with Path(item).open("rb") as fh:
                return open_header(fh, str(item)).size
        if isinstance(item, (bytes, bytearray)):
            return open_header(io.BytesIO(bytes(item)), "frame bytes").size
    except InputError:
        return None  # load_image reports what is wrong with it
    return None


def _same_size(frames: list[Image.Image], names: list[str], what: str) -> None:
    first = frames[0].size
    for f, name in zip(frames, names):
        if f.size != first:
            raise InputError(f"{what}: frames must all have one size; {names[0]} is {first[0]}x{first[1]}, "
                             f"{name} is {f.size[0]}x{f.size[1]} (width x height)")


# --------------------------------------------------------------------------- video files
def _av() -> Any:
    try:
        import av
    except ImportError:
        raise InputError("reading video files needs PyAV: pip install 'gar-agent[video]' (or pass a folder "
                         "of frames)") from None
    return av


def _from_file(path: Path, num_frames: int, indices: Sequence[int] | None) -> Clip:
    av = _av()
    what = f"video file {str(path)!r}"
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{what} is not a readable video ({_one_line(exc)})") from None
    try:
        with container:
            return _sample_container(container, path, num_frames, indices, what)
    except av.FFmpegError as exc:  # corrupt data found while decoding
        raise InputError(f"{what} could not be decoded ({_one_line(exc)})") from None


def _sample_container(container: Any, path: Path, num_frames: int, indices: Sequence[int] | None,
                      what: str) -> Clip:
    if not container.streams.video:
        raise InputError(f"{what} has no video stream")
    st = container.streams.video[0]
    check_source(what, width=int(st.codec_context.width), height=int(st.codec_context.height))
    rate = st.average_rate or st.guessed_rate
    fps = float(rate) if rate else None
    tb = float(st.time_base) if st.time_base else None
    start = float(st.start_time * st.time_base) if st.start_time is not None and tb else 0.0
    seconds = None
    if st.duration and tb:
        seconds = float(st.duration * st.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    check_source(what, seconds=seconds)
    total = int(st.frames or 0)
    if total <= 0 and seconds and fps:
        total = int(round(seconds * fps))
    if total > 0:
        check_source(what, frames=total)
    if total > 0 and fps and tb:
        picked = _pick(total, num_frames, indices, what)
        got = _seek_frames(container, st, [start + i / fps for i in picked], fps, tb)
        frames = [f for f, _ in got]
        found = [t - start for _, t in got]
        src = _increasing([int(round(t * fps)) for t in found])
        return Clip(tuple(frames), tuple(found), tuple(src), total, fps, str(path))
    # No usable frame count or rate in the header: count the packets (no decoding), then decode
    # in order and keep the sampled frames.
    total = _count_packets(container, st, what)
    picked = _pick(total, num_frames, indices, what)
    container.seek(0)
    frames, times = _sequential_frames(container, st, picked, start)
    if not frames:
        raise InputError(f"{what} has no decodable frames")
    return Clip(tuple(frames), tuple(times), tuple(picked[:len(frames)]), total, fps, str(path))


def _seek_frames(container: Any, st: Any, targets: list[float], fps: float,
                 tb: float) -> list[tuple[Image.Image, float]]:
    """For each target time (seconds, increasing) the first frame presented at or after it
    (within half a frame), seeking back to a key frame before targets that are far ahead."""
    half = 0.5 / fps
    out: list[tuple[Image.Image, float]] = []
    decoded: Iterator[Any] | None = None
    position = float("-inf")
    last: Any = None
    for target in targets:
        if decoded is None or target - position > _SEEK_GAP:
            container.seek(max(0, int(target / tb)), stream=st, backward=True, any_frame=False)
            decoded = container.decode(st)
        chosen = None
        for frame in decoded:
            if frame.time is None:
                continue
            position = float(frame.time)
            last = frame
            if position >= target - half and (not out or position > out[-1][1]):
                chosen = frame
                break
        if chosen is None:  # the header over-stated the length: the stream ended early
            if last is None or (out and float(last.time) <= out[-1][1]):
                break
            chosen = last
        out.append((_rgb(chosen), float(chosen.time)))
    if not out:
        raise InputError("the video has no decodable frames")
    return out


def _sequential_frames(container: Any, st: Any, picked: list[int],
                       start: float) -> tuple[list[Image.Image], list[float | None]]:
    want = set(picked)
    frames: list[Image.Image] = []
    times: list[float | None] = []
    for i, frame in enumerate(container.decode(st)):
        if i in want:
            frames.append(_rgb(frame))
            times.append(None if frame.time is None else float(frame.time) - start)
            if len(frames) == len(picked):
                break
    return frames, times


def _count_packets(container: Any, st: Any, what: str) -> int:
    n = 0
    for packet in container.demux(st):
        if packet.size:
            n += 1
            if n > limit("clip_source_frames"):
                check_source(what, frames=n)
    if n == 0:
        raise InputError(f"{what} has no frames")
    return n


def _rgb(frame: Any) -> Image.Image:
    """A decoded frame as displayed: RGB, with the stream's rotation applied."""
    arr = frame.to_ndarray(format="rgb24")
    turns = int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4  # counter-clockwise quarter turns
    if turns:
        arr = np.ascontiguousarray(np.rot90(arr, k=turns))
    return Image.fromarray(arr)


def _increasing(values: list[int]) -> list[int]:
    out: list[int] = []
    for v in values:  # rounding of timestamps must not make two frames share an index
        out.append(v if not out or v > out[-1] else out[-1] + 1)
    return out


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["VideoLike", "VIDEO_SUFFIXES", "FRAME_SUFFIXES", "is_video_path", "load_clip", "frame_files"]
