"""Region prompts: one canonical form for every way a user can point at part of an image.

A :class:`Region` is a boolean mask of the image's size (``H×W``, ``numpy.bool_``, ``True`` inside)
plus its box. Coordinates are pixels with the origin at the image's top-left corner, x to the right,
y down. Boxes are ``(x1, y1, x2, y2)`` floats with ``x2``/``y2`` exclusive: a mask covering pixel
columns 3..7 has ``x1 = 3`` and ``x2 = 8`` (the COCO convention).

Constructors: :meth:`Region.from_mask` (bool / 0-1 / 0-255 arrays), :meth:`Region.from_mask_file`,
:meth:`Region.from_rle` (COCO RLE, compressed or not), :meth:`Region.from_box`,
:meth:`Region.from_points`, :meth:`Region.from_polygon` (closed polygon) and
:meth:`Region.from_scribble` (open polyline). Box, point and scribble prompts are not masks: without
a ``segmenter`` a box becomes its filled rectangle and each positive point a small disc (negative
points are ignored); pass a segmenter (SAM, see :mod:`gar_tool.grounding`) to turn them into real
object masks, which is what GAR was trained on.

:class:`Regions` is an ordered, validated collection (all masks the same size); ``regions[i]`` is
``<Prompt{i}>`` in a GAR question.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
from PIL import Image, ImageDraw

from gar_tool.errors import RegionError
from gar_tool.limits import limit
from gar_tool.regions.validate import _check_size, _pairs, _point_labels, validate_box

Size = tuple[int, int]  # (height, width)


class Segmenter(Protocol):
    """Anything that turns box / point prompts into masks (implemented by the grounding module)."""

    def segment(self, image: Any, boxes: Any = None, points: Any = None,
                point_labels: Any = None) -> "Regions": ...


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Box ``(x1, y1, x2, y2)`` of a non-empty bool mask, ``x2``/``y2`` exclusive (pixels)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


@dataclass(frozen=True, eq=False)
class Region:
    """One region prompt.

    Attributes:
        mask: ``(H, W)`` ``bool`` array, ``True`` inside the region. Never empty.
        box: ``(x1, y1, x2, y2)`` pixel box of the mask, ``x2``/``y2`` exclusive.
        label: optional text label (e.g. the phrase a detector matched).
        score: optional confidence in ``[0, 1]`` (a detector's score).
        source: how the region was given: ``mask``, ``rle``, ``box``, ``points``, ``polygon``,
            ``scribble``; ``box-rect`` / ``points-disc`` mark box and point prompts that were
            *not* refined by a segmenter.
        id: optional handle (``"r1"``) given by a session store.
    """

    mask: np.ndarray
    box: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))
    label: str | None = None
    score: float | None = None
    source: str = "mask"
    id: str | None = None

    def __post_init__(self) -> None:
        m = self.mask
        if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype != np.bool_:
            got = f"{type(m).__name__} {getattr(m, 'dtype', '')} {getattr(m, 'shape', '')}"
            raise RegionError(f"Region.mask must be a 2-D bool array, got {got.strip()}")
        if not m.any():
            raise RegionError(f"region mask is empty (no pixel set in a {m.shape[1]}x{m.shape[0]} mask)")
        object.__setattr__(self, "box", mask_box(m))

    # ------------------------------------------------------------------ properties
    @property
    def size(self) -> Size:
        """``(height, width)`` of the image the mask belongs to."""
        return self.mask.shape

    @property
    def area(self) -> int:
        """Number of pixels inside the region."""
        return int(self.mask.sum())

    def with_meta(self, **changes: Any) -> "Region":
        """Copy with ``label`` / ``score`` / ``source`` / ``id`` replaced (the mask is shared)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_mask(cls, mask: Any, image_size: Sequence[int] | None = None, **meta: Any) -> "Region":
        """From a 2-D array: ``bool``, integers (non-zero = inside, e.g. 0/1 or 0/255), or floats
        that are exactly 0/1. ``image_size`` (``(H, W)``), when given, must equal the mask shape."""
        try:
            arr = np.asarray(mask)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise RegionError(f"mask must be a 2-D array (H, W) of numbers ({_one_line(exc)})") from None
        if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
            arr = arr[..., 0] if arr.shape[2] != 4 else arr[..., 3]
        if arr.ndim != 2:
            raise RegionError(f"mask must be 2-D (H, W), got shape {arr.shape}")
        if arr.size > limit("mask_pixels"):
            raise RegionError(f"mask is {arr.shape[1]}x{arr.shape[0]} (WxH), more than the mask_pixels limit "
                              f"of {limit('mask_pixels')} pixels")
        if arr.dtype == np.bool_:
            out = arr.copy()
        elif np.issubdtype(arr.dtype, np.integer):
            out = arr != 0
        elif np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise RegionError("mask contains NaN or infinite values")
            if not np.isin(arr, (0.0, 1.0)).all():
                raise RegionError("float mask must contain only 0 and 1; threshold probability maps first")
            out = arr == 1.0
        else:
            raise RegionError(f"mask dtype must be bool, integer or float, got {arr.dtype}")
        if image_size is not None and tuple(out.shape) != _check_size(image_size):
            h, w = _check_size(image_size)
            raise RegionError(
                f"mask size {out.shape[1]}x{out.shape[0]} (WxH) does not match the image {w}x{h}")
        meta.setdefault("source", "mask")
        return cls(np.ascontiguousarray(out), **meta)

    @classmethod
    def from_mask_file(cls, path: str | Path, image_size: Sequence[int] | None = None,
                       **meta: Any) -> "Region":
        """From a mask image (PNG...): non-zero pixels (alpha channel if present) are inside.

        Size limits (``mask_file_bytes``, ``mask_pixels``) and ``image_size`` are checked before
        the file is decoded (:func:`gar_tool.media.masks.read_mask_file`)."""
        from gar_tool.media.masks import read_mask_file

        arr = read_mask_file(path, None if image_size is None else _check_size(image_size))
        meta.setdefault("source", "mask")
        return cls.from_mask(arr, image_size, **meta)

    @classmethod
    def from_rle(cls, rle: dict, image_size: Sequence[int] | None = None, **meta: Any) -> "Region":
        """From a COCO RLE dict ``{"size": [h, w], "counts": str | bytes | list[int]}``.

        The declared ``size`` is checked (``mask_pixels``, and against ``image_size``) and the run
        lengths are summed before the mask is expanded (:func:`gar_tool.regions.rle.rle_decode`)."""
        from gar_tool.regions.rle import rle_decode

        meta.setdefault("source", "rle")
        expected = None if image_size is None else _check_size(image_size)
        return cls.from_mask(rle_decode(rle, expected_size=expected), image_size, **meta)

    @classmethod
    def from_box(cls, box: Sequence[float], image_size: Sequence[int], *, image: Any = None,
                 segmenter: Segmenter | None = None, **meta: Any) -> "Region":
        """From an ``(x1, y1, x2, y2)`` pixel box (``x1 < x2``, ``y1 < y2``, inside the image).

        With a ``segmenter`` and the ``image`` the box is turned into an object mask; otherwise
        the region is the box's rectangle (every pixel the box touches), ``source="box-rect"``.
        """
        h, w = _check_size(image_size)
        x1, y1, x2, y2 = b = list(validate_box(box, (h, w)))
        if segmenter is not None:
            return _segment_one(segmenter, image, dict(boxes=[b]), meta, "box")
        mask = np.zeros((h, w), dtype=bool)
        mask[int(math.floor(y1)):int(math.ceil(y2)), int(math.floor(x1)):int(math.ceil(x2))] = True
        meta.setdefault("source", "box-rect")
        return cls(mask, **meta)

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]], image_size: Sequence[int],
                    labels: Sequence[Any] | None = None, *, radius: float | None = None,
                    image: Any = None, segmenter: Segmenter | None = None, **meta: Any) -> "Region":
        """From click points ``[[x, y], ...]`` with optional ``labels`` (1 = inside, 0 = outside).

        With a ``segmenter`` the clicks are turned into an object mask. Without one, each positive
        point becomes a disc of ``radius`` pixels (default: 2 % of the shorter image side, at
        least 3) and negative points are ignored; ``source="points-disc"``.
        """
        h, w = _check_size(image_size)
        pts = _pairs(points, "points", limit("points_per_region"), "points_per_region")
        if not pts:
            raise RegionError("points: need at least one [x, y] point")
        labs = _point_labels(labels, len(pts))
        for x, y in pts:
            if not (0 <= x < w and 0 <= y < h):
                raise RegionError(f"point ({x}, {y}) lies outside the image (width {w}, height {h})")
        if 1 not in labs:
            raise RegionError("points: need at least one positive (label 1) point")
        if segmenter is not None:
            return _segment_one(segmenter, image, dict(points=[pts], point_labels=[labs]), meta, "points")
        r = radius if radius is not None else max(3.0, 0.02 * min(h, w))
        yy, xx = np.ogrid[:h, :w]
        mask = np.zeros((h, w), dtype=bool)
        for (x, y), lab in zip(pts, labs):
            if lab == 1:
                mask |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        meta.setdefault("source", "points-disc")
        return cls(mask, **meta)

    @classmethod
    def from_polygon(cls, polygon: Sequence[Sequence[float]], image_size: Sequence[int],
                     **meta: Any) -> "Region":
        """From a closed polygon ``[[x, y], ...]`` (at least 3 vertices), filled."""
        pts = cls._vertices(polygon, image_size, 3, "polygon")
        h, w = _check_size(image_size)
        img = Image.new("1", (w, h), 0)
        ImageDraw.Draw(img).polygon(pts, fill=1, outline=1)
        meta.setdefault("source", "polygon")
        return cls.from_mask(np.asarray(img, dtype=bool), **meta)

    @classmethod
    def from_scribble(cls, points: Sequence[Sequence[float]], image_size: Sequence[int],
                      width: int | None = None, **meta: Any) -> "Region":
        """From an open polyline ``[[x, y], ...]`` drawn ``width`` pixels wide (default 1 % of
        the shorter side, at least 3). A stroke is not an object mask: prefer a segmenter."""
        pts = cls._vertices(polygon=points, image_size=image_size, min_len=1, what="scribble")
        h, w = _check_size(image_size)
        lw = width if width is not None else max(3, round(0.01 * min(h, w)))
        img = Image.new("1", (w, h), 0)
        draw = ImageDraw.Draw(img)
        if len(pts) == 1:
            draw.ellipse([pts[0][0] - lw / 2, pts[0][1] - lw / 2, pts[0][0] + lw / 2, pts[0][1] + lw / 2], fill=1)
        else:
            draw.line(pts, fill=1, width=int(lw), joint="curve")
        meta.setdefault("source", "scribble")
        return cls.from_mask(np.asarray(img, dtype=bool), **meta)

    @staticmethod
    def _vertices(polygon: Sequence[Sequence[float]], image_size: Sequence[int], min_len: int,
                  what: str) -> list[tuple[float, float]]:
        h, w = _check_size(image_size)
        pts = _pairs(polygon, what, limit("polygon_vertices"), "polygon_vertices", "vertices")
        if len(pts) < min_len:
            raise RegionError(f"{what} needs at least {min_len} [x, y] vertices, got {len(pts)}")
        for x, y in pts:
            if not (0 <= x <= w and 0 <= y <= h):
                raise RegionError(f"{what} vertex ({x}, {y}) lies outside the image (width {w}, height {h})")
        return pts


