"""A thread-safe LRU cache bounded by entry count and by bytes, plus content keys for tensors and images.

Used by the inference engine for preprocessed tiles (per image), vision features (per image and
region masks) and the KV cache of the shared prompt context (per image, regions and prompt).
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np


def _is_tensor(obj: Any) -> bool:
    """``isinstance(obj, torch.Tensor)`` without importing torch (no tensor exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def nbytes(obj: Any) -> int:
    """Bytes held by tensors / arrays inside ``obj`` (tuples, lists and dicts are walked)."""
    if _is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(nbytes(o) for o in obj.values())
    return 0


def content_key(*parts: Any) -> str:
    """A sha256 hex key of tensors / arrays / bytes / strings / ints (shape and dtype included)."""
    h = hashlib.sha256()
    for p in parts:
        if _is_tensor(p):
            import torch

            t = p.detach().cpu().contiguous()
            h.update(f"{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool
                     else t.numpy().tobytes())
        elif isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(repr(p).encode())
        h.update(b"|")
    return h.hexdigest()


def image_key(image: Any) -> str:
    """The content key of an image: sha256 hex over ``"{W}x{H}:"`` and its RGB bytes.

    The one image hash of gar_tool: the engine's tile cache, SAM's embedding cache and the session
    store's ``image_id`` (``"img_" + image_key(img)[:12]``) all use it, so one picture has one key
    however it arrived (path, bytes, array). ``image``: a ``PIL.Image`` (converted to RGB if needed)
    or an ``H×W×3`` uint8 array.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image_key needs an HxWx3 uint8 array, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        data = np.ascontiguousarray(image).tobytes()
    else:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = rgb.size
        data = rgb.tobytes()
    h = hashlib.sha256(f"{width}x{height}:".encode("ascii"))
    h.update(data)
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class LRUCache:
    """``get``/``put`` with least-recently-used eviction once ``max_items`` or ``max_bytes`` is
    exceeded. An entry larger than ``max_bytes`` is not stored. ``max_bytes=0`` disables caching."""

    def __init__(self, max_bytes: int, max_items: int = 1024, size_of: Callable[[Any], int] = nbytes) -> None:
        self.max_bytes = int(max_bytes)
        self.max_items = int(max_items)
        self._size_of = size_of
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.stats.misses += 1
                return None
            self._data.move_to_end(key)
            self.stats.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = self._size_of(value)
        if self.max_bytes <= 0 or size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._data[key] = (value, size)
            self._bytes += size
            while self._data and (self._bytes > self.max_bytes or len(self._data) > self.max_items):
                _, (_, freed) = self._data.popitem(last=False)
                self._bytes -= freed
                self.stats.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


__all__ = ["LRUCache", "CacheStats", "content_key", "image_key", "nbytes"]
