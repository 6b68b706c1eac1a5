"""``gar_measure``: exact mask geometry (no model); the geometry itself is
:mod:`gar_tool.tools.measure`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gar_tool.tools.measure import Measurement, measure as measure_masks
from gar_tool.tools.outputs import ImageSize, MeasureOutput, PairGeometry, RegionGeometry
from gar_tool.tools.results import ToolResult, fmt_box, fmt_num, region_out, render_overlay_png
from gar_tool.tools.schemas import MeasureInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import ToolUnit, region_arg, store_regions

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.regions.region import Region
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.store import StoredImage

#: Most pair lines in gar_measure's text (36 = every pair of 9 regions); the artifact has all pairs.
MAX_PAIR_LINES = 36


@dataclass
class _Prepared:
    img: "StoredImage"
    regions: "list[Region]"


class MeasureTool(ToolUnit[MeasureInput, _Prepared, Measurement]):
    spec = get_spec("gar_measure")

    def prepare(self, kit: "GARToolkit", inp: MeasureInput) -> _Prepared:
        img = kit.images.resolve(inp.image)
        return _Prepared(img, [region_arg(kit, img, r, f"regions[{i}]") for i, r in enumerate(inp.regions)])

    def execute(self, kit: "GARToolkit", p: _Prepared) -> Measurement:
        return measure_masks([r.mask for r in p.regions])

    def finish(self, kit: "GARToolkit", p: _Prepared, m: Any) -> ToolResult:
        img = p.img
        regions = store_regions(kit, img, p.regions)
        ids = [r.id or "" for r in regions]
        h, w = m.image_size
        geometry = [RegionGeometry(id=ids[i], label=r.label, area_px=s.area, area_fraction=round(s.area_fraction, 6),
                                   box=[round(v, 2) for v in s.box], centroid=[round(v, 2) for v in s.centroid])
                    for i, (r, s) in enumerate(zip(regions, m.regions))]
        pairs = [PairGeometry(a=ids[q.a], b=ids[q.b], horizontal=q.horizontal, vertical=q.vertical,
                              dx=round(q.dx, 2), dy=round(q.dy, 2), distance=round(q.distance, 2),
                              intersection_px=q.intersection, iou=round(q.iou, 4),
                              overlap_fraction=round(q.overlap_fraction, 4), a_inside_b=round(q.a_inside_b, 4),
                              b_inside_a=round(q.b_inside_a, 4)) for q in m.pairs]
        out = MeasureOutput(image_id=img.image_id, image_size=ImageSize(width=w, height=h),
                            regions=[region_out(r) for r in regions], geometry=geometry, pairs=pairs,
                            left_to_right=[ids[i] for i in m.left_to_right],
                            top_to_bottom=[ids[i] for i in m.top_to_bottom])
        content = measure_text(img.image_id, w, h, geometry, pairs, out)
        legend = [f"{r.id}  {r.label or r.source}" for r in regions]
        return ToolResult(self.name, content, out, lambda: render_overlay_png(img.image, regions, legend))


def _offset(delta: float, positive: str, negative: str, same: str) -> str:
    """``"12 px left of"`` for a centroid offset ``delta = B - A`` (> 0: A before B on that axis)."""
    if delta == 0:
        return same
    return f"{fmt_num(abs(delta))} px {positive if delta > 0 else negative}"


def measure_text(image_id: str, w: int, h: int, geometry: list[RegionGeometry], pairs: list[PairGeometry],
                 out: MeasureOutput) -> str:
    """gar_measure's text for the LLM (pair lines capped at :data:`MAX_PAIR_LINES`)."""
    lines = [f"Image {image_id}: {w}x{h} px (width x height); boxes [x1, y1, x2, y2], origin top-left."]
    for g in geometry:
        name = g.id + (f" ({g.label})" if g.label else "")
        lines.append(f"{name}: area {g.area_px} px ({100 * g.area_fraction:.2f}% of image), box {fmt_box(g.box)}, "
                     f"centroid ({fmt_num(g.centroid[0])}, {fmt_num(g.centroid[1])})")
    for q in pairs[:MAX_PAIR_LINES]:
        horiz = _offset(q.dx, "left of", "right of", "level in x with")
        vert = _offset(q.dy, "above", "below", "level in y with")
        lines.append(f"{q.a} vs {q.b} (centroids): {q.a} is {horiz} and {vert} {q.b}; IoU {q.iou:.3f}; "
                     f"{100 * q.a_inside_b:.1f}% of {q.a} inside {q.b}, "
                     f"{100 * q.b_inside_a:.1f}% of {q.b} inside {q.a}")
    if len(pairs) > MAX_PAIR_LINES:
        lines.append(f"(first {MAX_PAIR_LINES} of {len(pairs)} pairs shown; all are in the structured output, "
                     "or measure fewer regions at a time)")
    if len(geometry) > 1:
        lines.append(f"Left to right: {', '.join(out.left_to_right)}. Top to bottom: {', '.join(out.top_to_bottom)}.")
    return "\n".join(lines)
