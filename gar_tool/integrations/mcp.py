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
calls share batches. A ``tools/call`` whose ``arguments`` is not an object (a list, a string, ...)
is an ``isError`` result too, not a JSON-RPC error (a server middleware catches it before the SDK's
params validation).

The toolkit may be a :class:`~gar_tool.integrations.serving.BackgroundToolkit` still loading its
models (``gar mcp`` starts serving at once: ``initialize`` and ``tools/list`` are answered while
the models load). A call that arrives during the load waits for it up to ``load_wait`` seconds,
then gets a retryable ``isError`` result ("still loading, call again in a few seconds"); if the
load failed, every call gets that failure as a final ``isError`` result. Logs go to the ``logging`` module (``gar mcp`` sends them to stderr: on
stdio, stdout carries only the protocol).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import logging
from typing import Any, Callable, Sequence

import anyio
import anyio.to_thread
import mcp.types as types
from mcp.server import Server, ServerRequestContext

from gar_tool import __version__
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import ToolError, ToolFailure, ToolInputError, as_tool_error
from gar_tool.tools.specs import TOOL_NAMES, input_schema, mcp_tools
from gar_tool.errors import GARError
from gar_tool.integrations.serving import BackgroundToolkit, StillLoading, agent_error_text, component_names

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Region-level visual reasoning with GAR (Grasp Any Region). Find regions with gar_ground, then ask "
    "about them with gar_describe / gar_relate and measure them exactly with gar_measure. Every result "
    "gives the image an image_id and each region an id ('r2'): pass those ids in later calls instead "
    "of resending the image or masks.")


#: Key a middleware puts in place of ``arguments`` that are not an object (the handler answers isError).
_BAD_ARGUMENTS = "__gar_arguments_not_an_object__"
_JSON_TYPES = {"list": "array", "str": "string", "int": "number", "float": "number", "bool": "boolean"}


def _error_result(err: ToolError) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=agent_error_text(err))], is_error=True)


async def _object_arguments(ctx: Any, call_next: Any) -> Any:
    """Server middleware: ``tools/call`` ``arguments`` that are not an object are replaced by a marker
    (the SDK's validation would answer a JSON-RPC error; the tool answers an ``isError`` result)."""
    params = ctx.params
    if ctx.method == "tools/call" and isinstance(params, dict):
        args = params.get("arguments")
        if args is not None and not isinstance(args, dict):
            ctx = dataclasses.replace(ctx, params={**params, "arguments": {_BAD_ARGUMENTS: type(args).__name__}})
    return await call_next(ctx)


def _check_call(name: str, arguments: Any, available: list[str]) -> None:
    """What can be refused without the models: unknown / unavailable tools, arguments not an object."""
    if name not in TOOL_NAMES or name not in available:
        listed = ", ".join(available)
        if name in TOOL_NAMES:
            raise ToolFailure(f"{name} is not available on this server (its model was not loaded); "
                              f"available tools: {listed}", tool=name)
        raise ToolInputError(f"unknown tool {name!r}; available tools: {listed}", tool=name)
    if isinstance(arguments, dict) and set(arguments) == {_BAD_ARGUMENTS}:
        kind = arguments[_BAD_ARGUMENTS]  # the JSON type the client sent (see _object_arguments)
        raise ToolInputError(f"arguments must be a JSON object of the tool's parameters, got a JSON "
                             f"{_JSON_TYPES.get(kind, kind)}", tool=name)
    if arguments is not None and not isinstance(arguments, dict):
        raise ToolInputError(f"arguments must be an object, got {type(arguments).__name__}", tool=name)


def run_tool(toolkit: GARToolkit, name: str, arguments: dict[str, Any] | None,
             include_overlay: bool = True) -> types.CallToolResult:
    """One ``tools/call`` (blocking; servers run it in a worker thread). Never raises."""
    try:
        _check_call(name, arguments, toolkit.available_tools())
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


def _loading_result(elapsed: float) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=(
        f"Error: the GAR server is still loading its models ({elapsed:.0f} s so far). Call the tool again in a "
        "few seconds; the arguments were not checked yet."))], is_error=True)


def _call_when_loaded(handle: BackgroundToolkit, load_wait: float, name: str, arguments: Any,
                      include_overlay: bool) -> types.CallToolResult:
    """One ``tools/call`` on a toolkit that may still be loading (worker thread). Never raises."""
    try:
        _check_call(name, arguments, handle.tools)  # refused at once, loading or not
    except ToolError as err:
        return _error_result(err)
    try:
        toolkit = handle.get(timeout=load_wait)
    except StillLoading as wait:
        return _loading_result(wait.elapsed)
    except GARError as exc:
        return _error_result(ToolFailure(f"the server could not load its models: {exc}", tool=name))
    except Exception as exc:  # an unexpected load failure, already logged by the loader
        return _error_result(ToolFailure(f"the server could not load its models ({type(exc).__name__}: {exc})",
                                         tool=name))
    return run_tool(toolkit, name, arguments, include_overlay)


