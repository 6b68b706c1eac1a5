"""Helpers for the tools tests: small images as files / base64, and fake components.

The fakes implement the same methods as the real components (``GAR.describe`` / ``relate`` /
``prompt_slots``, ``GroundingDetector.detect``, ``Segmenter.segment``), record their calls, and
answer deterministically, so the toolkit's orchestration is tested exactly; the real tiny GAR and
Grounding DINO are exercised in separate tests.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gar_tool.gar.protocol import DecodeOptions, GARAnswer, GARFrontMixin, GARRequest
from gar_tool.media.images import load_image
from gar_tool.regions.forms import coerce_regions
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


class FakeGAR(GARFrontMixin):
    """A GARBackend that records calls; describe answers ``"region of N px"``, relate echoes its
    question (``finish_reason="length"`` for single-region questions)."""

    def __init__(self, prompt_slots: int = 5, fail: Exception | None = None) -> None:
        self.prompt_slots = prompt_slots
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Any = None) -> GARRequest:
        pil = load_image(image)
        return GARRequest(pil, coerce_regions(regions, (pil.height, pil.width)), question, instruction)

    def answer(self, requests: Any, options: DecodeOptions | None = None) -> list[GARAnswer]:
        reqs = list(requests)
        if all(r.question is None for r in reqs):
            for r in reqs:
                self.calls.append(("describe", dict(size=r.image.size, region=r.regions[0], instruction=r.instruction)))
        else:
            self.calls.append(("relate", dict(images=[r.image for r in reqs], regions=[list(r.regions) for r in reqs],
                                              questions=[r.question for r in reqs])))
        if self.fail is not None:
            raise self.fail
        return [GARAnswer(f"region of {r.regions[0].area} px", [], "stop", 0) if r.question is None else
                GARAnswer(f"saw {len(r.regions)}: {r.question}", [], "length" if len(r.regions) == 1 else "stop", 0)
                for r in reqs]


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
