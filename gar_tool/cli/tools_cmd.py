"""``gar tools --schema openai|openai-strict|mcp|json``: print the tool schemas (no model is loaded).

* ``openai``: the OpenAI function-calling list ``[{"type": "function", "function": {name,
  description, parameters}}, ...]``;
* ``openai-strict``: the same for OpenAI strict function calling (``"strict": true``; every
  property required, optional ones nullable, no defaults or bounds);
* ``mcp``: MCP ``tools/list`` entries ``[{name, title, description, inputSchema, outputSchema,
  annotations}, ...]``;
* ``json``: ``[{name, description, input_schema, output_schema}, ...]``.

``--tool NAME`` (repeatable) limits the list. Schemas are those every adapter publishes
(:mod:`gar_tool.tools.specs`, made by :mod:`gar_tool.tools.schema_export`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

EXPORTS = ("openai", "openai-strict", "mcp", "json")


def register(subparsers: Any) -> None:
    """Add the ``tools`` sub-command."""
    from gar_tool.tools.specs import TOOL_NAMES

    p = subparsers.add_parser("tools", help="print the agent tool schemas (OpenAI, MCP or plain JSON)",
                              description="Print the schemas of the gar_* agent tools.")
    p.add_argument("--schema", choices=EXPORTS, default="json",
                   help="openai: function-calling list; openai-strict: the same for strict function calling; "
                        "mcp: MCP tool list; json: plain JSON schemas (default)")
    p.add_argument("--tool", action="append", choices=TOOL_NAMES, default=None, metavar="NAME",
                   help=f"only this tool (repeatable): {', '.join(TOOL_NAMES)}")
    p.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2; 0 = one line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gar_tool.tools.specs import json_schemas, mcp_tools, openai_tools

    export = {"openai": openai_tools, "openai-strict": lambda names: openai_tools(names, strict=True),
              "mcp": mcp_tools, "json": json_schemas}[args.schema]
    data = export(args.tool)
    print(json.dumps(data, indent=args.indent or None, ensure_ascii=False))
    return 0


__all__ = ["register", "run"]
