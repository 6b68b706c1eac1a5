"""Finding and loading GAR checkpoints (the released Hugging Face layout), without remote code.

A model argument is a local directory or a hub id (``HaochenWang/GAR-1B``). Hub ids are resolved
through the local Hugging Face cache first; a download is attempted only when files are missing
and ``HF_HUB_OFFLINE`` is not set. Only safetensors weights are read.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from gar_tool.errors import ModelError, ModelNotFoundError

#: Files a GAR checkpoint directory must hold (weights: single file or a sharded index).
REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                  "preprocessor_config.json", "processor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
OPTIONAL_FILES = ("chat_template.jinja", "special_tokens_map.json", "generation_config.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _missing(directory: Path) -> list[str]:
    miss = [f for f in REQUIRED_FILES if not (directory / f).is_file()]
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        miss.append(WEIGHT_FILES[0])
    return miss


def resolve_checkpoint(model: str | os.PathLike) -> Path:
    """Local directory holding a GAR checkpoint for ``model`` (a directory or a hub id).

    Raises ``ModelNotFoundError`` with one line naming the missing files and how to fix it.
    """
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        miss = _missing(path)
        if miss:
            raise ModelNotFoundError(f"{text!r} is not a GAR checkpoint directory: missing {', '.join(miss)}")
        return path
    if path.exists() or not _HUB_ID.match(text) or text.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model {text!r}: no such checkpoint directory (nor a hub id like 'owner/name')")
    return _from_hub(text)


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = list(REQUIRED_FILES + WEIGHT_FILES + OPTIONAL_FILES) + ["model-*.safetensors"]
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    err: Exception | None = None
    for local_only in ((True,) if offline else (True, False)):
        try:
            d = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=local_only))
        except Exception as exc:  # hub errors differ across huggingface_hub versions
            err = exc
            continue
        if not _missing(d):
            return d
    how = "offline (HF_HUB_OFFLINE is set)" if offline else f"could not be downloaded ({type(err).__name__})"
    raise ModelNotFoundError(
        f"model {repo_id!r} is not in the local Hugging Face cache and {how}: missing "
        f"{', '.join(REQUIRED_FILES + (WEIGHT_FILES[0],))}; download it where there is network "
        f"(`hf download {repo_id} --local-dir DIR`) and pass --model DIR")


def read_config(directory: Path) -> dict:
    try:
        cfg = json.loads((directory / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{directory / 'config.json'} is not valid JSON: {exc}") from None
    if cfg.get("model_type") != "GAR" or not isinstance(cfg.get("mllm_config"), dict):
        raise ModelError(f"{directory / 'config.json'} is not a GAR config "
                         f"(model_type {cfg.get('model_type')!r}, expected 'GAR' with an mllm_config)")
    return cfg


def read_tensor(directory: Path, key: str) -> torch.Tensor:
    """One tensor from the checkpoint's safetensors (single file or shards)."""
    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shard = json.loads(index.read_text()).get("weight_map", {}).get(key)
        files = [directory / shard] if shard else []
    else:
        files = [directory / "model.safetensors"]
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            if key in st.keys():
                return st.get_tensor(key)
    raise ModelError(f"checkpoint in {directory} has no tensor {key!r}")


__all__ = ["resolve_checkpoint", "read_config", "read_tensor", "REQUIRED_FILES", "WEIGHT_FILES"]
