"""Size bounds of tool arguments, checked in validation against :data:`gar_tool.limits.LIMITS`.

The bounds are *not* written into the exported JSON schemas as ``maxLength`` / ``maxItems``:
grammar-constrained decoders (llama.cpp, vLLM's guided decoding) expand such counts into
grammar rules, and a ``maxLength`` of a few thousand overflows them. Validation enforces them
instead, and the error names the limit::

    question: 5000 characters, more than the limit of 4000 (question_chars); shorten it

Use them as pydantic ``Annotated`` metadata: ``Annotated[str, text_bound("question_chars")]``,
``Annotated[list[X], list_bound("regions_per_call", "regions")]``.
"""

from __future__ import annotations

from typing import Any, Sized

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from gar_tool.limits import LIMITS, limit


def _over(name: str, count: int, unit: str, hint: str) -> PydanticCustomError:
    lim = limit(name)
    return PydanticCustomError(
        "limit", "{count} {unit}, more than the limit of {lim} ({name}); {hint}",
        {"count": count, "unit": unit, "lim": lim, "name": name, "hint": hint})


def check_count(name: str, value: Sized, unit: str | None = None, hint: str | None = None) -> None:
    """Raise a pydantic ``limit`` error when ``len(value)`` exceeds limit ``name``."""
    if len(value) > limit(name):
        raise _over(name, len(value), unit or LIMITS[name].unit, hint or "send fewer")


def text_bound(name: str, hint: str = "shorten it") -> AfterValidator:
    """Validator: a string of at most ``limit(name)`` characters."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            check_count(name, value, "characters", hint)
        return value

    return AfterValidator(check)


def list_bound(name: str, hint: str = "split the call") -> BeforeValidator:
    """Validator: a list of at most ``limit(name)`` items (the limit's unit names them). It runs
    before the items are validated, so an oversized list costs nothing more than its length."""

    def check(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            check_count(name, value, None, hint)
        return value

    return BeforeValidator(check)


__all__ = ["text_bound", "list_bound", "check_count"]
