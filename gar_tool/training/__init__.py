"""Fine-tuning GAR on your own data (``gar train``).

* :mod:`.records` — reading and validating records (``datasets`` folders, JSONL manifests);
* :mod:`.encoding` — a conversation → model inputs and labels, through the inference processor;
* :mod:`.data` — the torch dataset and the batch collator;
* :mod:`.parts` — per-part freezing and LoRA (``peft``);
* :mod:`.trainer` — the Hugging Face ``Trainer`` for GAR (loss, checkpoints, resume);
* :mod:`.export` — the released checkpoint layout;
* :mod:`.run` — :func:`train`, what ``gar train`` calls.

Torch and transformers load with the submodules, not with this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.training.records import RecordError
    from gar_tool.training.run import TrainConfig, TrainResult, train

_LAZY = {"TrainConfig": "gar_tool.training.run", "TrainResult": "gar_tool.training.run",
         "train": "gar_tool.training.run", "RecordError": "gar_tool.training.records"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gar_tool.training' has no attribute {name!r}")


__all__ = ["TrainConfig", "TrainResult", "RecordError", "train"]
