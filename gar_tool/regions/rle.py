"""COCO run-length encoding (RLE) of masks, through pycocotools.

Wire format: ``{"size": [height, width], "counts": "<compressed string>"}`` (COCO *compressed*
RLE, column-major). Uncompressed RLE (``counts`` a list of ints) is accepted on input.

Decoding checks everything that can be checked without expanding the mask, before pycocotools
allocates ``height × width`` bytes: the declared ``size`` (positive integers, at most the
``mask_pixels`` limit, equal to the image's size when it is known), the counts' alphabet, and the
total of the run lengths (it must be exactly ``height × width``; computed with numpy from the
compressed string, linear in its length).
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import numpy as np

from gar_tool.errors import RegionError
from gar_tool.limits import limit

#: Most characters one run may take in a compressed counts string (5 bits each: 2**40 pixels).
_MAX_RUN_CHARS = 8


def rle_size(rle: Any, max_pixels: int | None = None) -> tuple[int, int]:
    """The ``(height, width)`` an RLE dict declares, validated (positive ints, at most
    ``max_pixels``, default the ``mask_pixels`` limit) without decoding anything."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RegionError('RLE must be one dict with "size" [h, w] and "counts"'
                          + (" (got a list: use --regions-json for several)" if isinstance(rle, list) else ""))
    size = rle["size"]
    try:
        ok = (isinstance(size, (list, tuple)) and len(size) == 2
              and not any(isinstance(v, (bool, np.bool_)) for v in size))
        h, w = (operator.index(v) for v in size) if ok else (0, 0)
    except TypeError:
        ok = False
    if not ok or h < 1 or w < 1:
        raise RegionError(f'RLE "size" must be [height, width] with positive integers, got {_short(size)}')
    cap = limit("mask_pixels") if max_pixels is None else max_pixels
    if h * w > cap:
        raise RegionError(f"RLE declares a {w}x{h} (WxH) mask = {h * w} pixels, more than the mask_pixels "
                          f"limit of {cap}")
    return h, w


def rle_decode(rle: Any, expected_size: Sequence[int] | None = None, *, max_pixels: int | None = None) -> np.ndarray:
    """COCO RLE dict → ``(H, W)`` bool mask. Raises ``RegionError`` for malformed input.

    ``expected_size`` (``(H, W)``, optional): the size the mask must have (the image's), checked
    against the declared ``size`` before decoding. ``max_pixels``: default the ``mask_pixels`` limit.
    """
    from pycocotools import mask as mask_utils

    h, w = rle_size(rle, max_pixels)
    if expected_size is not None and (h, w) != tuple(int(v) for v in expected_size):
        eh, ew = (int(v) for v in expected_size)
        raise RegionError(f"RLE size {w}x{h} (WxH) does not match the image {ew}x{eh}")
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise RegionError("uncompressed RLE counts must be non-negative integers")
        total = sum(counts)
        if total != h * w:
            raise RegionError(f"uncompressed RLE counts sum to {total}, expected height*width = {h * w}")
        obj = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, (str, bytes)):
        if isinstance(counts, str) and not counts.isascii():
            raise RegionError("compressed RLE counts contain characters outside the COCO alphabet")
        raw = counts.encode("ascii") if isinstance(counts, str) else counts
        total = runs_total(raw)
        if total < 0:
            raise RegionError("malformed RLE: compressed counts are not a COCO encoding (characters outside "
                              "'0'..'o', a run cut short, or a negative run)")
        if total != h * w:
            raise RegionError(f"malformed RLE: compressed counts cover {total} pixels, "
                              f"expected height*width = {h * w}")
        obj = {"size": [h, w], "counts": raw}
    else:
        raise RegionError(f'RLE "counts" must be a string or a list of ints, got {type(counts).__name__}')
    try:
        mask = mask_utils.decode(obj)
    except (ValueError, TypeError, OverflowError) as exc:  # what pycocotools raises on bad input
        raise RegionError(f"malformed RLE: {exc}") from None
    return mask.astype(bool)


def runs_total(raw: bytes) -> int:
    """Sum of the run lengths in a COCO compressed counts string, or -1 when the string is not a
    valid encoding (characters outside ``'0'..'o'``, a truncated run, a negative run).

    The format (pycocotools ``rleFrString``): each run is a little-endian group of 5-bit digits
    (char - 48; bit 0x20 = another digit follows, bit 0x10 of the last digit = negative), and run
    ``m > 2`` is stored as a difference to run ``m - 2``. Vectorised: linear in ``len(raw)``.
    """
    if not raw:
        return -1
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        return -1
    ends = (c & 0x20) == 0
    if not ends[-1]:
        return -1  # the last run is cut short
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    run_of = np.cumsum(np.concatenate(([0], ends[:-1].astype(np.int64))))  # run index of each char
    digit = np.arange(c.size) - starts[run_of]
    if digit.max() >= _MAX_RUN_CHARS:
        return -1
    x = np.bitwise_or.reduceat((c & 0x1F) << (5 * digit), starts)
    last = c[np.flatnonzero(ends)]
    negative = (last & 0x10) != 0
    lengths = np.diff(np.concatenate((starts, [c.size])))
    x = np.where(negative, x - (np.int64(1) << (5 * lengths)), x)
    runs = x.copy()
    if runs.size > 3:  # run m > 2 adds run m - 2: two interleaved cumulative sums from runs 1 and 2
        runs[1::2] = np.cumsum(x[1::2])
        runs[2::2] = np.cumsum(x[2::2])
    if (runs < 0).any():
        return -1
    return int(runs.sum())


def rle_encode(mask: np.ndarray) -> dict:
    """``(H, W)`` bool mask → COCO compressed RLE ``{"size": [h, w], "counts": str}``."""
    from pycocotools import mask as mask_utils

    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    enc = mask_utils.encode(m)
    return {"size": [int(enc["size"][0]), int(enc["size"][1])], "counts": enc["counts"].decode("ascii")}


def _short(value: Any, limit_chars: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit_chars else text[: limit_chars - 3] + "..."


__all__ = ["rle_decode", "rle_encode", "rle_size", "runs_total"]
