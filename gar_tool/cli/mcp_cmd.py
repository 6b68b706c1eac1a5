"""``gar mcp``: the gar tools as an MCP server (stdio by default, streamable HTTP with ``--http``).

On stdio, stdout carries only the protocol: logs go to stderr, and anything written to stdout while
the models load is sent to stderr too. Details: :mod:`gar_tool.integrations.mcp`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gar_tool.cli.server_options import add_network_options, add_toolkit_options


def register(subparsers: Any) -> None:
    """Add the ``mcp`` sub-command."""
    p = subparsers.add_parser(
        "mcp", help="serve the gar tools to MCP clients (stdio; --http for streamable HTTP)",
        description="An MCP server with the tools gar_describe, gar_relate, gar_ground and gar_measure "
                    "(input and output schemas, structured results, overlay images). Speaks MCP over "
                    "stdin/stdout unless --http is given.")
    p.add_argument("--http", action="store_true",
                   help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    add_network_options(p)
    add_toolkit_options(p, log_level="warning")
    p.add_argument("--no-overlay", action="store_true",
                   help="do not add the overlay image to tool results (text and structured output only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gar_tool.cli.server_options import setup_logging, stdout_to_stderr, toolkit_from_args
    from gar_tool.integrations.serving import close_toolkit

    setup_logging(args.log_level)
    with stdout_to_stderr():  # nothing but the protocol may reach stdout
        toolkit, names = toolkit_from_args(args)
        from gar_tool.integrations.mcp import create_server, run_stdio, serve_http

        server = create_server(toolkit, include_overlay=not args.no_overlay,
                               max_concurrency=args.max_concurrency, model_names=names)
    where = f"streamable HTTP at http://{args.host}:{args.port}/mcp" if args.http else "stdio"
    logging.getLogger("gar_tool.integrations.mcp").info("serving %s over %s", ", ".join(toolkit.available_tools()), where)
    try:
        if args.http:
            serve_http(server, host=args.host, port=args.port, log_level=args.log_level)
        else:
            import anyio

            anyio.run(run_stdio, server)
    finally:
        close_toolkit(toolkit)
    return 0


__all__ = ["register", "run"]
