"""LangChain / LangGraph tools over :class:`gar_tool.tools.GARToolkit`.

```python
from gar_tool.integrations.langchain import get_tools
tools = get_tools(gar=GAR.from_pretrained("HaochenWang/GAR-1B"), detector=detector)
agent = langgraph.prebuilt.create_react_agent(chat_model, tools)   # or chat_model.bind_tools(tools)
```

Each tool is a :class:`GARTool` (a ``BaseTool``) with ``args_schema`` = the tool's pydantic input
model and ``response_format="content_and_artifact"``: the LLM sees the short text, the
``ToolMessage.artifact`` holds ``{"tool", "output" (the structured result, JSON-ready, with RLE
masks), "overlay_png" (bytes or None)}``. Failures never raise out of the tool: bad arguments
(validation errors, unknown ids, bad regions, ...) and tool failures both come back as a
``ToolMessage`` with ``status="error"`` whose text says whether to retry with other arguments.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from langchain_core.tools import BaseTool, ToolException
from pydantic import ValidationError

from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import FINAL_HINT, RETRY_HINT, agent_error_text, as_tool_error, format_validation_error
from gar_tool.tools.specs import get_spec

#: The adapter-independent text of a failed call (kept under this module's historical name).
error_text = agent_error_text


def _validation_text(tool: str, exc: ValidationError) -> str:
    return f"Error: invalid arguments for {tool}: {format_validation_error(exc)}. {RETRY_HINT}"


class GARTool(BaseTool):
    """One gar-agent tool (``gar_describe``, ``gar_relate``, ``gar_ground``, ``gar_measure``)."""

    toolkit: Any
    """The :class:`GARToolkit` that runs the tool."""
    include_overlay: bool = True
    """Render the overlay PNG into the artifact (set False to save time and checkpoint space)."""
    response_format: str = "content_and_artifact"
    handle_tool_error: Any = True

    def _run(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        try:
            result = self.toolkit.call(self.name, kwargs)
            artifact = {"tool": result.tool, "output": result.structured(),
                        "overlay_png": result.overlay_png if self.include_overlay else None}
        except Exception as exc:  # every failure goes back to the agent, never up the run
            raise ToolException(error_text(as_tool_error(exc, self.name))) from exc
        return result.content, artifact


def get_tools(toolkit: GARToolkit | None = None, *, gar: Any = None, detector: Any = None,
              segmenter: Any = None, names: Sequence[str] | None = None, include_overlay: bool = True,
              **toolkit_kwargs: Any) -> list[BaseTool]:
    """LangChain tools for ``toolkit`` (or a new :class:`GARToolkit` of the given components).

    Args:
        toolkit: an existing toolkit (its store is shared by the tools); or give components:
        gar, detector, segmenter, toolkit_kwargs: passed to :class:`GARToolkit` when no toolkit.
        names: which tools, in order (default: the tools whose components are present:
            describe / relate with GAR, ground with a detector, measure always).
        include_overlay: put the overlay PNG in each artifact.
    """
    if toolkit is None:
        toolkit = GARToolkit(gar, detector, segmenter, **toolkit_kwargs)
    elif gar is not None or detector is not None or segmenter is not None or toolkit_kwargs:
        raise TypeError("pass either a toolkit or its components (gar, detector, segmenter, ...), not both")
    chosen = list(names) if names is not None else toolkit.available_tools()
    tools: list[BaseTool] = []
    for name in chosen:
        spec = get_spec(name)
        tools.append(GARTool(name=spec.name, description=spec.description, args_schema=spec.input_model,
                             toolkit=toolkit, include_overlay=include_overlay,
                             handle_validation_error=functools.partial(_validation_text, spec.name)))
    return tools


__all__ = ["GARTool", "get_tools", "error_text", "RETRY_HINT", "FINAL_HINT"]
