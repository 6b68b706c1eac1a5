"""argparse ``type=`` converters for bounded numbers (a bad value is a one-line usage error, exit 2)."""

from __future__ import annotations

import argparse
import math
from typing import Callable, TypeVar

T = TypeVar("T", int, float)


def bounded(kind: type[T], what: str, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Callable[[str], T]:
    """A converter to ``kind`` accepting finite values in ``[low, high]`` (``(low, high]`` if ``low_open``)."""

    def convert(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    convert.__name__ = what.replace(" ", "_")
    return convert


positive_int = bounded(int, "a positive integer", low=1)
positive_float = bounded(float, "a positive number", low=0, low_open=True)
non_negative = bounded(float, "a number >= 0", low=0)
unit_float = bounded(float, "a number in [0, 1]", low=0, high=1)
port = bounded(int, "a port number 0-65535", low=0, high=65535)

__all__ = ["bounded", "positive_int", "positive_float", "non_negative", "unit_float", "port"]
