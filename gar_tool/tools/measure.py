"""Exact mask geometry for ``gar_measure``: areas, boxes, centroids, pairwise relations, orderings.

Conventions: masks are ``(H, W)`` ``bool`` arrays of one image. Pixel ``(row, col)`` covers
``[col, col + 1) × [row, row + 1)`` in image coordinates (origin top-left, x right, y down), so its
centre is ``(col + 0.5, row + 0.5)``. Boxes are ``(x1, y1, x2, y2)`` with ``x2`` / ``y2``
exclusive, as in :mod:`gar_tool.regions.region`; a centroid is the mean of the mask's pixel centres (the
centre of a filled box is therefore the box centre).

Pairwise relations describe region A (earlier in the list) relative to region B:
``dx = cx_B - cx_A`` (> 0: A is left of B), ``dy = cy_B - cy_A`` (> 0: A is above B, y grows
downward); equal centroid coordinates give ``same_x`` / ``same_y``. ``iou`` = |A∩B| / |A∪B|,
``overlap_fraction`` = |A∩B| / min(|A|, |B|), ``a_inside_b`` = |A∩B| / |A| (containment of A in B),
``b_inside_a`` = |A∩B| / |B|. Orderings sort by centroid x (left to right) and centroid y (top to
bottom); ties keep list order. Pure numpy; no rounding here (the tool output rounds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class MaskStats:
    """Geometry of one mask: ``area`` pixels, ``area_fraction`` of the image, ``box`` (xyxy,
    exclusive max) and ``centroid`` ``(x, y)`` in pixels."""

    area: int
    area_fraction: float
    box: tuple[float, float, float, float]
    centroid: tuple[float, float]


@dataclass(frozen=True)
class PairStats:
    """Relation of mask ``a`` to mask ``b`` (indices into the measured list); see module doc."""

    a: int
    b: int
    horizontal: str  # "left_of" | "right_of" | "same_x"  (A relative to B)
    vertical: str  # "above" | "below" | "same_y"
    dx: float
    dy: float
    distance: float
    intersection: int
    union: int
    iou: float
    overlap_fraction: float
    a_inside_b: float
    b_inside_a: float


@dataclass(frozen=True)
class Measurement:
    """``regions[i]`` for mask ``i``; ``pairs`` for every ``i < j`` in order; orderings are index lists."""

    image_size: tuple[int, int]  # (height, width)
    regions: list[MaskStats]
    pairs: list[PairStats]
    left_to_right: list[int]
    top_to_bottom: list[int]


def mask_stats(mask: np.ndarray) -> MaskStats:
    """Area, area fraction, box and centroid of one non-empty ``(H, W)`` bool mask."""
    m = _check_mask(mask)
    rows = m.sum(axis=1, dtype=np.int64)  # (H,) pixels per row
    cols = m.sum(axis=0, dtype=np.int64)  # (W,) pixels per column
    area = int(rows.sum())
    if area == 0:
        raise ValueError("cannot measure an empty mask")
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    cx = float((cols * np.arange(m.shape[1])).sum()) / area + 0.5
    cy = float((rows * np.arange(m.shape[0])).sum()) / area + 0.5
    box = (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1))
    return MaskStats(area, area / float(m.size), box, (cx, cy))


def intersection_area(a: np.ndarray, b: np.ndarray, box_a: Sequence[float], box_b: Sequence[float]) -> int:
    """|A ∩ B| in pixels, counting only inside the intersection of the two boxes."""
    x1, y1 = int(max(box_a[0], box_b[0])), int(max(box_a[1], box_b[1]))
    x2, y2 = int(min(box_a[2], box_b[2])), int(min(box_a[3], box_b[3]))
    if x1 >= x2 or y1 >= y2:
        return 0
    return int(np.count_nonzero(a[y1:y2, x1:x2] & b[y1:y2, x1:x2]))


def _side(delta: float, positive: str, negative: str, same: str) -> str:
    if delta > 0:
        return positive
    if delta < 0:
        return negative
    return same


def pair_stats(i: int, j: int, a: np.ndarray, b: np.ndarray, sa: MaskStats, sb: MaskStats) -> PairStats:
    """Relation of mask ``a`` (index ``i``) to mask ``b`` (index ``j``)."""
    inter = intersection_area(a, b, sa.box, sb.box)
    union = sa.area + sb.area - inter
    dx = sb.centroid[0] - sa.centroid[0]
    dy = sb.centroid[1] - sa.centroid[1]
    return PairStats(
        a=i, b=j, horizontal=_side(dx, "left_of", "right_of", "same_x"),
        vertical=_side(dy, "above", "below", "same_y"), dx=dx, dy=dy, distance=math.hypot(dx, dy),
        intersection=inter, union=union, iou=inter / union,
        overlap_fraction=inter / min(sa.area, sb.area), a_inside_b=inter / sa.area, b_inside_a=inter / sb.area)


def measure(masks: Sequence[np.ndarray]) -> Measurement:
    """Measure ``N >= 1`` non-empty ``(H, W)`` bool masks of one image (see module doc)."""
    items = [_check_mask(m) for m in masks]
    if not items:
        raise ValueError("measure needs at least one mask")
    shapes = {m.shape for m in items}
    if len(shapes) != 1:
        raise ValueError(f"masks have different shapes {sorted(shapes)}; they must belong to one image")
    stats = [mask_stats(m) for m in items]
    pairs = [pair_stats(i, j, items[i], items[j], stats[i], stats[j])
             for i in range(len(items)) for j in range(i + 1, len(items))]
    order = range(len(items))
    left_to_right = sorted(order, key=lambda k: (stats[k].centroid[0], k))
    top_to_bottom = sorted(order, key=lambda k: (stats[k].centroid[1], k))
    h, w = items[0].shape
    return Measurement((h, w), stats, pairs, left_to_right, top_to_bottom)


def _check_mask(mask: np.ndarray) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.bool_:
        got = f"{type(mask).__name__} {getattr(mask, 'dtype', '')} {getattr(mask, 'shape', '')}".strip()
        raise ValueError(f"a mask must be a 2-D bool array, got {got}")
    return mask


__all__ = ["MaskStats", "PairStats", "Measurement", "mask_stats", "pair_stats", "intersection_area",
           "measure"]