def create_server(toolkit: GARToolkit | BackgroundToolkit, *, name: str = "gar-agent", include_overlay: bool = True,
                  max_concurrency: int = 8, model_names: dict[str, str | None] | None = None,
                  load_wait: float = 10.0) -> Server:
    """The MCP server for ``toolkit`` (see the module docstring).

    Args:
        toolkit: the loaded toolkit (its GAR a ``MicroBatcher`` for micro-batched GAR calls), or a
            :class:`BackgroundToolkit` still loading (its planned tools are listed meanwhile).
        name: the server name reported at initialisation.
        include_overlay: add the overlay PNG as image content to each result.
        max_concurrency: most tool calls running at once (more wait for a slot).
        model_names: component names for the server description (default: the components' names).
        load_wait: seconds a call waits for a :class:`BackgroundToolkit` to finish loading before it
            gets the retryable "still loading" result.
    """
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    limiter = anyio.CapacityLimiter(max_concurrency)
    if isinstance(toolkit, BackgroundToolkit):
        names = {k: v for k, v in {**toolkit.names, **(model_names or {})}.items()}
        planned = toolkit.tools
    else:
        names = component_names(toolkit, model_names)
        planned = toolkit.available_tools()
    tools = [types.Tool.model_validate(t) for t in mcp_tools(planned)]
    listed = {t.name for t in tools}

    async def list_tools(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        if isinstance(toolkit, BackgroundToolkit):
            call = functools.partial(_call_when_loaded, toolkit, load_wait, params.name, params.arguments,
                                     include_overlay)
        else:
            call = functools.partial(run_tool, toolkit, params.name, params.arguments, include_overlay)
        return await anyio.to_thread.run_sync(call, limiter=limiter)

    described = ", ".join(f"{k}: {v}" for k, v in names.items() if v) or "no models"
    server: Server = Server(name, version=__version__, title="GAR tools", description=f"GAR region tools ({described})",
                            instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool,
                            get_tool_input_schema=lambda tool: input_schema(tool) if tool in listed else None)
    server.middleware.append(_object_arguments)
    return server


async def run_stdio(server: Server, on_serving: Callable[[], Any] | None = None) -> None:
    """Serve ``server`` over this process's stdin / stdout until stdin closes. ``on_serving`` runs
    once the transport owns the standard streams (fd 1 then points at stderr, so a background
    model load started there cannot write into the protocol)."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        if on_serving is not None:
            on_serving()
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_app(server: Server, host: str = "127.0.0.1", path: str = "/mcp", *,
             allowed_hosts: Sequence[str] | None = None, allowed_origins: Sequence[str] = ()) -> Any:
    """The ASGI app (Starlette) serving ``server`` over streamable HTTP at ``path``. ``host`` is the
    interface it will listen on: on a loopback host the SDK's DNS-rebinding protection is on (Host
    and Origin must be loopback). ``allowed_hosts`` / ``allowed_origins`` (``--allow-host`` /
    ``--allow-origin``) turn it on with those names added. Run it with its lifespan (it starts the
    session manager)."""
    security = None
    if allowed_hosts is not None or allowed_origins:
        from mcp.server.transport_security import TransportSecuritySettings

        hosts = list(allowed_hosts or ["localhost", "127.0.0.1", "::1"])
        if "*" in hosts or "*" in allowed_origins:
            security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        else:
            wire = [f"[{h}]" if ":" in h else h for h in hosts]
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True, allowed_hosts=[f"{h}:*" for h in wire] + wire,
                allowed_origins=[f"http://{h}:*" for h in wire] + list(allowed_origins))
    return server.streamable_http_app(streamable_http_path=path, host=host, transport_security=security)


def serve_http(server: Server, host: str = "127.0.0.1", port: int = 8000, *, path: str = "/mcp",
               log_level: str = "info", allowed_hosts: Sequence[str] | None = None,
               allowed_origins: Sequence[str] = ()) -> None:
    """Serve ``server`` over streamable HTTP at ``http://host:port{path}`` (uvicorn) until interrupted."""
    import uvicorn

    app = http_app(server, host, path, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


__all__ = ["create_server", "run_tool", "run_stdio", "http_app", "serve_http", "INSTRUCTIONS"]
