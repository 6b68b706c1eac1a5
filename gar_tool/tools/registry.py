"""The tool registry: one callable unit per tool name, in :data:`~gar_tool.tools.specs.TOOL_SPECS`
order. ``get_tool("gar_describe")(toolkit, args)`` runs a tool; nothing dispatches by method name."""

from __future__ import annotations

from typing import Mapping

from gar_tool.tools.builtin.describe import DescribeTool
from gar_tool.tools.builtin.ground import GroundTool
from gar_tool.tools.builtin.measure import MeasureTool
from gar_tool.tools.builtin.relate import RelateTool
from gar_tool.tools.builtin.track import TrackTool
from gar_tool.tools.builtin.zoom import ZoomTool
from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.specs import TOOL_NAMES
from gar_tool.tools.unit import ToolUnit

_UNITS: tuple[ToolUnit, ...] = (DescribeTool(), RelateTool(), GroundTool(), MeasureTool(), ZoomTool(), TrackTool())
TOOLS: Mapping[str, ToolUnit] = {u.name: u for u in _UNITS}
if tuple(TOOLS) != TOOL_NAMES:  # pragma: no cover - a spec without a unit (or the reverse)
    raise RuntimeError(f"tool units {tuple(TOOLS)} do not match the specs {TOOL_NAMES}")


def get_tool(name: str) -> ToolUnit:
    """The unit running tool ``name``; :class:`ToolInputError` listing the tools when unknown."""
    unit = TOOLS.get(name)
    if unit is None:
        raise ToolInputError(f"unknown tool {name!r}; tools are {', '.join(TOOL_NAMES)}", tool=name)
    return unit


__all__ = ["TOOLS", "get_tool"]
