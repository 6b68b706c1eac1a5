"""Load grounding checkpoints (transformers classes) from a local directory or a hub id.

The model argument is resolved by the one hub resolver of gar_tool
(:func:`gar_tool.hub.resolve_model_dir`: local directory, else the Hugging Face cache, else a
download of the needed files when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` allow it), and every
transformers class is then loaded from that directory with ``local_files_only=True``. A missing
checkpoint is one :class:`~gar_tool.errors.ModelNotFoundError` line (model, missing files, how to
pass a directory); a present but unusable one — wrong ``model_type``, corrupt or truncated
safetensors, unreadable config / tokenizer files — one :class:`~gar_tool.errors.ModelError` line.
Weights are loaded from safetensors only (no pickle), and no remote code is ever run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from gar_tool.hub import WEIGHT_FILES, check_safetensors, hub_offline, loading, resolve_model_dir

T = TypeVar("T")


def resolve_checkpoint(model: str | os.PathLike, *, what: str, option: str, model_type: str | None,
                       files: Sequence[Sequence[str]], extra: Sequence[str] = ()) -> Path:
    """Local directory holding the checkpoint ``model`` (a directory or a hub id); ``files``: the
    needed files, each a group of accepted alternatives, weights included (see
    :func:`gar_tool.hub.resolve_model_dir`)."""
    groups = [tuple(g) for g in files]
    weights = next((g for g in groups if set(g) & set(WEIGHT_FILES)), WEIGHT_FILES)
    others = [g for g in groups if g != weights]
    return resolve_model_dir(model, others, weights, what, option=option, model_type=model_type, extra=extra)


def load_pretrained(loader: Callable[..., T], directory: Path, *, what: str, **kwargs: Any) -> T:
    """``loader(directory, local_files_only=True, **kwargs)`` (a ``from_pretrained``), with load
    failures of a present checkpoint turned into one-line :class:`ModelError` s."""
    with loading(what, directory):
        return loader(str(directory), local_files_only=True, **kwargs)


def load_model_and_processor(model_loader: Callable[..., Any], processor_loader: Callable[..., Any],
                             spec: Any, device: Any, dtype: Any, *, what: str, option: str, model_type: str,
                             files: Sequence[Sequence[str]], extra: Sequence[str] = ()) -> tuple[Any, Any, Any, Any]:
    """Resolve ``spec`` (directory or hub id) and load ``(model, processor, device, dtype)`` from it
    (safetensors only; the model in ``dtype`` on ``device``, in eval mode)."""
    from gar_tool.runtime import pick_device, pick_dtype, quiet_transformers

    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    directory = resolve_checkpoint(spec, what=what, option=option, model_type=model_type, files=files, extra=extra)
    check_safetensors(directory, what)
    with quiet_transformers():
        processor = load_pretrained(processor_loader, directory, what=what)
        model = load_pretrained(model_loader, directory, what=what, use_safetensors=True, dtype=dt)
    return model.to(dev).eval(), processor, dev, dt


__all__ = ["hub_offline", "resolve_checkpoint", "load_pretrained", "load_model_and_processor", "WEIGHT_FILES"]
