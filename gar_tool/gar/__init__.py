"""The GAR package: the model and everything that runs it.

* :mod:`.processing` — pure preprocessing: tiles, label map, prompt text, token ids;
* :mod:`.modeling` — ``GARModel`` on transformers' PerceptionLM (mask embedding, RoI replay);
* :mod:`.generation` — the KV-cached decode loop; :mod:`.engine` — batched inference with caches;
* :mod:`.predictor` — ``GAR``, the public object; :mod:`.batching` — micro-batching for servers;
* :mod:`.checkpoint` — loading the released layout.

Torch is imported by the submodules, not by this package's ``__init__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.predictor import GAR, GARAnswer

_LAZY = {"GAR": "gar_tool.gar.predictor", "GARAnswer": "gar_tool.gar.predictor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gar_tool.gar' has no attribute {name!r}")


__all__ = ["GAR", "GARAnswer"]
