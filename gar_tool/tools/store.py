"""Session store: short handles for images (``img_…``) and regions (``r1``, ``r2``, …).

Agents chain calls by handle ("describe r2", "relate r1 and r3 in img_…") instead of resending
pixels and masks. The store is bounded and thread-safe:

* Images are keyed by content: ``image_id = "img_" + sha256(size + RGB pixels)[:12 hex]`` of the
  decoded, EXIF-oriented image, so the same picture sent as a path or as base64 gets one id.
* Region ids are ``r{n}`` with ``n`` increasing per store and never reused. Each region belongs to
  one image; using it with another image is an error. Inline prompts giving a mask already
  stored for that image reuse its id (``dedupe=True``); detections always get fresh ids.
* Least-recently-used eviction, separately for images and regions, by count and by bytes (an
  image counts ``H*W*3`` bytes, a region its ``H*W`` bool mask). Evicting an image evicts its
  regions. The item just added is never evicted by its own insertion, so one item larger than a
  byte budget is still usable for the call that added it.

Unknown and expired handles raise :class:`~gar_tool.tools.errors.ToolInputError` saying which it
is and how to get a valid one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image

from gar_tool.cache import image_key
from gar_tool.regions.region import Region
from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.schemas import IMAGE_ID_RE, REGION_ID_RE


def compute_image_id(image: Image.Image) -> str:
    """``"img_"`` + the first 12 hex digits of :func:`gar_tool.cache.image_key` (sha256 over
    ``"{W}x{H}:"`` and the RGB bytes)."""
    return "img_" + image_key(image)[:12]


def _mask_key(mask: np.ndarray) -> bytes:
    return hashlib.sha1(np.packbits(mask).tobytes() + repr(mask.shape).encode()).digest()


@dataclass
class StoredImage:
    """An image in the store: RGB, EXIF-oriented. ``size`` is ``(height, width)``."""

    image_id: str
    image: Image.Image
    nbytes: int

    @property
    def size(self) -> tuple[int, int]:
        return self.image.height, self.image.width


@dataclass
class StoredRegion:
    """A region in the store: ``region.id`` equals ``region_id``; ``image_id`` is its image."""

    region_id: str
    image_id: str
    region: Region
    nbytes: int
    key: bytes


class SessionStore:
    """Bounded, thread-safe store of images and regions (see module docstring).

    Args:
        max_images: most images kept.
        max_image_bytes: most decoded RGB bytes (``sum(H*W*3)``) kept.
        max_regions: most regions kept.
        max_region_bytes: most mask bytes (``sum(H*W)``) kept.
    """

    def __init__(self, max_images: int = 64, max_image_bytes: int = 1 << 30, max_regions: int = 2048,
                 max_region_bytes: int = 512 << 20) -> None:
        for name, value in (("max_images", max_images), ("max_image_bytes", max_image_bytes),
                            ("max_regions", max_regions), ("max_region_bytes", max_region_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.max_images, self.max_image_bytes = max_images, max_image_bytes
        self.max_regions, self.max_region_bytes = max_regions, max_region_bytes
        self._lock = threading.RLock()
        self._images: OrderedDict[str, StoredImage] = OrderedDict()
        self._regions: OrderedDict[str, StoredRegion] = OrderedDict()
        self._by_mask: dict[tuple[str, bytes], str] = {}
        self._image_bytes = 0
        self._region_bytes = 0
        self._next_region = 1
        self._evicted_images: deque[str] = deque(maxlen=4096)  # to say "expired" rather than "unknown"

    # ------------------------------------------------------------------ images
    def put_image(self, image: Image.Image) -> StoredImage:
        """Store an RGB image (already EXIF-oriented) and return its entry (existing one if the
        same content is already stored; it becomes most recently used)."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        image_id = compute_image_id(rgb)
        with self._lock:
            entry = self._images.get(image_id)
            if entry is not None:
                self._images.move_to_end(image_id)
                return entry
            entry = StoredImage(image_id, rgb, rgb.width * rgb.height * 3)
            self._images[image_id] = entry
            self._image_bytes += entry.nbytes
            self._evict_images(keep=image_id)
            return entry

    def get_image(self, image_id: str) -> StoredImage:
        """The stored image ``image_id`` (becomes most recently used)."""
        with self._lock:
            entry = self._images.get(image_id)
            if entry is None:
                raise ToolInputError(self._image_miss(image_id))
            self._images.move_to_end(image_id)
            return entry

    def _image_miss(self, image_id: str) -> str:
        how = ("send the image itself again (file path, data: URI or base64); the result gives "
               "its current image_id")
        if not IMAGE_ID_RE.match(image_id):
            return f"{image_id!r} is not an image_id (they look like 'img_3f2a9c01be47'); {how}"
        if image_id in self._evicted_images:
            return f"image_id {image_id!r} has expired (evicted from the session store); {how}"
        return f"image_id {image_id!r} is unknown in this session; {how}"

    def _evict_images(self, keep: str) -> None:
        while len(self._images) > 1 and (len(self._images) > self.max_images
                                         or self._image_bytes > self.max_image_bytes):
            oldest = next(iter(self._images))
            if oldest == keep:  # cannot happen (keep is newest), but never evict it
                break
            self._drop_image(oldest)

    def _drop_image(self, image_id: str) -> None:
        entry = self._images.pop(image_id)
        self._image_bytes -= entry.nbytes
        self._evicted_images.append(image_id)
        for rid in [rid for rid, r in self._regions.items() if r.image_id == image_id]:
            self._drop_region(rid)

    # ------------------------------------------------------------------ regions
    def put_region(self, image_id: str, region: Region, *, dedupe: bool = False) -> Region:
        """Store ``region`` for the stored image ``image_id``; return it with its new ``id``.

        With ``dedupe``, a region whose mask equals a stored region of the same image returns
        that stored region (same id) instead.
        """
        with self._lock:
            image = self.get_image(image_id)
            if region.size != image.size:
                raise ToolInputError(f"region mask is {region.size[1]}x{region.size[0]} (WxH) but image "
                                     f"{image_id} is {image.size[1]}x{image.size[0]}")
            key = _mask_key(region.mask)
            if dedupe:
                found = self._by_mask.get((image_id, key))
                if found is not None and found in self._regions:
                    self._regions.move_to_end(found)
                    return self._regions[found].region
            rid = f"r{self._next_region}"
            self._next_region += 1
            stored = region.with_meta(id=rid)
            entry = StoredRegion(rid, image_id, stored, int(region.mask.nbytes), key)
            self._regions[rid] = entry
            self._by_mask.setdefault((image_id, key), rid)
            self._region_bytes += entry.nbytes
            while len(self._regions) > 1 and (len(self._regions) > self.max_regions
                                              or self._region_bytes > self.max_region_bytes):
                self._drop_region(next(iter(self._regions)))
            return stored

    def get_region(self, region_id: str, image_id: str | None = None) -> Region:
        """The stored region ``region_id`` (``region.id == region_id``), most recently used now.

        With ``image_id``, the region must belong to that image.
        """
        with self._lock:
            entry = self._regions.get(region_id)
            if entry is None:
                raise ToolInputError(self._region_miss(region_id))
            if image_id is not None and entry.image_id != image_id:
                other = self._images.get(entry.image_id)
                dims = f" ({other.size[1]}x{other.size[0]})" if other is not None else ""
                raise ToolInputError(
                    f"region {region_id!r} belongs to image {entry.image_id}{dims}, not to the image given "
                    f"({image_id}); pass image {entry.image_id!r} with it, or give the region for this "
                    "image as a box / points / rle / polygon")
            self._regions.move_to_end(region_id)
            self._images.move_to_end(entry.image_id)
            return entry.region

    def _region_miss(self, region_id: str) -> str:
        how = ("region ids come from earlier results (gar_ground, or any call given a box / points / rle / "
               "polygon); call gar_ground again or pass the region as a box / points / rle / polygon")
        if not REGION_ID_RE.match(region_id):
            return f"{region_id!r} is not a region id (they look like 'r2'); {how}"
        if int(region_id[1:]) < self._next_region:
            return f"region id {region_id!r} has expired (evicted from the session store); {how}"
        return f"region id {region_id!r} is unknown in this session; {how}"

    def _drop_region(self, region_id: str) -> None:
        entry = self._regions.pop(region_id)
        self._region_bytes -= entry.nbytes
        if self._by_mask.get((entry.image_id, entry.key)) == region_id:
            del self._by_mask[(entry.image_id, entry.key)]

    def regions_of(self, image_id: str) -> list[Region]:
        """Stored regions of ``image_id``, oldest id first (does not change recency)."""
        with self._lock:
            return sorted((r.region for r in self._regions.values() if r.image_id == image_id),
                          key=lambda r: int(r.id[1:]))  # type: ignore[index]

    def image_of(self, region_id: str) -> str:
        """The image_id a stored region belongs to."""
        with self._lock:
            entry = self._regions.get(region_id)
            if entry is None:
                raise ToolInputError(self._region_miss(region_id))
            return entry.image_id

    # ------------------------------------------------------------------ housekeeping
    def stats(self) -> dict[str, int]:
        """Counts and bytes held (for logs and health endpoints)."""
        with self._lock:
            return {"images": len(self._images), "image_bytes": self._image_bytes,
                    "regions": len(self._regions), "region_bytes": self._region_bytes}

    def image_ids(self) -> list[str]:
        """Stored image ids, least recently used first."""
        with self._lock:
            return list(self._images)

    def region_ids(self) -> list[str]:
        """Stored region ids, least recently used first."""
        with self._lock:
            return list(self._regions)

    def forget(self, ids: Iterable[str]) -> None:
        """Drop the given image / region ids now (unknown ids are ignored)."""
        with self._lock:
            for i in ids:
                if i in self._images:
                    self._drop_image(i)
                elif i in self._regions:
                    self._drop_region(i)

    def clear(self) -> None:
        """Drop everything (ids issued so far stay retired: they will report as expired)."""
        with self._lock:
            for image_id in list(self._images):
                self._drop_image(image_id)
            for rid in list(self._regions):
                self._drop_region(rid)


__all__ = ["SessionStore", "StoredImage", "StoredRegion", "compute_image_id"]
