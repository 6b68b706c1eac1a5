"""Images shown to the judge: the original GAR judges' "focal crop" of an object and of its mask.

Focal crop (GAR's ``eval_simple.py`` / ``eval_detailed.py`` / DLC ``eval_gpt_with_image.py``): take
the mask's box ``(x0, y0, w, h)`` (pixels, exclusive max), grow ``w`` and ``h`` to at least 56
around the box centre, then cut rows ``[y0 - h, y0 + 2h)`` and columns ``[x0 - w, x0 + 2w)``
clipped to the image: the object with one box-size of context on every side.

Images are sent PNG-encoded as ``data:`` URLs. (The original labels the same PNG bytes
``image/jpeg``; the bytes are identical, only the declared type here is the correct one.)
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from gar_tool.errors import InputError

#: Smallest crop box side, in pixels (the original's ``min_box_w`` / ``min_box_h`` defaults).
MIN_BOX = 56


def open_rgb(path: str | Path) -> np.ndarray:
    """``H×W×3`` uint8 pixels of an image file, *without* applying EXIF orientation.

    Benchmark masks refer to the stored pixel grid (the original scripts use ``Image.open`` and
    never transpose), so the image must not be rotated here.
    """
    from gar_tool.media.images import decode_bytes, read_file

    p = Path(path)  # the same limits, checked before decoding, as every other image gar_tool reads
    return np.asarray(decode_bytes(read_file(p, "image file"), f"image {str(p)!r}", exif=False))


def focal_crop_bounds(mask: np.ndarray, min_box: int = MIN_BOX) -> tuple[slice, slice]:
    """Row and column slices of the focal crop of a non-empty ``(H, W)`` bool mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise InputError("cannot crop around an empty mask")
    img_h, img_w = mask.shape
    x0, y0 = int(xs.min()), int(ys.min())
    w, h = int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0
    xc, yc = x0 + w / 2, y0 + h / 2
    w, h = max(w, min_box), max(h, min_box)
    x0, y0 = int(xc - w / 2), int(yc - h / 2)  # int() truncates toward zero, as in the original
    return (slice(max(y0 - h, 0), min(y0 + 2 * h, img_h)),
            slice(max(x0 - w, 0), min(x0 + 2 * w, img_w)))


def png_data_url(pixels: np.ndarray) -> str:
    """``H×W×3`` uint8 image or ``H×W`` bool / uint8 mask → ``data:image/png;base64,...``."""
    arr = pixels.astype(np.uint8) * 255 if pixels.dtype == np.bool_ else pixels
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def focal_crops(image: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    """Data URLs of the focal crop of ``image`` and of ``mask`` (white object on black)."""
    if image.shape[:2] != mask.shape:
        raise InputError(f"mask size {mask.shape[1]}x{mask.shape[0]} (WxH) does not match the image "
                         f"{image.shape[1]}x{image.shape[0]}")
    rows, cols = focal_crop_bounds(mask)
    return png_data_url(image[rows, cols]), png_data_url(mask[rows, cols])


def image_part(url: str) -> dict:
    """An OpenAI chat content part showing the image at ``url``."""
    return {"type": "image_url", "image_url": {"url": url}}


def text_part(text: str) -> dict:
    """An OpenAI chat content part with ``text``."""
    return {"type": "text", "text": text}


__all__ = ["MIN_BOX", "open_rgb", "focal_crop_bounds", "png_data_url", "focal_crops", "image_part",
           "text_part"]
