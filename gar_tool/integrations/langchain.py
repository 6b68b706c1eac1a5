"""LangChain / LangGraph tools over :class:`gar_tool.tools.GARToolkit`.

```python
from gar_tool.integrations.langchain import get_tools
tools = get_tools(gar=GAR.from_pretrained("HaochenWang/GAR-1B"), detector=detector)
agent = langchain.agents.create_agent(chat_model, tools)      # or chat_model.bind_tools(tools)
```

Each tool is a :class:`GARTool` (a ``BaseTool``) whose ``args_schema`` is the tool's exported JSON
schema (:func:`gar_tool.tools.specs.input_schema`), so a chat model bound to these tools receives
exactly what ``gar tools --schema openai``, MCP and HTTP publish (``strict=True``: the OpenAI
strict-mode schema, for ``bind_tools(tools, strict=True)``). Arguments are validated by the toolkit.
``response_format="content_and_artifact"``: the LLM sees the short text, the
``ToolMessage.artifact`` holds ``{"tool", "output" (the structured result, JSON-ready, with RLE
masks), "overlay_png" (bytes or None)}``. ``gar_zoom``'s content is a list of LangChain content
blocks, the text and the picture (a standard ``image`` block); it is included only with
``vision=True`` (or by name), since only a model that sees images can use it. Failures never
raise out of the tool: they come back as a ``ToolMessage`` with ``status="error"`` whose text
(:func:`gar_tool.tools.errors.agent_error_text`) says whether to retry with other arguments.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from langchain_core.tools import BaseTool, ToolException

from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import FINAL_HINT, RETRY_HINT, agent_error_text, as_tool_error
from gar_tool.tools.specs import get_spec, input_schema

#: The adapter-independent text of a failed call (kept under this module's historical name).
error_text = agent_error_text



class GARTool(BaseTool):
    """One gar-agent tool (``gar_describe``, ``gar_relate``, ``gar_ground``, ``gar_measure``, ``gar_zoom``)."""

    toolkit: Any
    """The :class:`GARToolkit` (or a client with the same ``call``) that runs the tool."""
    include_overlay: bool = True
    """Render the overlay PNG into the artifact (set False to save time and checkpoint space)."""
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: Any = True

    def _run(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        try:
            result = self.toolkit.call(self.name, kwargs)
            artifact = {"tool": result.tool, "output": result.structured(),
                        "overlay_png": result.overlay_png if self.include_overlay else None}
        except Exception as exc:  # every failure goes back to the agent, never up the run
            raise ToolException(error_text(as_tool_error(exc, self.name))) from exc
        image = getattr(result, "image", None)
        if image is None:
            return result.content, artifact
        return [{"type": "text", "text": result.content}, image.langchain_block()], artifact


def get_tools(toolkit: GARToolkit | None = None, *, gar: Any = None, detector: Any = None,
              segmenter: Any = None, names: Sequence[str] | None = None, include_overlay: bool = True,
              vision: bool = False, strict: bool = False, **toolkit_kwargs: Any) -> list[BaseTool]:
    """LangChain tools for ``toolkit`` (or a new :class:`GARToolkit` of the given components).

    Args:
        toolkit: an existing toolkit (its store is shared by the tools); or give components:
        gar, detector, segmenter, toolkit_kwargs: passed to :class:`GARToolkit` when no toolkit.
        names: which tools, in order (default: the tools whose components are present:
            describe / relate with GAR, ground with a detector, measure always, zoom with ``vision``).
        include_overlay: put the overlay PNG in each artifact.
        vision: include the tools that return pictures (``gar_zoom``) in the default set.
        strict: publish the OpenAI strict-mode schemas (bind them with ``strict=True``).
    """
    if toolkit is None:
        toolkit = GARToolkit(gar, detector, segmenter, **toolkit_kwargs)
    elif gar is not None or detector is not None or segmenter is not None or toolkit_kwargs:
        raise TypeError("pass either a toolkit or its components (gar, detector, segmenter, ...), not both")
    if names is not None:
        chosen = list(names)
    else:
        chosen = [n for n in toolkit.available_tools() if vision or not get_spec(n).vision]
    tools: list[BaseTool] = []
    for name in chosen:
        spec = get_spec(name)
        tools.append(GARTool(name=spec.name, description=spec.description,
                             args_schema=input_schema(spec.name, strict=strict), toolkit=toolkit,
                             include_overlay=include_overlay))
    return tools


__all__ = ["GARTool", "get_tools", "error_text", "RETRY_HINT", "FINAL_HINT"]
