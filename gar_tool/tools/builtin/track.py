"""``gar_track``: a region (or a phrase) on one sampled frame of a clip → its track through the clip
(SAM 2); the work is :mod:`gar_tool.tools.video`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gar_tool.tools import video
from gar_tool.tools.results import ToolResult
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import ToolUnit
from gar_tool.tools.video_schemas import TrackInput

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.tools.core import GARToolkit


class TrackTool(ToolUnit[TrackInput, "video.TrackCall", Any]):
    spec = get_spec("gar_track")

    def prepare(self, kit: "GARToolkit", inp: TrackInput) -> "video.TrackCall":
        return video.prepare_track(kit, inp, self.name)

    def execute(self, kit: "GARToolkit", call: "video.TrackCall") -> Any:
        return video.execute_track(kit, call)

    def finish(self, kit: "GARToolkit", call: "video.TrackCall", track: Any) -> ToolResult:
        return video.finish_track(kit, call, track, self.name)
