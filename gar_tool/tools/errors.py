"""Tool errors: the two outcomes an adapter shows an agent when a tool call fails.

Hierarchy (all under :class:`gar_tool.errors.GARError`)::

    ToolError                       base; ``retryable`` says which of the two it is
    ├── ToolInputError (InputError) the arguments are wrong (unknown / expired id, bad region,
    │                               question and regions that do not match, image not allowed):
    │                               the agent should retry with other arguments
    └── ToolFailure                 the tool itself failed (model error, tool not configured):
                                    retrying with the same or other arguments will not help

Every :class:`gar_tool.tools.GARToolkit` method raises only these two. :func:`as_tool_error` maps
anything else onto them: :class:`~gar_tool.errors.InputError` (and its subclasses ``RegionError``,
``PromptError``) and pydantic ``ValidationError`` become :class:`ToolInputError`; any other
exception becomes :class:`ToolFailure` (the original is kept as ``__cause__`` for logs).
"""

from __future__ import annotations

from typing import Any

from gar_tool.errors import GARError, InputError


class ToolError(GARError):
    """Base of the errors a tool call reports to an agent."""

    retryable: bool = False

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tool = tool


class ToolInputError(ToolError, InputError):
    """Bad arguments: retry with other arguments (the message says what was expected)."""

    retryable = True


class ToolFailure(ToolError):
    """The tool failed for reasons the arguments cannot fix (missing model, model failure)."""

    retryable = False


#: Tags of the region union (gar_tool.tools.schemas.RegionInput); pydantic puts them in error locations.
_REGION_TAGS = frozenset({"region_id", "box", "points", "rle", "polygon"})


def _is_region_slot(loc: list, i: int) -> bool:
    """Whether ``loc[:i]`` ends at a region value (``region`` or ``regions.<n>``)."""
    if i >= 1 and loc[i - 1] == "region":
        return True
    return i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] == "regions"


def format_validation_error(exc: Any, max_errors: int = 5) -> str:
    """One readable clause per pydantic error: ``"regions.1.box: List should have at least 4 items"``.

    Locations read as the JSON the caller sent: the union tags pydantic inserts after a region
    (``region.box.box``) are dropped.
    """
    lines = []
    errors = exc.errors(include_url=False)
    for err in errors[:max_errors]:
        loc = list(err.get("loc", ()))
        clean = [str(p) for i, p in enumerate(loc)
                 if not (p in _REGION_TAGS and _is_region_slot(loc, i))]
        where = ".".join(clean) or "input"
        lines.append(f"{where}: {err.get('msg', 'invalid value')}")
    if len(errors) > max_errors:
        lines.append(f"... and {len(errors) - max_errors} more errors")
    return "; ".join(lines)


def as_tool_error(exc: BaseException, tool: str | None = None) -> ToolError:
    """Map any exception onto :class:`ToolInputError` / :class:`ToolFailure` (see module doc)."""
    from pydantic import ValidationError

    if isinstance(exc, ToolError):
        if exc.tool is None:
            exc.tool = tool
        return exc
    if isinstance(exc, ValidationError):
        err: ToolError = ToolInputError(f"invalid arguments: {format_validation_error(exc)}", tool=tool)
    elif isinstance(exc, InputError):
        err = ToolInputError(str(exc), tool=tool)
    else:
        name = tool or "the tool"
        err = ToolFailure(f"{name} failed: {type(exc).__name__}: {exc}", tool=tool)
    err.__cause__ = exc
    return err



#: Endings of the text an agent reads for a failed call (every adapter uses :func:`agent_error_text`).
RETRY_HINT = "Fix the arguments and call the tool again."
FINAL_HINT = "Retrying will not help; continue without this tool."


def agent_error_text(err: ToolError) -> str:
    """``"Error: <reason>. <whether retrying can help>"``: what an agent reads for a failed call."""
    message = err.message.rstrip()
    if not message.endswith((".", "!", "?")):
        message += "."
    return f"Error: {message} {RETRY_HINT if isinstance(err, ToolInputError) else FINAL_HINT}"

__all__ = ["RETRY_HINT", "FINAL_HINT", "agent_error_text", "ToolError", "ToolInputError", "ToolFailure", "as_tool_error", "format_validation_error"]
