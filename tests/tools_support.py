"""Helpers for the tools tests: small images as files / base64, and fake components.

The fakes implement the same methods as the real components (``GAR.describe`` / ``relate`` /
``prompt_slots``, ``GroundingDetector.detect``, ``Segmenter.segment``), record their calls, and
answer deterministically, so the toolkit's orchestration is tested exactly; the real tiny GAR and
Grounding DINO are exercised in separate tests.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gar_tool.media.images import load_image
from gar_tool.regions.region import Region, Regions


def rgb(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """A random ``(h, w, 3)`` uint8 image."""
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def png_bytes(arr: np.ndarray, exif_orientation: int | None = None) -> bytes:
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    if exif_orientation is None:
        img.save(buf, format="PNG")
    else:
        exif = img.getexif()
        exif[0x0112] = exif_orientation
        img.save(buf, format="PNG", exif=exif)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.write_bytes(png_bytes(arr))
    return path


@dataclass
class FakeAnswer:
    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0


class FakeGAR:
    """Records calls; describe answers ``"region of N px"``, relate echoes its question."""

    def __init__(self, prompt_slots: int = 5, fail: Exception | None = None) -> None:
        self.prompt_slots = prompt_slots
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def describe(self, image: Any, region: Region, *, instruction: str | None = None,
                 max_new_tokens: int = 256) -> FakeAnswer:
        self.calls.append(("describe", dict(size=load_image(image).size, region=region, instruction=instruction)))
        if self.fail is not None:
            raise self.fail
        return FakeAnswer(f"region of {region.area} px")

    def relate(self, images: Any, regions: Any, questions: Any, *, max_new_tokens: int = 256) -> list[FakeAnswer]:
        self.calls.append(("relate", dict(images=images, regions=regions, questions=questions)))
        if self.fail is not None:
            raise self.fail
        return [FakeAnswer(f"saw {len(r)}: {q}", finish_reason="length" if len(r) == 1 else "stop")
                for r, q in zip(regions, questions)]


class FakeSegmenter:
    """``segment``: each box becomes its rectangle shrunk by one pixel on every side
    (so a test can tell segmented boxes from plain rectangles); ``source="sam"``."""

    def __init__(self) -> None:
        self.calls = 0

    def segment(self, image: Any, boxes: Any = None, points: Any = None, point_labels: Any = None) -> Regions:
        self.calls += 1
        img = load_image(image)
        out = []
        for x1, y1, x2, y2 in boxes or []:
            mask = np.zeros((img.height, img.width), dtype=bool)
            mask[int(y1) + 1:int(y2) - 1, int(x1) + 1:int(x2) - 1] = True
            out.append(Region(mask, source="sam"))
        for pts in points or []:
            mask = np.zeros((img.height, img.width), dtype=bool)
            x, y = (int(v) for v in pts[0])
            mask[max(0, y - 2):y + 3, max(0, x - 2):x + 3] = True
            out.append(Region(mask, source="sam"))
        return Regions(out)


class FakeDetector:
    """``detect``: each phrase in ``boxes`` (phrase → list of (box, score)) is found there."""

    def __init__(self, boxes: dict[str, list[tuple[list[float], float]]], segmenter: Any = None) -> None:
        self.boxes = boxes
        self.segmenter = segmenter
        self.calls: list[dict[str, Any]] = []

    def detect(self, image: Any, phrases: Any, box_threshold: float = 0.35, text_threshold: float = 0.25,
               max_regions: int | None = None) -> Regions:
        self.calls.append(dict(phrases=phrases, box_threshold=box_threshold, text_threshold=text_threshold,
                               max_regions=max_regions))
        img = load_image(image)
        found = [(box, score, p) for p in phrases for box, score in self.boxes.get(p, []) if score > box_threshold]
        found.sort(key=lambda t: -t[1])
        found = found[:max_regions] if max_regions else found
        return Regions(Region.from_box(b, (img.height, img.width), label=p, score=s) for b, s, p in found)
