"""Load grounding checkpoints (transformers classes) from a local directory or a hub id.

A model argument is a local directory or a Hugging Face hub id. A hub id is first resolved to a
local snapshot directory (``huggingface_hub.snapshot_download`` of the needed files only: from the
cache, or downloaded when the cache lacks them and ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``
allow it; one repository look-up, so no network fails fast instead of retrying file by file), and
every transformers class is then loaded from that directory with ``local_files_only=True``.
Every failure to find files becomes one :class:`~gar_tool.errors.ModelNotFoundError` line naming
the model, the missing files and how to pass a local directory instead. Weights are loaded from
safetensors only (no pickle), and no remote code is ever run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from gar_tool.errors import ModelError, ModelNotFoundError
from gar_tool.hub import WEIGHT_FILES

T = TypeVar("T")

_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` forbid downloads (read at call time)."""
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency of transformers
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _looks_like_path(model: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with path syntax is meant as a directory.
    return (model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
            or (len(model) > 1 and model[1] == ":"))


def _missing(directory: Path, files: Sequence[Sequence[str]]) -> list[str]:
    return [" or ".join(alts) for alts in files if not any((directory / a).is_file() for a in alts)]


def resolve_checkpoint(model: str | os.PathLike, *, what: str, option: str, model_type: str | None,
                       files: Sequence[Sequence[str]], extra: Sequence[str] = ()) -> Path:
    """Local directory holding the checkpoint named by ``model`` (a directory or a hub id).

    Args:
        model: local directory or hub id.
        what: human name used in messages (``"Grounding DINO detector"``).
        option: how users pass a directory instead (``"detector=DIR / --detector DIR"``).
        model_type: expected ``config.json`` ``model_type``, or None.
        files: files the checkpoint needs, each a group of accepted alternatives.
        extra: further file patterns worth fetching from the hub when present (shards, tokenizer
            config...).

    Hub ids are looked up in the cache first; a download (of these files only) is attempted only
    when the cache lacks some and downloads are allowed. Raises :class:`ModelNotFoundError` (one
    line) or :class:`ModelError` (wrong ``model_type``).
    """
    name = os.fspath(model)
    path = Path(name).expanduser()
    if path.is_dir():
        _check_dir(path, what, model_type, files)
        return path
    if path.exists():
        raise ModelNotFoundError(f"{what} {name!r} is a file; expected a checkpoint directory or a hub id")
    if _looks_like_path(name):
        raise ModelNotFoundError(f"{what} directory {name!r} does not exist")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    patterns = sorted({a for alts in files for a in alts} | set(extra))
    hint = f"pass a local directory holding the checkpoint instead ({option})"
    missing = [" or ".join(alts) for alts in files]
    try:
        cached = Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
        missing = _missing(cached, files)
        if not missing:
            _check_dir(cached, what, model_type, files)
            return cached
    except ValueError as exc:  # HFValidationError: not a valid repo id
        raise ModelNotFoundError(f"{what} {name!r} is neither a directory nor a valid hub id ({_one_line(exc)})") from None
    except (OSError, EntryNotFoundError):
        pass  # nothing cached
    if hub_offline():
        raise ModelNotFoundError(f"{what} {name!r} is not in the Hugging Face cache and downloads are disabled "
                                 f"(HF_HUB_OFFLINE); missing {', '.join(missing)}; {hint}")
    try:
        fetched = Path(snapshot_download(name, allow_patterns=patterns))
    except (OSError, EntryNotFoundError) as exc:
        raise ModelNotFoundError(f"{what} {name!r} is not in the Hugging Face cache and could not be downloaded "
                                 f"({_one_line(exc, 90)}); missing {', '.join(missing)}; {hint}") from None
    lacking = _missing(fetched, files)
    if lacking:
        raise ModelNotFoundError(f"{what} hub repository {name!r} has no {', '.join(lacking)} "
                                 "(safetensors weights are required)")
    _check_dir(fetched, what, model_type, files)
    return fetched


def load_pretrained(loader: Callable[..., T], directory: Path, *, what: str, **kwargs: Any) -> T:
    """``loader(directory, local_files_only=True, **kwargs)`` (a ``from_pretrained``), with load
    failures of a present checkpoint turned into one-line :class:`ModelError` s."""
    try:
        return loader(str(directory), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{what} in {str(directory)!r} cannot be loaded: {_one_line(exc)}") from None


def load_model_and_processor(model_loader: Callable[..., Any], processor_loader: Callable[..., Any],
                             spec: Any, device: Any, dtype: Any, *, what: str, option: str, model_type: str,
                             files: Sequence[Sequence[str]], extra: Sequence[str] = ()) -> tuple[Any, Any, Any, Any]:
    """Resolve ``spec`` (directory or hub id) and load ``(model, processor, device, dtype)`` from it
    (safetensors only; the model in ``dtype`` on ``device``, in eval mode)."""
    from gar_tool.runtime import pick_device, pick_dtype, quiet_transformers

    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    directory = resolve_checkpoint(spec, what=what, option=option, model_type=model_type, files=files, extra=extra)
    with quiet_transformers():
        processor = load_pretrained(processor_loader, directory, what=what)
        model = load_pretrained(model_loader, directory, what=what, use_safetensors=True, dtype=dt)
    return model.to(dev).eval(), processor, dev, dt


def _check_dir(path: Path, what: str, model_type: str | None, files: Sequence[Sequence[str]]) -> None:
    if (path / "config.json").is_file():  # a checkpoint of another kind: say so before listing files
        _check_model_type(path / "config.json", model_type, what)
    missing = _missing(path, files)
    if missing:
        raise ModelNotFoundError(f"{what} directory {str(path)!r} lacks {', '.join(missing)}")


def _check_model_type(config_path: Path, expected: str | None, what: str) -> None:
    if expected is None:
        return
    try:
        found = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"{what} config {str(config_path)!r} is not valid JSON ({exc})") from None
    if found != expected:
        raise ModelError(f"{what} checkpoint {str(config_path.parent)!r} has model_type {found!r}, "
                         f"expected {expected!r}")


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["hub_offline", "resolve_checkpoint", "load_pretrained", "WEIGHT_FILES"]
