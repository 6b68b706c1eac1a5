"""GAR as agent tools: typed schemas, one toolkit, a session store of image and region handles.

```python
from gar_tool.tools import GARToolkit
kit = GARToolkit(gar=gar, detector=detector)          # components optional
res = kit.call("gar_ground", {"image": "photo.jpg", "phrases": "a dog. a ball."})
res.content, res.artifact, res.overlay_png             # LLM text, pydantic output, PNG bytes
```

Tools: ``gar_describe``, ``gar_relate``, ``gar_ground``, ``gar_measure``, ``gar_zoom``
(:data:`TOOL_SPECS`). Modules: :mod:`.schemas` / :mod:`.outputs` (wire models), :mod:`.bounds`
(size limits in validation), :mod:`.specs` (names, descriptions, schema exports),
:mod:`.schema_export` (clean / simple / strict JSON schemas), :mod:`.registry` and
:mod:`.builtin` (one unit per tool), :mod:`.unit` (the prepare / execute / finish phases),
:mod:`.components` (detector and segmenter interfaces), :mod:`.store` (session store),
:mod:`.inputs` (image strings), :mod:`.measure` (geometry), :mod:`.relate_chunks` (relate beyond
GAR's prompt slots), :mod:`.results` (ToolResult), :mod:`.core` (GARToolkit), :mod:`.errors`.
Importing this package does not import torch.
"""

from __future__ import annotations

from gar_tool.tools.components import Detector, Segmenter
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import ToolError, ToolFailure, ToolInputError, as_tool_error
from gar_tool.tools.inputs import ImageInputConfig, ImageResolver
from gar_tool.tools.outputs import (DescribeOutput, GroundOutput, MeasureOutput, RegionOut, RelateOutput,
                                   ZoomOutput)
from gar_tool.tools.results import ToolImage, ToolResult
from gar_tool.tools.schemas import DescribeInput, GroundInput, MeasureInput, RelateInput, ZoomInput
from gar_tool.tools.specs import TOOL_NAMES, TOOL_SPECS, ToolSpec, get_spec, json_schemas, mcp_tools, openai_tools
from gar_tool.tools.store import SessionStore

__all__ = ["GARToolkit", "ToolResult", "ToolImage", "Detector", "Segmenter", "SessionStore", "ImageInputConfig", "ImageResolver",
           "ToolError", "ToolInputError", "ToolFailure", "as_tool_error",
           "TOOL_SPECS", "TOOL_NAMES", "ToolSpec", "get_spec", "openai_tools", "mcp_tools", "json_schemas",
           "DescribeInput", "DescribeOutput", "RelateInput", "RelateOutput", "GroundInput", "GroundOutput",
           "MeasureInput", "MeasureOutput", "ZoomInput", "ZoomOutput", "RegionOut"]
