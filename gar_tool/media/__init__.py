"""Pixels in and out: decoding user images (:mod:`.images`) and drawing regions on them (:mod:`.overlay`)."""

from __future__ import annotations

from gar_tool.media.images import ImageLike, load_image
from gar_tool.media.overlay import draw_overlay

__all__ = ["ImageLike", "load_image", "draw_overlay"]
