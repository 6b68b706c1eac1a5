"""gar-agent: GAR (Grasp Any Region) as tools for LLM agents.

Public API::

    from gar_tool import GAR, Region, Regions, GroundingDetector

Heavy dependencies (torch, transformers) are imported on first use of ``GAR`` /
``GroundingDetector``, so ``import gar_tool`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gar_tool.errors import GARError, InputError, ModelError, ModelNotFoundError, PromptError, RegionError
from gar_tool.regions import Region, Regions

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.grounding import GroundingDetector
    from gar_tool.gar.predictor import GAR, GARAnswer

__version__ = "0.1.0"

_LAZY = {"GAR": "gar_tool.gar.predictor", "GARAnswer": "gar_tool.gar.predictor",
         "GroundingDetector": "gar_tool.grounding"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gar_tool' has no attribute {name!r}")


__all__ = ["GAR", "GARAnswer", "Region", "Regions", "GroundingDetector", "GARError", "InputError",
           "RegionError", "PromptError", "ModelNotFoundError", "ModelError", "__version__"]
