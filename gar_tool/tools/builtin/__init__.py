"""The built-in tools, one unit each (:class:`~gar_tool.tools.unit.ToolUnit`); the registry that
names them is :mod:`gar_tool.tools.registry`."""
