"""``gar_describe``: GAR's description of one region (or its answer to an instruction about it), or
of one tracked object in a clip (:mod:`gar_tool.tools.video`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gar_tool.tools import video
from gar_tool.tools.outputs import DescribeOutput
from gar_tool.tools.results import ToolResult, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import DescribeInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import GARUnit, model_call, need_gar, region_arg, store_regions

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


@dataclass
class _Clip:
    call: "video.ClipCall"


class DescribeTool(GARUnit[DescribeInput, Any, "GARAnswer"]):
    spec = get_spec("gar_describe")

    def prepare(self, kit: "GARToolkit", inp: DescribeInput) -> Any:
        gar = need_gar(kit, self.name)
        if inp.video is not None:
            return _Clip(video.prepare_clip(kit, self.name, inp.video, [inp.track], None, inp.frames,
                                            inp.instruction))
        img = kit.images.resolve(inp.image or "")
        region = region_arg(kit, img, inp.region, "region")
        req = model_call(self.name, lambda: gar.request(img.image, [region], None, instruction=inp.instruction))
        return _Prepared(gar, img, region, req)

    def gar_requests(self, p: Any) -> "list[GARRequest]":
        return [] if isinstance(p, _Clip) else [p.request]  # a clip question is answered on its own

    def execute(self, kit: "GARToolkit", p: Any) -> "GARAnswer":
        if isinstance(p, _Clip):
            return video.execute_clip(kit, p.call)
        return super().execute(kit, p)

    def from_answers(self, kit: "GARToolkit", p: _Prepared, answers: "list[GARAnswer]") -> "GARAnswer":
        return answers[0]

    def finish(self, kit: "GARToolkit", p: Any, ans: Any) -> ToolResult:
        if isinstance(p, _Clip):
            return self._finish_clip(kit, p.call, ans)
        img = p.img
        (region,) = store_regions(kit, img, [p.region])
        out = DescribeOutput(image_id=img.image_id, region=region_out(region), description=ans.text,
                             finish_reason=ans.finish_reason)
        content = f"{region_phrase(region)} in {img.image_id}: {ans.text or '(empty answer)'}"
        if ans.finish_reason == "length":
            content += " [cut at the token limit]"
        legend = [f"{region.id}  {region.label or region.source}"]
        return ToolResult(self.name, content, out, lambda: render_overlay_png(img.image, [region], legend))

    def _finish_clip(self, kit: "GARToolkit", call: "video.ClipCall", ans: Any) -> ToolResult:
        (track,) = video.finish_clip(kit, call)
        stored = call.stored
        out = DescribeOutput(clip=video.clip_out(stored), track=video.track_out(track, stored.clip),
                             description=ans.text, finish_reason=ans.finish_reason)
        content = f"{video.track_phrase(track)} in {stored.clip_id}: {ans.text or '(empty answer)'}"
        if ans.finish_reason == "length":
            content += " [cut at the token limit]"
        return ToolResult(self.name, content, out, lambda: video.sheet_png(stored.clip, [track]))
