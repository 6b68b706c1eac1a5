"""``gar tools --schema openai|mcp|json``: print the tool schemas (no model is loaded).

* ``openai``: the OpenAI function-calling list ``[{"type": "function", "function": {name,
  description, parameters}}, ...]``;
* ``mcp``: MCP ``tools/list`` entries ``[{name, title, description, inputSchema, outputSchema,
  annotations}, ...]``;
* ``json``: ``[{name, description, input_schema, output_schema}, ...]``.

``--tool NAME`` (repeatable) limits the list. Schemas are the cleaned pydantic schemas of
:mod:`gar_tool.tools.specs` (no ``$ref``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

EXPORTS = ("openai", "mcp", "json")


def register(subparsers: Any) -> None:
    """Add the ``tools`` sub-command."""
    from gar_tool.tools.specs import TOOL_NAMES

    p = subparsers.add_parser("tools", help="print the agent tool schemas (OpenAI, MCP or plain JSON)",
                              description="Print the schemas of the gar_* agent tools.")
    p.add_argument("--schema", choices=EXPORTS, default="json",
                   help="openai: function-calling list; mcp: MCP tool list; json: plain JSON schemas (default)")
    p.add_argument("--tool", action="append", choices=TOOL_NAMES, default=None, metavar="NAME",
                   help=f"only this tool (repeatable): {', '.join(TOOL_NAMES)}")
    p.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2; 0 = one line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gar_tool.tools.specs import json_schemas, mcp_tools, openai_tools

    export = {"openai": openai_tools, "mcp": mcp_tools, "json": json_schemas}[args.schema]
    data = export(args.tool)
    print(json.dumps(data, indent=args.indent or None, ensure_ascii=False))
    return 0


__all__ = ["register", "run"]