def _segment_one(segmenter: Segmenter, image: Any, prompt: dict, meta: dict, kind: str) -> Region:
    if image is None:
        raise RegionError(f"a segmenter needs the image to turn a {kind} prompt into a mask")
    out = segmenter.segment(image, **prompt)
    if len(out) != 1:
        raise RegionError(f"segmenter returned {len(out)} masks for one {kind} prompt")
    # Keep the segmenter's own source ("sam", or "box-rect" when it fell back) unless the caller set one.
    keep = {k: v for k, v in meta.items() if k in ("label", "score", "source", "id")}
    return out[0].with_meta(**keep)


class Regions(Sequence[Region]):
    """An ordered collection of regions of one image; ``regions[i]`` is ``<Prompt{i}>``."""

    def __init__(self, regions: Iterable[Region] = ()) -> None:
        items = list(regions)
        for i, r in enumerate(items):
            if not isinstance(r, Region):
                raise RegionError(f"Regions item {i} must be a Region, got {type(r).__name__}")
        sizes = {r.size for r in items}
        if len(sizes) > 1:
            raise RegionError(f"regions belong to images of different sizes: {sorted(sizes)}")
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Regions(self._items[index])
        if isinstance(index, np.ndarray) and index.dtype == np.bool_:
            return Regions([r for r, keep in zip(self._items, index) if keep])
        return self._items[index]

    def __iter__(self) -> Iterator[Region]:
        return iter(self._items)

    def __repr__(self) -> str:
        body = ", ".join(f"{r.id or i}:{r.label or r.source}" for i, r in enumerate(self._items))
        return f"Regions([{body}])"

    @property
    def masks(self) -> np.ndarray:
        """``(N, H, W)`` bool array (``(0, 0, 0)`` when empty)."""
        if not self._items:
            return np.zeros((0, 0, 0), dtype=bool)
        return np.stack([r.mask for r in self._items])

    @property
    def boxes(self) -> np.ndarray:
        """``(N, 4)`` float64 array of xyxy pixel boxes (exclusive max)."""
        return np.array([r.box for r in self._items], dtype=np.float64).reshape(-1, 4)

    @property
    def labels(self) -> list[str | None]:
        return [r.label for r in self._items]

    @property
    def scores(self) -> list[float | None]:
        return [r.score for r in self._items]

    @property
    def size(self) -> Size | None:
        """``(height, width)`` shared by all masks, or ``None`` when empty."""
        return self._items[0].size if self._items else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


__all__ = ["Region", "Regions", "Segmenter", "mask_box", "validate_box"]
