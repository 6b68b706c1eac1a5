"""``gar_describe``: GAR's description of one region (or its answer to an instruction about it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gar_tool.tools.outputs import DescribeOutput
from gar_tool.tools.results import ToolResult, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import DescribeInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import ToolUnit, model_call, need_gar, region_arg, store_regions

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.protocol import GARAnswer, GARBackend, GARRequest
    from gar_tool.regions.region import Region
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.store import StoredImage


@dataclass
class _Prepared:
    gar: "GARBackend"
    img: "StoredImage"
    region: "Region"
    request: "GARRequest"


class DescribeTool(ToolUnit[DescribeInput, _Prepared, "GARAnswer"]):
    spec = get_spec("gar_describe")

    def prepare(self, kit: "GARToolkit", inp: DescribeInput) -> _Prepared:
        gar = need_gar(kit, self.name)
        img = kit.images.resolve(inp.image)
        region = region_arg(kit, img, inp.region, "region")
        req = model_call(self.name, lambda: gar.request(img.image, [region], None, instruction=inp.instruction))
        return _Prepared(gar, img, region, req)

    def execute(self, kit: "GARToolkit", p: _Prepared) -> "GARAnswer":
        return p.gar.answer([p.request], kit.decode)[0]

    def finish(self, kit: "GARToolkit", p: _Prepared, ans: Any) -> ToolResult:
        img = p.img
        (region,) = store_regions(kit, img, [p.region])
        out = DescribeOutput(image_id=img.image_id, region=region_out(region), description=ans.text,
                             finish_reason=ans.finish_reason)
        content = f"{region_phrase(region)} in {img.image_id}: {ans.text or '(empty answer)'}"
        if ans.finish_reason == "length":
            content += " [cut at the token limit]"
        legend = [f"{region.id}  {region.label or region.source}"]
        return ToolResult(self.name, content, out, lambda: render_overlay_png(img.image, [region], legend))
