"""The MCP server over one :class:`~gar_tool.tools.GARToolkit`: ``gar mcp``.

Built on the MCP Python SDK's low-level :class:`mcp.server.Server` (handlers for ``tools/list``
and ``tools/call``), so the tool list carries exactly the schemas of
:func:`gar_tool.tools.mcp_tools` — the same names, descriptions, input *and* output schemas as
every other adapter::

    from gar_tool.integrations.mcp import create_server, run_stdio
    server = create_server(toolkit)
    anyio.run(run_stdio, server)             # or: serve_http(server, host, port) (streamable HTTP)

``tools/list`` lists the tools whose components are loaded (``gar_measure`` always). A
``tools/call`` answers a ``CallToolResult`` with

* ``structuredContent`` — the tool's output model as JSON (valid against ``outputSchema``);
* ``content`` — the text for the LLM, then the overlay (regions drawn with a legend) as an
  ``image`` block (PNG, base64) unless ``include_overlay=False``;
* on failure ``isError: true`` and one text block ``"Error: <reason>. <retry hint>"`` — bad
  arguments, unknown ids or tools and model failures alike: never a protocol-level error, and the
  session keeps working.

Tool calls run in worker threads (at most ``max_concurrency`` at once; more wait); with a
:class:`~gar_tool.gar.batching.MicroBatcher` on the toolkit (``gar mcp`` sets one), concurrent GAR
calls share batches. Logs go to the ``logging`` module (``gar mcp`` sends them to stderr: on
stdio, stdout carries only the protocol).
"""

from __future__ import annotations

import base64
import functools
import logging
from typing import Any

import anyio
import anyio.to_thread
import mcp.types as types
from mcp.server import Server, ServerRequestContext

from gar_tool import __version__
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import ToolError, ToolFailure, ToolInputError, as_tool_error
from gar_tool.tools.specs import TOOL_NAMES, input_schema, mcp_tools
from gar_tool.integrations.serving import agent_error_text, component_names

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Region-level visual reasoning with GAR (Grasp Any Region). Find regions with gar_ground, then ask "
    "about them with gar_describe / gar_relate and measure them exactly with gar_measure. Every result "
    "gives the image an image_id and each region an id ('r2'): pass those ids in later calls instead "
    "of resending the image or masks.")


def _error_result(err: ToolError) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=agent_error_text(err))], is_error=True)


def run_tool(toolkit: GARToolkit, name: str, arguments: dict[str, Any] | None,
             include_overlay: bool = True) -> types.CallToolResult:
    """One ``tools/call`` (blocking; servers run it in a worker thread). Never raises."""
    try:
        if name not in TOOL_NAMES or name not in toolkit.available_tools():
            available = ", ".join(toolkit.available_tools())
            if name in TOOL_NAMES:
                raise ToolFailure(f"{name} is not available on this server (its model was not loaded); "
                                  f"available tools: {available}", tool=name)
            raise ToolInputError(f"unknown tool {name!r}; available tools: {available}", tool=name)
        if arguments is not None and not isinstance(arguments, dict):
            raise as_tool_error(TypeError(f"arguments must be an object, got {type(arguments).__name__}"), name)
        result = toolkit.call(name, arguments or {})
        content: list[Any] = [types.TextContent(text=result.content)]
        if result.image is not None:  # gar_zoom: the picture is the answer, whatever include_overlay says
            content.append(types.ImageContent(data=result.image.base64(), mime_type=result.image.mime_type))
        if include_overlay:
            png = result.overlay_png
            if png is not None:
                content.append(types.ImageContent(data=base64.b64encode(png).decode("ascii"), mime_type="image/png"))
        return types.CallToolResult(content=content, structured_content=result.structured())
    except ToolError as err:
        return _error_result(err)
    except Exception as exc:  # the toolkit raises only ToolErrors; anything else must not end the session
        log.exception("%s failed", name)
        return _error_result(as_tool_error(exc, name))


def create_server(toolkit: GARToolkit, *, name: str = "gar-agent", include_overlay: bool = True,
                  max_concurrency: int = 8, model_names: dict[str, str | None] | None = None) -> Server:
    """The MCP server for ``toolkit`` (see the module docstring).

    Args:
        toolkit: the loaded toolkit (its GAR a ``MicroBatcher`` for micro-batched GAR calls).
        name: the server name reported at initialisation.
        include_overlay: add the overlay PNG as image content to each result.
        max_concurrency: most tool calls running at once (more wait for a slot).
        model_names: component names for the server description (default: the components' names).
    """
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    limiter = anyio.CapacityLimiter(max_concurrency)
    names = component_names(toolkit, model_names)
    tools = [types.Tool.model_validate(t) for t in mcp_tools(toolkit.available_tools())]
    listed = {t.name for t in tools}

    async def list_tools(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        call = functools.partial(run_tool, toolkit, params.name, params.arguments, include_overlay)
        return await anyio.to_thread.run_sync(call, limiter=limiter)

    described = ", ".join(f"{k}: {v}" for k, v in names.items() if v) or "no models"
    return Server(name, version=__version__, title="GAR tools", description=f"GAR region tools ({described})",
                  instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool,
                  get_tool_input_schema=lambda tool: input_schema(tool) if tool in listed else None)


async def run_stdio(server: Server) -> None:
    """Serve ``server`` over this process's stdin / stdout until stdin closes."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_app(server: Server, host: str = "127.0.0.1", path: str = "/mcp") -> Any:
    """The ASGI app (Starlette) serving ``server`` over streamable HTTP at ``path``. ``host`` is the
    interface it will listen on: on a loopback host the SDK's DNS-rebinding protection is on. Run it
    with its lifespan (it starts the session manager)."""
    return server.streamable_http_app(streamable_http_path=path, host=host)


def serve_http(server: Server, host: str = "127.0.0.1", port: int = 8000, *, path: str = "/mcp",
               log_level: str = "info") -> None:
    """Serve ``server`` over streamable HTTP at ``http://host:port{path}`` (uvicorn) until interrupted."""
    import uvicorn

    uvicorn.run(http_app(server, host, path), host=host, port=port, log_level=log_level, workers=1)


__all__ = ["create_server", "run_tool", "run_stdio", "http_app", "serve_http", "INSTRUCTIONS"]
