"""Writing a trained GAR in the released layout (what ``GAR.from_pretrained`` and every tool,
server and benchmark runner load).

A checkpoint folder holds ``config.json`` (the base checkpoint's, with ``roi_double_scale`` set
to what the model ran with), ``model.safetensors`` (``mllm.*`` + ``mask_patch_embedding.weight``;
no ``mllm.lm_head.weight`` when it is tied to the token embeddings, as ``save_pretrained`` does),
the tokenizer with its chat template, ``preprocessor_config.json`` (``max_num_tiles`` as
trained) and ``processor_config.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from gar_tool.errors import ModelError
from gar_tool.gar.processing import GARProcessor
from gar_tool.hub import read_config

WEIGHTS_FILE = "model.safetensors"
TIED_HEAD = "mllm.lm_head.weight"
EMBEDDINGS = "mllm.model.language_model.embed_tokens.weight"
#: Files of the base checkpoint copied as they are (when present).
_COPIED = ("processor_config.json", "generation_config.json")


def head_is_tied(model: Any) -> bool:
    """Whether the GARModel's LM head shares its weight with the token embeddings."""
    return model.mllm.lm_head.weight is model.mllm.get_input_embeddings().weight


def released_state(model: Any, state: Mapping[str, torch.Tensor] | None = None,
                   dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The tensors to store: ``state`` (default ``model.state_dict()``) without the tied head,
    contiguous, detached, on the CPU, in ``dtype`` (floating tensors only; default: as they are)."""
    src = model.state_dict() if state is None else state
    out = {}
    for k, t in src.items():
        if k == TIED_HEAD and head_is_tied(model):
            continue
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[k] = t.contiguous()
    if "mask_patch_embedding.weight" not in out or EMBEDDINGS not in out:
        raise ModelError("the state to export lacks GAR's weights (is it a GARModel state dict?)")
    return out


def write_configs(processor: GARProcessor, base: Path, out: Path, roi_double_scale: bool) -> None:
    """Everything but the weights: configs from ``base`` (updated) and the processor's tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = read_config(base)
    cfg["roi_double_scale"] = bool(roi_double_scale)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    pre = json.loads((base / "preprocessor_config.json").read_text())
    pre["max_num_tiles"] = processor.geometry.max_num_tiles
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    for name in _COPIED:
        if (base / name).is_file() and base.resolve() != out.resolve():
            shutil.copyfile(base / name, out / name)
    processor.tokenizer.save_pretrained(str(out))


def save_checkpoint(model: Any, processor: GARProcessor, base: Path, out: Path, *,
                    state: Mapping[str, torch.Tensor] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` (a GARModel without adapters) to ``out`` in the released layout."""
    from safetensors.torch import save_file

    write_configs(processor, base, out, model.settings.roi_double_scale)
    save_file(released_state(model, state, dtype), str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    return out


__all__ = ["WEIGHTS_FILE", "head_is_tied", "released_state", "write_configs", "save_checkpoint"]
