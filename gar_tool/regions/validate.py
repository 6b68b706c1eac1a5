"""Validation of the numbers region prompts are made of: image sizes, boxes, point / vertex lists
and point labels. Each check names what was expected and what arrived (:class:`RegionError`), and
list lengths are bounded by :mod:`gar_tool.limits` before any item is converted."""

from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import numpy as np

from gar_tool.errors import RegionError
from gar_tool.limits import limit

Size = tuple[int, int]  # (height, width)


def _check_size(image_size: Any) -> Size:
    """``(H, W)`` as two positive ints, at most ``mask_pixels`` pixels (a mask of that size is allocated)."""
    try:
        values = list(image_size)
        h, w = (operator.index(v) for v in values) if len(values) == 2 else (0, -1)
    except TypeError:
        raise RegionError(f"image_size must be (height, width) integers, got {image_size!r}") from None
    if w == -1:
        raise RegionError(f"image_size must be (height, width), got {tuple(values)!r}")
    if h < 1 or w < 1:
        raise RegionError(f"image_size must be positive, got (height={h}, width={w})")
    if h * w > limit("mask_pixels"):
        raise RegionError(f"image_size {w}x{h} (WxH) is {h * w} pixels, more than the mask_pixels limit "
                          f"of {limit('mask_pixels')}")
    return h, w


def _finite(values: Any, what: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise RegionError(f"{what} must be a list of numbers, got {_short(values)}")
    out = []
    for v in values:
        if isinstance(v, (str, bytes)) or isinstance(v, (Sequence, np.ndarray)) and not np.isscalar(v):
            raise RegionError(f"{what}: {_short(v)} is not a number")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise RegionError(f"{what}: {_short(v)} is not a number") from None
        if not math.isfinite(f):
            raise RegionError(f"{what}: contains a non-finite value ({v!r})")
        out.append(f)
    return out


def _short(value: Any, limit_chars: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit_chars else text[: limit_chars - 3] + "..."


def _pairs(points: Any, what: str, max_count: int, limit_name: str, noun: str = "points") -> list[tuple[float, float]]:
    """A list of ``[x, y]`` pairs (each finite), at most ``max_count`` of them."""
    if isinstance(points, (str, bytes, dict)) or not isinstance(points, (Sequence, np.ndarray)):
        raise RegionError(f"{what} must be a list of [x, y] pairs, got {_short(points)}")
    if len(points) > max_count:
        raise RegionError(f"{what} has {len(points)} {noun}, more than the {limit_name} limit of {max_count}")
    out = []
    for i, p in enumerate(points):
        if isinstance(p, (str, bytes)) or not isinstance(p, (Sequence, np.ndarray)) or (
                isinstance(p, np.ndarray) and p.ndim != 1):
            raise RegionError(f"{what} must be a list of [x, y] pairs, but item {i} is {_short(p)}"
                              + (" (a flat list: group the numbers as [[x, y], ...])" if np.isscalar(p) else ""))
        xy = _finite(p, f"{what}[{i}]")
        if len(xy) != 2:
            raise RegionError(f"{what}[{i}] must be [x, y], got {len(xy)} numbers")
        out.append((xy[0], xy[1]))
    return out


def _point_labels(labels: Any, n: int) -> list[int]:
    if labels is None:
        return [1] * n
    if isinstance(labels, (str, bytes, dict)) or not isinstance(labels, (Sequence, np.ndarray)) or (
            isinstance(labels, np.ndarray) and labels.ndim != 1):
        raise RegionError(f"points: labels must be a list of 1 (inside) / 0 (outside), got {_short(labels)}")
    out = []
    for i, v in enumerate(labels):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) or v not in (0, 1):
            raise RegionError(f"points: labels[{i}] must be 1 (inside) or 0 (outside), got {_short(v)}")
        out.append(int(v))
    if len(out) != n:
        raise RegionError(f"points: {n} points but {len(out)} labels")
    return out


def validate_box(box: Any, image_size: Sequence[int], what: str = "box") -> tuple[float, float, float, float]:
    """Check an ``(x1, y1, x2, y2)`` pixel box against an image of ``image_size = (H, W)``:
    four finite numbers, ``x1 < x2``, ``y1 < y2``, inside ``[0, W] × [0, H]``."""
    h, w = _check_size(image_size)
    try:
        values = list(box)
    except TypeError:
        raise RegionError(f"{what} must be [x1, y1, x2, y2], got {box!r}") from None
    b = _finite(values, what)
    if len(b) != 4:
        raise RegionError(f"{what} must have 4 numbers (x1, y1, x2, y2), got {len(b)}")
    x1, y1, x2, y2 = b
    if not (x1 < x2 and y1 < y2):
        raise RegionError(f"{what} {tuple(b)} is empty or inverted: need x1 < x2 and y1 < y2")
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise RegionError(f"{what} {tuple(b)} lies outside the image (width {w}, height {h})")
    return x1, y1, x2, y2


__all__ = ["validate_box"]
