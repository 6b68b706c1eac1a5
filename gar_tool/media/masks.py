"""Mask image files (PNG, ...) → ``(H, W)`` arrays, with the limits checked before decoding.

A mask file's byte size is checked against ``mask_file_bytes`` (``stat``, before it is read), the
width × height its header declares against ``mask_pixels`` and, when the image size is known,
against that size — all before a pixel is decoded (:func:`gar_tool.media.images.open_header`). A
mask is the alpha channel when the file has one, else the gray value; 16-bit and 32-bit gray files
are read as they are (non-zero = inside), not clipped to 8 bits. No EXIF rotation: a mask refers
to the stored pixel grid.
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np

from gar_tool.errors import InputError, RegionError
from gar_tool.media.images import _PIL_ERRORS, _one_line, check_pixels, open_header, read_file


def read_mask_file(path: str | os.PathLike, image_size: Sequence[int] | None = None, *,
                   max_pixels: int | None = None, max_bytes: int | None = None) -> np.ndarray:
    """The mask in ``path`` as a 2-D array (``uint8`` / ``uint16`` / ``int32`` / ``float32``; non-zero
    = inside). ``image_size`` = ``(H, W)`` the mask must have. Raises :class:`RegionError`."""
    name = f"mask file {os.fspath(path)!r}"
    try:
        data = read_file(path, "mask file", max_bytes, name="mask_file_bytes")
        img = open_header(io.BytesIO(data), name)
        w, h = img.size
        check_pixels(w, h, name, max_pixels, name="mask_pixels")
    except RegionError:
        raise
    except InputError as exc:
        raise RegionError(str(exc)) from None
    if image_size is not None and (h, w) != tuple(int(v) for v in image_size):
        raise RegionError(f"{name} is {w}x{h} (WxH) but the image is {int(image_size[1])}x{int(image_size[0])}")
    try:
        img.load()
        if "A" in img.getbands():
            return np.asarray(img.getchannel("A"))
        if img.mode in ("1", "L", "I", "F") or img.mode.startswith("I;16"):
            return np.asarray(img)
        return np.asarray(img.convert("L"))
    except _PIL_ERRORS as exc:
        raise RegionError(f"{name} is not a readable image ({_one_line(exc)})") from None


__all__ = ["read_mask_file"]
