"""COCO run-length encoding (RLE) of masks, through pycocotools.

Wire format: ``{"size": [height, width], "counts": "<compressed string>"}`` (COCO *compressed*
RLE, column-major). Uncompressed RLE (``counts`` a list of ints) is accepted on input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gar_tool.errors import RegionError


def rle_decode(rle: Any) -> np.ndarray:
    """COCO RLE dict → ``(H, W)`` bool mask. Raises ``RegionError`` for malformed input."""
    from pycocotools import mask as mask_utils

    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RegionError('RLE must be one dict with "size" [h, w] and "counts"'
                          + (" (got a list: use --regions-json for several)" if isinstance(rle, list) else ""))
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise RegionError(f'RLE "size" must be [height, width] with positive integers, got {size!r}')
    h, w = size
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise RegionError("uncompressed RLE counts must be non-negative integers")
        if sum(counts) != h * w:
            raise RegionError(f"uncompressed RLE counts sum to {sum(counts)}, expected h*w = {h * w}")
        obj = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, (str, bytes)):
        raw = counts.encode("latin-1", "replace") if isinstance(counts, str) else counts
        if any(b < 48 or b > 111 for b in raw) or (isinstance(counts, str) and not counts.isascii()):
            raise RegionError("compressed RLE counts contain characters outside the COCO alphabet")
        # pycocotools decodes some malformed strings (e.g. "") into garbage: check the run total.
        total = _runs_total(raw)
        if total != h * w:
            raise RegionError(f"malformed RLE: compressed counts cover {max(total, 0)} pixels, "
                              f"expected height*width = {h * w}")
        obj = {"size": [h, w], "counts": raw}
    else:
        raise RegionError(f'RLE "counts" must be a string or a list of ints, got {type(counts).__name__}')
    try:
        mask = mask_utils.decode(obj)
    except Exception as exc:  # pycocotools raises ValueError / TypeError on bad input
        raise RegionError(f"malformed RLE: {exc}") from None
    return mask.astype(bool)


def _runs_total(raw: bytes) -> int:
    """Sum of the run lengths in a COCO compressed counts string (LEB128-like, 5 bits a char)."""
    runs: list[int] = []
    i = 0
    while i < len(raw):
        x, k, more = 0, 0, True
        while more:
            if i >= len(raw):
                return -1
            c = raw[i] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            i += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    if any(r < 0 for r in runs):
        return -1
    return sum(runs)


def rle_encode(mask: np.ndarray) -> dict:
    """``(H, W)`` bool mask → COCO compressed RLE ``{"size": [h, w], "counts": str}``."""
    from pycocotools import mask as mask_utils

    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    enc = mask_utils.encode(m)
    return {"size": [int(enc["size"][0]), int(enc["size"][1])], "counts": enc["counts"].decode("ascii")}


__all__ = ["rle_decode", "rle_encode"]
