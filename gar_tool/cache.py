"""A thread-safe LRU cache bounded by entry count and by bytes, plus content keys for tensors.

Used by the inference engine for preprocessed tiles (per image), vision features (per tile and
its binary region mask) and the KV cache of the shared prompt context (per image, regions and prompt).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np
import torch


def nbytes(obj: Any) -> int:
    """Bytes held by tensors / arrays inside ``obj`` (tuples, lists and dicts are walked)."""
    if isinstance(obj, torch.Tensor):
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
        if isinstance(p, torch.Tensor):
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


__all__ = ["LRUCache", "CacheStats", "content_key", "nbytes"]
