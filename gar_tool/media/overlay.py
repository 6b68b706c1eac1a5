"""Draw regions over their image: translucent fill, outline, id tag, and a legend below the image.

``draw_overlay(image, regions)`` is shared by every tool that shows regions to a person (``gar
ground --overlay``, describe / relate previews). Colours are spread around the hue circle by the
golden angle, so neighbouring ids get clearly different colours however many regions there are.
"""

from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from gar_tool.errors import RegionError
from gar_tool.media.images import ImageLike, load_image
from gar_tool.regions.region import Region

_GOLDEN = (5 ** 0.5 - 1) / 2  # hue step: consecutive colours are ~222° apart on the hue circle
_FILL_ALPHA = 0.45  # share of the region colour in filled pixels


def region_color(index: int) -> tuple[int, int, int]:
    """Distinct, saturated RGB colour for region ``index`` (0-based)."""
    r, g, b = colorsys.hsv_to_rgb((index * _GOLDEN) % 1.0, 0.8, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)  # scalable font (Pillow >= 10.1)
    except TypeError:  # pragma: no cover - older Pillow: fixed bitmap font
        return ImageFont.load_default()


def legend_text(region: Region, index: int) -> str:
    """``"r1  a dog  0.87"``: id (or ``r{index+1}``), label (or source) and score when known."""
    parts = [region.id or f"r{index + 1}", region.label or region.source]
    if region.score is not None:
        parts.append(f"{region.score:.2f}")
    return "  ".join(parts)


def draw_overlay(image: ImageLike, regions: Sequence[Region], labels: Sequence[str] | None = None,
                 colors: Sequence[int] | None = None) -> Image.Image:
    """Return an RGB image: ``image`` with each region filled, outlined and tagged, plus a legend.

    Args:
        image: the image the regions belong to (path, PIL image, ``H×W×3`` uint8 array, bytes).
        regions: regions whose masks are ``H×W`` like the image (``Regions`` or a list).
        labels: one legend line per region, replacing the default ``"id  label  score"``.
        colors: per region the :func:`region_color` index to draw it with (default: its position),
            so that one object keeps its colour across several overlays (video contact sheets).

    Returns:
        A new RGB image, ``H + legend height`` tall and at least ``W`` wide (wider only when a
        legend line needs it); the image is at the top-left, unscaled, so overlay coordinates
        equal image coordinates.
    """
    base = load_image(image)
    w, h = base.size
    regs = list(regions)
    if labels is not None and len(labels) != len(regs):
        raise RegionError(f"labels has {len(labels)} entries for {len(regs)} regions")
    for i, r in enumerate(regs):
        if r.size != (h, w):
            raise RegionError(f"region {i} mask is {r.size[1]}x{r.size[0]} (WxH) but the image is {w}x{h}")
    lines = list(labels) if labels is not None else [legend_text(r, i) for i, r in enumerate(regs)]
    if colors is not None and len(colors) != len(regs):
        raise RegionError(f"colors has {len(colors)} entries for {len(regs)} regions")
    hue = list(colors) if colors is not None else list(range(len(regs)))

    pixels = np.asarray(base, dtype=np.float32).copy()  # (H, W, 3)
    edge = max(1, round(min(w, h) / 300))  # outline thickness grows with the image
    for i, r in enumerate(regs):
        color = np.array(region_color(hue[i]), dtype=np.float32)
        pixels[r.mask] = (1 - _FILL_ALPHA) * pixels[r.mask] + _FILL_ALPHA * color
        pixels[_outline(r.mask, edge)] = color
    canvas = Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8))

    font_px = max(12, round(min(w, h) / 40))
    font = _font(font_px)
    draw = ImageDraw.Draw(canvas)
    for i, r in enumerate(regs):  # id tag at the top-left corner of the region's box
        tag = r.id or f"r{i + 1}"
        x1, y1 = r.box[0], r.box[1]
        left, top, right, bottom = draw.textbbox((x1, y1), tag, font=font)
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=region_color(hue[i]))
        draw.text((x1, y1), tag, fill=(0, 0, 0), font=font)

    pad = max(4, font_px // 3)
    row = font_px + pad
    rows = lines or ["no regions"]
    text_w = max(draw.textlength(text, font=font) for text in rows)
    out_w = max(w, int(3 * pad + font_px + text_w + 1))  # widen rather than cut long legend lines
    out = Image.new("RGB", (out_w, h + pad + row * len(rows)), (255, 255, 255))
    out.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(rows):
        y = h + pad + i * row
        if lines:
            draw.rectangle([pad, y, pad + font_px, y + font_px], fill=region_color(hue[i]), outline=(0, 0, 0))
        draw.text((2 * pad + font_px, y), text, fill=(0, 0, 0), font=font)
    return out


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` pixels of its border (``(H, W)`` bool)."""
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    inner = img.filter(ImageFilter.MinFilter(2 * width + 1))
    return mask & ~(np.asarray(inner) > 0)


__all__ = ["draw_overlay", "legend_text", "region_color"]
