"""A classical detector for shapes-world images (no model, no download).

``ShapesDetector().detect(image, "a red circle. blue shape.")`` has the contract of
:meth:`gar_tool.grounding.GroundingDetector.detect` and returns :class:`Regions` with masks,
``label`` = the phrase matched and ``score`` in ``[0, 1]``. It is *not* a learned detector: each
pixel is assigned the nearest shapes-world colour (or background), connected blobs of one colour
become candidate shapes (``scipy.ndimage.label``), and a blob's kind is guessed from how much of
its bounding box it fills (square ≈ 1, circle ≈ 0.79, triangle ≈ 0.5, star ≈ 0.33). A phrase
names any of a colour, a kind and a size word (``small`` / ``medium`` / ``large``, the size
classes of the world); a blob matches when every word it names agrees. It works on shapes-world
scenes only — occluded shapes can be misnamed, and touching shapes of one colour merge — and
exists so that ``gar_ground`` and ``gar serve`` run fully offline with the shapes-world model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from gar_tool.errors import InputError
from gar_tool.grounding.phrases import parse_phrases
from gar_tool.media.images import load_image
from gar_tool.regions.region import Region, Regions
from gar_tool.shapes import SHAPES_DETECTOR
from gar_tool.shapes.world import COLOURS, KINDS, SIZE_BANDS, SIZES

#: Fill ratio (blob area / bounding-box area) of each kind when fully visible.
FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5, "star": 0.33}
_PLURALS = {k + "s": k for k in KINDS}
_MIN_AREA = 0.002  # blobs under 0.2 % of the image are noise (antialiasing, slivers)
_MAX_COLOUR_DIST = 60.0  # RGB distance to the nearest nominal colour; farther = background


@dataclass(frozen=True)
class Blob:
    """A candidate shape: its mask, colour, guessed kind and size class, and how sure the guess
    is (``kind_score``: 1 = the fill ratio of that kind exactly, lower = between kinds)."""

    mask: np.ndarray
    colour: str
    kind: str
    size: str
    kind_score: float


class ShapesDetector:
    """Find shapes-world shapes by name (see the module doc)."""

    name = SHAPES_DETECTOR
    segmenter = None

    def blobs(self, image: Any) -> list[Blob]:
        """Every shape-like blob of ``image``, largest first."""
        from scipy import ndimage

        pixels = np.asarray(load_image(image), dtype=np.float32)
        h, w = pixels.shape[:2]
        names = list(COLOURS)
        ref = np.array([COLOURS[c] for c in names], dtype=np.float32)
        dist = np.linalg.norm(pixels[:, :, None, :] - ref[None, None], axis=-1)  # (H, W, C)
        nearest = dist.argmin(-1)
        coloured = dist.min(-1) < _MAX_COLOUR_DIST
        out = []
        for ci, colour in enumerate(names):
            labels, n = ndimage.label(coloured & (nearest == ci))
            for k in range(1, n + 1):
                mask = labels == k
                area = int(mask.sum())
                if area < _MIN_AREA * h * w:
                    continue
                ys, xs = np.nonzero(mask)
                box_area = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
                fill = area / box_area
                kind = min(FILL, key=lambda kd: abs(FILL[kd] - fill))
                score = max(0.0, 1.0 - abs(FILL[kind] - fill) / 0.25)
                out.append(Blob(mask, colour, kind, _size(area / (h * w)), score))
        return sorted(out, key=lambda b: -int(b.mask.sum()))

    def detect(self, image: Any, phrases: str | Sequence[str], box_threshold: float = 0.35,
               text_threshold: float = 0.25, max_regions: int | None = None) -> Regions:
        """Regions matching ``phrases``, highest score first. ``score`` = 1 for a blob whose
        colour and size match exactly, times the kind guess's confidence when the phrase names a
        kind; kept when ``> box_threshold`` (``text_threshold`` is accepted and unused)."""
        words = parse_phrases(phrases)
        if not 0 <= box_threshold <= 1:
            raise InputError(f"box_threshold must be in [0, 1], got {box_threshold}")
        if max_regions is not None and (isinstance(max_regions, bool) or not isinstance(max_regions, int)
                                        or max_regions < 1):
            raise InputError(f"max_regions must be a positive integer or None, got {max_regions!r}")
        wanted = [(p, _attributes(p)) for p in words]
        found = []
        for blob in self.blobs(image):
            for phrase, attrs in wanted:
                if not attrs or any(getattr(blob, k) != v for k, v in attrs.items()):
                    continue
                score = blob.kind_score if "kind" in attrs else 1.0
                if score > box_threshold:
                    found.append((score, phrase, blob))
                break  # a blob answers the first phrase it matches
        found.sort(key=lambda t: -t[0])
        if max_regions is not None:
            found = found[:max_regions]
        return Regions(Region.from_mask(b.mask, label=phrase, score=round(float(s), 4), source="shapes-detector")
                       for s, phrase, b in found)


def _size(fraction: float) -> str:
    """The size class whose band is nearest to ``fraction``."""
    def gap(s: str) -> float:
        lo, hi = SIZE_BANDS[s]
        return 0.0 if lo <= fraction <= hi else min(abs(fraction - lo), abs(fraction - hi))

    return min(SIZES, key=gap)


def _attributes(phrase: str) -> dict[str, str]:
    """``"a small red circle"`` → ``{"size": "small", "colour": "red", "kind": "circle"}``."""
    out: dict[str, str] = {}
    for word in phrase.lower().replace(",", " ").split():
        word = _PLURALS.get(word, word)
        if word in COLOURS:
            out["colour"] = word
        elif word in KINDS:
            out["kind"] = word
        elif word in SIZES:
            out["size"] = word
    return out


__all__ = ["ShapesDetector", "Blob", "FILL"]
