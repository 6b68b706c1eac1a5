"""``gar_ground``: regions matching noun phrases (the toolkit's detector), stored with fresh ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gar_tool.tools.errors import ToolFailure
from gar_tool.tools.outputs import GroundOutput
from gar_tool.tools.results import ToolResult, fmt_num, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import GroundInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import ToolUnit

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.regions.region import Regions
    from gar_tool.tools.components import Detector
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.store import StoredImage


@dataclass
class _Prepared:
    detector: "Detector"
    img: "StoredImage"
    phrases: list[str]
    inp: GroundInput


class GroundTool(ToolUnit[GroundInput, _Prepared, "Regions"]):
    spec = get_spec("gar_ground")

    def prepare(self, kit: "GARToolkit", inp: GroundInput) -> _Prepared:
        if kit.detector is None:
            raise ToolFailure("gar_ground is not available: this toolkit has no grounding detector "
                              "(start it with a detector, e.g. --detector IDEA-Research/grounding-dino-tiny)")
        from gar_tool.grounding.phrases import parse_phrases

        phrases = parse_phrases(inp.phrases)
        return _Prepared(kit.detector, kit.images.resolve(inp.image), phrases, inp)

    def execute(self, kit: "GARToolkit", p: _Prepared) -> "Regions":
        return p.detector.detect(p.img.image, p.phrases, box_threshold=p.inp.box_threshold,
                                 text_threshold=kit.text_threshold, max_regions=p.inp.max_regions)

    def finish(self, kit: "GARToolkit", p: _Prepared, found: Any) -> ToolResult:
        img = p.img
        regions = [kit.store.put_region(img.image_id, r) for r in found]  # ids in call order
        out = GroundOutput(image_id=img.image_id, phrases=p.phrases, regions=[region_out(r) for r in regions])
        wanted = ", ".join(repr(x) for x in p.phrases)
        if regions:
            listed = "; ".join(region_phrase(r) for r in regions)
            content = f"Found {len(regions)} region(s) for {wanted} in {img.image_id}: {listed}."
        else:
            content = (f"No region found for {wanted} in {img.image_id} (box_threshold "
                       f"{fmt_num(p.inp.box_threshold)}). Try a lower box_threshold or simpler phrases.")
        legend = [f"{r.id}  {r.label or r.source}" + ("" if r.score is None else f"  {r.score:.2f}") for r in regions]
        return ToolResult(self.name, content, out, lambda: render_overlay_png(img.image, regions, legend))
