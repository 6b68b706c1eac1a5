"""Servers over :class:`gar_tool.tools.GARToolkit`: HTTP (FastAPI) and MCP.

* :mod:`gar_tool.server.http` — ``create_app(toolkit) -> FastAPI`` (``gar serve``);
* :mod:`gar_tool.server.mcp` — ``create_server(toolkit) -> mcp.server.Server`` (``gar mcp``);
* :mod:`gar_tool.server.common` — what both share: loading a micro-batched toolkit once at
  start-up, component names for health / status, the error text an agent reads.

The two adapters never import each other, and importing this package imports neither (FastAPI,
uvicorn and the MCP SDK are imported only by the adapter modules themselves). The HTTP client is
:mod:`gar_tool.client`; it does not import the servers.
"""

__all__: list[str] = []
