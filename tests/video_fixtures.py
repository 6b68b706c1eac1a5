"""Video test fixtures: a synthetic moving-square clip (frames, masks, an H.264 file) and a tiny
random SAM 2 video checkpoint in the hub's layout, built once per session at test time.

Import the fixtures into a test module (``from video_fixtures import square_clip, ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gar_tool.testing.video import build_sam2_video_checkpoint, moving_square, write_video

#: The synthetic source: 24 frames of 64x96 at 8 fps, a 20-px white square moving left to right.
N_SOURCE, SIZE, SIDE, FPS = 24, (64, 96), 20, 8

_cache: dict[str, object] = {}


@dataclass(frozen=True)
class SquareClip:
    frames: list[np.ndarray]  # every source frame, H x W x 3 uint8
    masks: list[np.ndarray]  # the square's exact mask per source frame
    mp4: Path  # the frames encoded with H.264 (lossy: colours shift by a few levels)
    folder: Path  # the frames as PNG files 0.png .. 23.png


def _square_clip(factory) -> SquareClip:
    frames, masks = moving_square(N_SOURCE, SIZE, SIDE)
    root = factory.mktemp("square-clip")
    folder = root / "frames"
    folder.mkdir()
    from PIL import Image

    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i}.png")
    return SquareClip(frames, masks, write_video(root / "square.mp4", frames, fps=FPS), folder)


def _built(name: str, make):
    if name not in _cache:
        _cache[name] = make()
    return _cache[name]


@pytest.fixture(scope="session")
def square_clip(tmp_path_factory) -> SquareClip:
    return _built("square", lambda: _square_clip(tmp_path_factory))  # type: ignore[return-value]


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    return _built("sam2", lambda: build_sam2_video_checkpoint(tmp_path_factory.mktemp("tiny-sam2")))  # type: ignore[return-value]


@pytest.fixture(scope="session")
def tiny_tracker(tiny_sam2_dir):
    from gar_tool.video.tracker import Sam2VideoTracker

    return _built("tracker", lambda: Sam2VideoTracker.from_pretrained(str(tiny_sam2_dir), device="cpu"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
