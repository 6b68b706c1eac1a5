"""Hostile inputs for the bad-input suites: image files whose header declares far more pixels than
their few bytes hold (decompression bombs), RLEs declaring huge masks, 16-bit images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, *, rows: int | None = None, color_type: int = 0, depth: int = 8) -> bytes:
    """A PNG whose IHDR says ``width × height`` (gray 8-bit by default); its IDAT holds ``rows``
    zero rows (all of them when ``rows`` is None, streamed through zlib: a few hundred KB for
    12000 × 12000), so decoding it would allocate the full declared size."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\x00" * (1 + width * channels * depth // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(height if rows is None else rows)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def png16_gray(arr: np.ndarray) -> bytes:
    """A 16-bit grayscale PNG of ``arr`` (uint16)."""
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen is ``width × height`` with one 1×1 frame."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


#: A compressed COCO RLE of a 1 × 1 mask (one pixel set).
ONE_PIXEL_RLE = {"size": [1, 1], "counts": "01"}


def huge_rle(height: int, width: int) -> dict:
    """An uncompressed RLE whose (few) counts cover ``height × width`` pixels: decoding would
    allocate ``height × width`` bytes."""
    total = height * width
    return {"size": [height, width], "counts": [total - 1, 1]}


__all__ = ["png_declaring", "png16_gray", "gif_declaring", "huge_rle", "ONE_PIXEL_RLE"]
