"""Contact sheets: the sampled frames of a clip in a grid, each with the tracks drawn on it.

Each cell is one sampled frame, shrunk to at most ``cell`` pixels wide, with a caption
(``#3 t=1.50s``, the frame's state per track when it has no mask there) and the
:func:`~gar_tool.media.overlay.draw_overlay` rendering of the tracks present (one colour per track
across all frames, legend ``t1  tracked 0.93``). Masks are shrunk with area coverage, so a small
object never vanishes from a cell.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gar_tool.errors import RegionError
from gar_tool.media.overlay import draw_overlay
from gar_tool.regions.region import Region
from gar_tool.video.clip import Clip
from gar_tool.video.track import RegionTrack

_BG = (255, 255, 255)


def _shrink(region: Region, size: tuple[int, int]) -> Region | None:
    """The region's mask at ``size`` = ``(width, height)``: a cell pixel is inside when any of the
    frame pixels it covers is."""
    img = Image.fromarray(region.mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)
    mask = np.asarray(img) > 0
    return Region(mask, label=region.label, score=region.score, source=region.source) if mask.any() else None


def contact_sheet(clip: Clip, tracks: Sequence[RegionTrack], names: Sequence[str] | None = None, *,
                  cell: int = 256, columns: int | None = None, title: str | None = None) -> Image.Image:
    """An RGB image: every sampled frame of ``clip`` with ``tracks`` drawn (see the module doc).

    Args:
        clip: the frames.
        tracks: tracks of ``clip`` (one entry per sampled frame each).
        names: one name per track for the legends (default: the track's id, else ``t1``, ``t2``...).
        cell: most width of one frame in the sheet (frames are never enlarged).
        columns: frames per row (default: about the square root of the frame count, at most 6).
        title: a line above the grid (default: the clip's source and frame count).
    """
    for k, t in enumerate(tracks):
        t.check_clip(clip, f"track {k}")
    labels = list(names) if names is not None else [t.id or f"t{k + 1}" for k, t in enumerate(tracks)]
    if len(labels) != len(tracks):
        raise RegionError(f"names has {len(labels)} entries for {len(tracks)} tracks")
    h, w = clip.size
    scale = min(1.0, cell / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    tiles = []
    for i, frame in enumerate(clip.frames):
        small = frame.resize(size, Image.Resampling.BILINEAR) if scale < 1 else frame
        regions, legend, colors, notes = [], [], [], []
        for k, t in enumerate(tracks):
            r = t.regions[i]
            shrunk = _shrink(r, size) if r is not None and scale < 1 else r
            if shrunk is None:
                notes.append(f"{labels[k]} {t.states[i]}")
                continue
            regions.append(shrunk.with_meta(id=labels[k]))
            score = t.scores[i] if t.scores is not None else None
            legend.append(f"{labels[k]}  {t.states[i]}" + ("" if score is None else f"  {score:.2f}"))
            colors.append(k)
        body = draw_overlay(small, regions, labels=legend, colors=colors)
        tiles.append(_captioned(body, "  ".join([clip.label(i)] + notes)))
    cols = columns if columns is not None else min(6, max(1, math.ceil(math.sqrt(len(tiles)))))
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise RegionError(f"columns must be a positive integer, got {columns!r}")
    rows = math.ceil(len(tiles) / cols)
    cw = max(t.width for t in tiles)
    ch = max(t.height for t in tiles)
    pad = 6
    head = title if title is not None else f"{clip.source}: {len(clip)} of {clip.source_frames} frames"
    font = ImageFont.load_default(size=14)
    top = 24
    sheet = Image.new("RGB", (pad + cols * (cw + pad), top + pad + rows * (ch + pad)), _BG)
    ImageDraw.Draw(sheet).text((pad, 4), head, fill=(0, 0, 0), font=font)
    for n, tile in enumerate(tiles):
        row, col = divmod(n, cols)
        sheet.paste(tile, (pad + col * (cw + pad), top + pad + row * (ch + pad)))
    return sheet


def _captioned(tile: Image.Image, text: str) -> Image.Image:
    font = ImageFont.load_default(size=12)
    bar = 18
    draw = ImageDraw.Draw(tile)
    width = int(max(tile.width, draw.textlength(text, font=font) + 8))
    out = Image.new("RGB", (width, tile.height + bar), _BG)
    ImageDraw.Draw(out).text((4, 2), text, fill=(0, 0, 0), font=font)
    out.paste(tile, (0, bar))
    return out


__all__ = ["contact_sheet"]
