"""Adapters that expose :mod:`gar_tool.tools` to agent frameworks.

Each adapter is its own module and imports its framework only when imported itself
(``gar_tool.integrations.langchain`` needs ``langchain-core``). Adapters call
:class:`gar_tool.tools.GARToolkit`; they never import each other.
"""

__all__: list[str] = []
