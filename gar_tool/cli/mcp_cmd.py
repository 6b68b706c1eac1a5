"""``gar mcp``: the gar tools as an MCP server (stdio by default, streamable HTTP with ``--http``).

The server answers ``initialize`` and ``tools/list`` at once (the tools are those of the components
asked for) and loads the models in a background thread; a tool call that arrives during the load
waits for it up to ``--load-wait`` seconds, then gets a retryable "still loading" error. Cheap
argument checks (``--allow-dir``, local model paths) still fail at once with exit code 2.

On stdio, stdout carries only the protocol: logs go to stderr, and while the server runs the
transport points fd 1 at stderr, so nothing the model load prints can reach the protocol.
Details: :mod:`gar_tool.integrations.mcp`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from gar_tool.cli.argtypes import positive_float as _positive_float
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
    p.add_argument("--load-wait", type=_positive_float, default=10.0, metavar="S",
                   help="how long a tool call waits for the models still loading before it gets a retryable "
                        "'still loading' error (default 10 s)")
    p.set_defaults(func=run)


def _check_local_paths(args: argparse.Namespace) -> None:
    """A model argument written as a path must be an existing directory (exit 2 before serving)."""
    from gar_tool.errors import ModelNotFoundError

    for option, value in (("--model", args.model), ("--detector", args.detector), ("--segmenter", args.segmenter)):
        if not isinstance(value, str) or value.strip().lower() in ("", "none", "off", "sam", "default"):
            continue
        looks_local = value.startswith((".", "/", "~")) or value.count("/") > 1
        if looks_local and not Path(value).expanduser().is_dir():
            raise ModelNotFoundError(f"{option} {value!r}: no such checkpoint directory")


def run(args: argparse.Namespace) -> int:
    from gar_tool.cli.server_options import DEFAULT_MODEL_TEXT, allowed_hosts, setup_logging, toolkit_from_args
    from gar_tool.grounding.defaults import DEFAULT_DETECTOR
    from gar_tool.integrations.mcp import create_server, run_stdio, serve_http
    from gar_tool.integrations.serving import BackgroundToolkit, image_inputs, planned_tools

    setup_logging(args.log_level)
    image_inputs(args.allow_dir, args.allow_urls)  # a bad --allow-dir fails now, not in the background
    _check_local_paths(args)
    model, detector = args.model or DEFAULT_MODEL_TEXT, args.detector or DEFAULT_DETECTOR
    names = {key: None if value is None or value.strip().lower() in ("", "none", "off") else value
             for key, value in (("gar", model), ("detector", detector), ("segmenter", args.segmenter))}
    toolkit = BackgroundToolkit(lambda: toolkit_from_args(args), planned_tools(model, detector, args.tracker), names)
    server = create_server(toolkit, include_overlay=not args.no_overlay, max_concurrency=args.max_concurrency,
                           load_wait=args.load_wait)
    where = f"streamable HTTP at http://{args.host}:{args.port}/mcp" if args.http else "stdio"
    logging.getLogger("gar_tool.integrations.mcp").info("serving %s over %s (models loading)",
                                                         ", ".join(toolkit.tools), where)
    try:
        if args.http:
            toolkit.start()
            serve_http(server, host=args.host, port=args.port, log_level=args.log_level,
                       allowed_hosts=allowed_hosts(args) if args.allow_host else None,
                       allowed_origins=args.allow_origin or ())
        else:
            import anyio

            anyio.run(run_stdio, server, toolkit.start)
    finally:
        toolkit.close()
    return 0


__all__ = ["register", "run"]
