"""Image loading: every accepted image form becomes one RGB ``PIL.Image``.

Accepted: a filesystem path (``str`` / ``os.PathLike``), a ``PIL.Image.Image``, an ``H×W×3`` (or
``H×W``, ``H×W×4``) ``uint8`` numpy array, or the encoded bytes of an image file. EXIF orientation is
applied when decoding files and bytes, so that pixel coordinates of region prompts always refer to
the image as it is displayed (origin top-left, x to the right, y down).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gar_tool.errors import InputError

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes, bytearray]

#: Refuse to decode images above this many pixels (decompression-bomb guard; 8K × 8K is allowed).
MAX_PIXELS = 8192 * 8192


def _finish(img: Image.Image, what: str) -> Image.Image:
    w, h = img.size
    if w < 1 or h < 1:
        raise InputError(f"{what}: image has no pixels (size {w}x{h})")
    if w * h > MAX_PIXELS:
        raise InputError(f"{what}: image has {w * h} pixels, more than the limit of {MAX_PIXELS}")
    img = ImageOps.exif_transpose(img)
    return img.convert("RGB") if img.mode != "RGB" else img


def _open_encoded(data: bytes, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _finish(img, what)
    except UnidentifiedImageError:
        raise InputError(f"{what}: not a readable image (unknown or unsupported format)") from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise InputError(f"{what}: not a readable image ({exc})") from None


def load_image(image: ImageLike) -> Image.Image:
    """Return ``image`` as an RGB ``PIL.Image`` (EXIF orientation applied for files and bytes).

    Raises ``InputError`` naming the problem: missing file, undecodable data, wrong array
    shape or dtype.
    """
    if isinstance(image, Image.Image):
        return _finish(image, "image")
    if isinstance(image, (bytes, bytearray)):
        return _open_encoded(bytes(image), "image bytes")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image file not found: {str(path)!r}")
        return _open_encoded(path.read_bytes(), f"image file {str(path)!r}")
    if isinstance(image, np.ndarray):
        return image_from_array(image)
    raise InputError(
        "image must be a path, PIL image, HxWx3 uint8 array or encoded bytes; "
        f"got {type(image).__name__}"
    )


def image_from_array(arr: np.ndarray) -> Image.Image:
    """``H×W×3`` / ``H×W×4`` / ``H×W`` ``uint8`` array → RGB image (no EXIF for arrays)."""
    if arr.dtype != np.uint8:
        raise InputError(f"image array must have dtype uint8, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        return _finish(Image.fromarray(np.ascontiguousarray(arr)), "image array")
    raise InputError(f"image array must have shape HxW, HxWx3 or HxWx4; got {arr.shape}")


__all__ = ["ImageLike", "MAX_PIXELS", "load_image", "image_from_array"]
