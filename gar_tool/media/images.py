"""Image decoding: every accepted image form becomes one RGB ``PIL.Image``, limits checked first.

Accepted: a filesystem path (``str`` / ``os.PathLike``), a ``PIL.Image.Image``, an ``H×W×3`` (or
``H×W``, ``H×W×4``) ``uint8`` numpy array, or the encoded bytes of an image file. EXIF orientation is
applied when decoding files and bytes, so that pixel coordinates of region prompts always refer to
the image as it is displayed (origin top-left, x to the right, y down).

Limits (:mod:`gar_tool.limits`) are checked **before** anything is decoded: the file size against
``image_bytes`` (``stat`` before reading), then the width × height the file's *header* declares
against ``image_pixels``. The header is read by PIL's registered format openers directly
(:func:`open_header`), so PIL's own decompression-bomb check in ``Image.open`` — a warning on
stderr, then an exception — is never reached; a bomb check a format plugin makes while decoding
(GIF frames, TIFF tiles) is caught and reported like ours. Only the formats in
:data:`IMAGE_FORMATS` are decoded (fewer parsers exposed to untrusted files).

Pixel modes: 16-bit grayscale (``I;16*``) and 32-bit integer (``I``) images are rescaled from
their full 16-bit range to 8 bits (``v * 255 / 65535``) rather than clipped (which makes them
white); float (``F``) images in ``[0, 1]`` are scaled by 255, others clipped to ``[0, 255]``;
every other mode goes through ``PIL.Image.convert("RGB")`` (alpha dropped).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import IO, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps

from gar_tool.errors import InputError
from gar_tool.limits import LIMITS, limit

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes, bytearray]

#: Formats decoded from files and bytes (PIL format names).
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "GIF", "BMP", "TIFF", "WEBP", "PPM", "AVIF")
#: Default most pixels of one image (``LIMITS["image_pixels"]``; kept for callers of the old name).
MAX_PIXELS = limit("image_pixels")

#: What PIL raises on malformed or truncated data while reading a header or decoding pixels.
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error,
               Image.DecompressionBombError, Image.DecompressionBombWarning)


def _limit_hint(name: str) -> str:
    flag = LIMITS[name].flag
    return f" (the {name} limit; servers raise it with {flag})" if flag else f" (the {name} limit)"


def check_pixels(width: int, height: int, what: str, max_pixels: int | None = None,
                 name: str = "image_pixels") -> None:
    """Raise ``InputError`` unless ``1 <= width * height <= max_pixels`` (default: limit ``name``)."""
    cap = limit(name) if max_pixels is None else max_pixels
    if width < 1 or height < 1:
        raise InputError(f"{what}: image has no pixels (size {width}x{height})")
    if width * height > cap:
        raise InputError(f"{what} has {width}x{height} = {width * height} pixels, more than the limit of "
                         f"{cap}{_limit_hint(name)}; send a downscaled image")


def check_bytes(size: int, what: str, max_bytes: int | None = None, name: str = "image_bytes") -> None:
    """Raise ``InputError`` when ``size`` (bytes) exceeds ``max_bytes`` (default: limit ``name``)."""
    cap = limit(name) if max_bytes is None else max_bytes
    if size > cap:
        raise InputError(f"{what} is {size} bytes, more than the limit of {cap}{_limit_hint(name)}")


def open_header(fp: IO[bytes], what: str) -> ImageFile.ImageFile:
    """Identify the image in ``fp`` and read its header only (no pixels decoded).

    The same search over PIL's registered openers as ``PIL.Image.open``, restricted to
    :data:`IMAGE_FORMATS` and without ``Image.open``'s decompression-bomb check, so the caller's
    own pixel limit decides first. Raises ``InputError`` for unreadable data.
    """
    prefix = fp.read(16)
    Image.preinit()
    for attempt in range(2):
        for fmt in IMAGE_FORMATS:
            entry = Image.OPEN.get(fmt)
            if entry is None:
                continue
            factory, accept = entry
            ok = accept(prefix) if accept is not None else True
            if not ok or isinstance(ok, str):
                continue
            fp.seek(0)
            try:
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # not this format after all (PIL's own rule)
            except _PIL_ERRORS as exc:
                raise InputError(f"{what} is not a readable image ({_one_line(exc)})") from None
        if attempt == 0 and not all(f in Image.OPEN for f in IMAGE_FORMATS):
            Image.init()  # plugins beyond the common ones are registered on demand
        else:
            break
    raise InputError(f"{what} is not a readable image (unknown or unsupported format; expected one of "
                     f"{', '.join(IMAGE_FORMATS)})")


def decode_bytes(data: bytes, what: str = "image data", *, max_pixels: int | None = None,
                 max_bytes: int | None = None, exif: bool = True) -> Image.Image:
    """Encoded image bytes → RGB image: byte and header-pixel limits first, then decode, EXIF
    orientation (``exif=True``) and the mode conversion of the module docstring."""
    check_bytes(len(data), what, max_bytes)
    img = open_header(io.BytesIO(data), what)
    check_pixels(img.size[0], img.size[1], what, max_pixels)
    try:
        img.load()
        shown: Image.Image = ImageOps.exif_transpose(img) if exif else img
        return to_rgb(shown)
    except _PIL_ERRORS as exc:
        raise InputError(f"{what} is not a readable image ({_one_line(exc)})") from None


def read_file(path: str | os.PathLike, what: str, max_bytes: int | None = None,
              name: str = "image_bytes") -> bytes:
    """The bytes of the regular file ``path`` (``what``: its kind, e.g. ``"image file"``), its size
    checked (``stat``, limit ``name``) before it is read."""
    p = Path(path)
    try:
        exists = p.is_file()
    except (OSError, ValueError):  # e.g. a NUL character in the path, a name too long
        exists = False
    if not exists:
        raise InputError(f"{what} not found: {str(p)!r}")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(p)!r} ({exc.strerror or exc})") from None
    check_bytes(size, f"{what} {str(p)!r}", max_bytes, name)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(p)!r} ({exc.strerror or exc})") from None


def load_image(image: ImageLike, *, max_pixels: int | None = None, max_bytes: int | None = None) -> Image.Image:
    """Return ``image`` as an RGB ``PIL.Image`` (EXIF orientation applied for files and bytes).

    ``max_pixels`` / ``max_bytes`` default to the ``image_pixels`` / ``image_bytes`` limits.
    Raises ``InputError`` naming the problem: missing file, undecodable data, too many bytes or
    pixels (checked before decoding), wrong array shape or dtype.
    """
    if isinstance(image, Image.Image):
        check_pixels(image.width, image.height, "image", max_pixels)
        try:
            rgb = to_rgb(image)
        except _PIL_ERRORS as exc:  # a lazily opened PIL image whose pixels are broken
            raise InputError(f"image is not a readable image ({_one_line(exc)})") from None
        return rgb
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(image), "image data", max_pixels=max_pixels, max_bytes=max_bytes)
    if isinstance(image, (str, os.PathLike)):
        data = read_file(image, "image file", max_bytes)
        return decode_bytes(data, f"image file {os.fspath(image)!r}", max_pixels=max_pixels, max_bytes=max_bytes)
    if isinstance(image, np.ndarray):
        return image_from_array(image, max_pixels=max_pixels)
    raise InputError(
        "image must be a path, PIL image, HxWx3 uint8 array or encoded bytes; "
        f"got {type(image).__name__}"
    )


def image_from_array(arr: np.ndarray, *, max_pixels: int | None = None) -> Image.Image:
    """``H×W×3`` / ``H×W×4`` / ``H×W`` ``uint8`` array → RGB image (no EXIF for arrays)."""
    if arr.dtype != np.uint8:
        raise InputError(f"image array must have dtype uint8, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        check_pixels(arr.shape[1], arr.shape[0], "image array", max_pixels)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))
    raise InputError(f"image array must have shape HxW, HxWx3 or HxWx4; got {arr.shape}")


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` in mode RGB: 16/32-bit integer and float grayscale rescaled, not clipped (see module doc)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode == "I" or img.mode == "F":
        arr = np.asarray(img)
        if img.mode == "F":
            arr = arr.astype(np.float64)
            finite = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
            scaled = finite * 255.0 if finite.size and 0.0 <= finite.min() and finite.max() <= 1.0 else finite
        else:
            scaled = arr.astype(np.float64) * (255.0 / 65535.0)
        gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")


def _one_line(exc: BaseException, limit_chars: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit_chars else text[: limit_chars - 3] + "..."


__all__ = ["ImageLike", "IMAGE_FORMATS", "MAX_PIXELS", "load_image", "image_from_array", "decode_bytes",
           "open_header", "read_file", "check_pixels", "check_bytes", "to_rgb"]
