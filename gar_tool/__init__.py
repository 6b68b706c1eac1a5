"""gar-agent: GAR (Grasp Any Region) as tools for LLM agents.

Public API::

    from gar_tool import GAR, Region, Regions, GroundingDetector

Heavy dependencies (torch, transformers) are imported on first use of ``GAR`` /
``GroundingDetector``, so ``import gar_tool`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import GARError, InputError, ModelError, ModelNotFoundError, PromptError, RegionError
from .regions import Region, Regions

if TYPE_CHECKING:  # pragma: no cover
    from .grounding import GroundingDetector
    from .predictor import GAR, GARAnswer

__version__ = "0.1.0"

_LAZY = {"GAR": "predictor", "GARAnswer": "predictor", "GroundingDetector": "grounding"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gar_tool' has no attribute {name!r}")


__all__ = ["GAR", "GARAnswer", "Region", "Regions", "GroundingDetector", "GARError", "InputError",
           "RegionError", "PromptError", "ModelNotFoundError", "ModelError", "__version__"]
