"""GAR as agent tools: typed schemas, one toolkit, a session store of image and region handles.

```python
from gar_tool.tools import GARToolkit
kit = GARToolkit(gar=gar, detector=detector)          # components optional
res = kit.call("gar_ground", {"image": "photo.jpg", "phrases": "a dog. a ball."})
res.content, res.artifact, res.overlay_png             # LLM text, pydantic output, PNG bytes
```

Tools: ``gar_describe``, ``gar_relate``, ``gar_ground``, ``gar_measure`` (:data:`TOOL_SPECS`).
Modules: :mod:`.schemas` (wire models), :mod:`.specs` (registry, schema exports), :mod:`.store`
(session store), :mod:`.inputs` (image strings), :mod:`.measure` (geometry),
:mod:`.relate_chunks` (relate beyond GAR's prompt slots), :mod:`.results` (ToolResult),
:mod:`.core` (GARToolkit), :mod:`.errors`. Importing this package does not import torch.
"""

from __future__ import annotations

from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import ToolError, ToolFailure, ToolInputError, as_tool_error
from gar_tool.tools.inputs import ImageInputConfig, ImageResolver
from gar_tool.tools.results import ToolResult
from gar_tool.tools.schemas import (DescribeInput, DescribeOutput, GroundInput, GroundOutput, MeasureInput, MeasureOutput,
                      RegionOut, RelateInput, RelateOutput)
from gar_tool.tools.specs import TOOL_NAMES, TOOL_SPECS, ToolSpec, get_spec, json_schemas, mcp_tools, openai_tools
from gar_tool.tools.store import SessionStore

__all__ = ["GARToolkit", "ToolResult", "SessionStore", "ImageInputConfig", "ImageResolver",
           "ToolError", "ToolInputError", "ToolFailure", "as_tool_error",
           "TOOL_SPECS", "TOOL_NAMES", "ToolSpec", "get_spec", "openai_tools", "mcp_tools", "json_schemas",
           "DescribeInput", "DescribeOutput", "RelateInput", "RelateOutput", "GroundInput", "GroundOutput",
           "MeasureInput", "MeasureOutput", "RegionOut"]
