"""Every resource limit gar-agent enforces, in one place.

Each limit is checked **before** the decode or allocation it guards (an image's declared pixel
count before its pixels are decoded, an RLE's declared size before it is expanded, ...), and a
violation is an :class:`~gar_tool.errors.InputError` naming the limit, the actual value and the
flag that raises it. The README's "Limits" table lists the same entries (a test keeps the two
equal). Servers can raise or lower the image and request limits with flags; the others are
properties of the tools' contract with agents.

``LIMITS`` maps a name to a :class:`Limit`; read values with ``limit("image_pixels")``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One bound: its default ``value``, the ``unit``, what it bounds and the CLI flag (if any)."""

    value: int
    unit: str
    what: str
    flag: str | None = None


LIMITS: dict[str, Limit] = {
    "image_pixels": Limit(8192 * 8192, "pixels", "decoded size of one image (width × height)", "--max-image-pixels"),
    "mask_pixels": Limit(8192 * 8192, "pixels", "declared size of a mask image file or RLE"),
    "regions_per_call": Limit(32, "regions", "regions in one gar_relate / gar_measure call"),
    "points_per_region": Limit(64, "points", "click points of one points region"),
    "polygon_vertices": Limit(4096, "vertices", "vertices of one polygon / scribble region"),
    "phrases_per_call": Limit(64, "phrases", "phrases in one gar_ground call"),
    "phrase_chars": Limit(256, "characters", "length of one grounding phrase"),
    "question_chars": Limit(4000, "characters", "length of a gar_relate question"),
    "instruction_chars": Limit(2000, "characters", "length of a gar_describe instruction"),
    "zoom_side": Limit(768, "pixels", "longer side of the picture gar_zoom returns"),
    "calls_per_step": Limit(16, "tool calls", "tool calls the planner runs from one model reply (more are refused)"),
}


def limit(name: str) -> int:
    """The value of limit ``name`` (a key of :data:`LIMITS`)."""
    return LIMITS[name].value


__all__ = ["Limit", "LIMITS", "limit"]
