"""``gar_zoom``: a region's crop, enlarged, with its mask outlined — a picture for a planner that
can see images (no model runs).

The crop is the region's box grown by ``padding`` × its width / height on each side, at least
:data:`MIN_CROP` pixels on each side where the image allows, clipped to the image. It is scaled
so its longer side is at most ``limit("zoom_side")`` pixels, enlarging by at most
:data:`MAX_ZOOM`, and encoded as JPEG (the outline is drawn before encoding).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gar_tool.limits import limit
from gar_tool.tools.outputs import ZoomOutput
from gar_tool.tools.results import ToolImage, ToolResult, fmt_box, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import ZoomInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import ToolUnit, region_arg, store_regions

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.regions.region import Region
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.store import StoredImage

#: Smallest crop side in image pixels (a tiny region still shows some surroundings).
MIN_CROP = 32
#: Largest enlargement of the crop.
MAX_ZOOM = 4.0
MIME = "image/jpeg"
OUTLINE = (255, 40, 200)  # magenta: rare in photographs
_COLOUR_NAME = "magenta"


@dataclass
class _Prepared:
    img: "StoredImage"
    region: "Region"
    padding: float


@dataclass
class _Picture:
    crop_box: tuple[int, int, int, int]
    scale: float
    width: int
    height: int
    data: bytes


def crop_box(box: tuple[float, float, float, float], padding: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer ``[x1, y1, x2, y2]`` (x2/y2 exclusive) of the crop around ``box`` in an image of
    ``size = (H, W)`` (see the module docstring)."""
    h, w = size
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max(bw * (0.5 + padding), min(MIN_CROP, w) / 2)
    half_h = max(bh * (0.5 + padding), min(MIN_CROP, h) / 2)
    return (max(0, math.floor(cx - half_w)), max(0, math.floor(cy - half_h)),
            min(w, math.ceil(cx + half_w)), min(h, math.ceil(cy + half_h)))


def render(image: Any, mask: np.ndarray, box: tuple[int, int, int, int], max_side: int) -> _Picture:
    """The picture of ``image[box]`` with ``mask``'s outline (``mask``: ``(H, W)`` bool)."""
    from PIL import Image, ImageFilter

    x1, y1, x2, y2 = box
    cw, ch = x2 - x1, y2 - y1
    scale = min(max_side / max(cw, ch), MAX_ZOOM)
    out_w, out_h = max(1, round(cw * scale)), max(1, round(ch * scale))
    crop = image.crop(box).resize((out_w, out_h), Image.Resampling.LANCZOS)
    sub = Image.fromarray(mask[y1:y2, x1:x2].astype(np.uint8) * 255).resize((out_w, out_h), Image.Resampling.NEAREST)
    width = max(2, round(max(out_w, out_h) / 200))
    inner = sub.filter(ImageFilter.MinFilter(2 * width + 1))
    edge = (np.asarray(sub) > 0) & ~(np.asarray(inner) > 0)
    pixels = np.asarray(crop.convert("RGB")).copy()
    pixels[edge] = OUTLINE
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return _Picture(box, scale, out_w, out_h, buf.getvalue())


class ZoomTool(ToolUnit[ZoomInput, _Prepared, _Picture]):
    spec = get_spec("gar_zoom")

    def prepare(self, kit: "GARToolkit", inp: ZoomInput) -> _Prepared:
        img = kit.images.resolve(inp.image)
        return _Prepared(img, region_arg(kit, img, inp.region, "region"), inp.padding)

    def execute(self, kit: "GARToolkit", p: _Prepared) -> _Picture:
        box = crop_box(p.region.box, p.padding, p.img.size)
        return render(p.img.image, p.region.mask, box, limit("zoom_side"))

    def finish(self, kit: "GARToolkit", p: _Prepared, pic: Any) -> ToolResult:
        img = p.img
        (region,) = store_regions(kit, img, [p.region])
        out = ZoomOutput(image_id=img.image_id, region=region_out(region), crop_box=list(pic.crop_box),
                         width=pic.width, height=pic.height, scale=round(pic.scale, 4), mime_type=MIME)
        content = (f"Zoomed view of {region_phrase(region)} in {img.image_id}: crop {fmt_box(pic.crop_box)} "
                   f"shown at {pic.scale:.2f}x as {pic.width}x{pic.height} px, the region outlined in "
                   f"{_COLOUR_NAME}. The picture is attached.")
        legend = [f"{region.id}  {region.label or region.source}"]
        return ToolResult(self.name, content, out, lambda: render_overlay_png(img.image, [region], legend),
                          ToolImage(pic.data, MIME))
