"""Finding model files: one resolver for every model argument (GAR, Grounding DINO, SAM, ``hf:`` planners).

A model argument is a local directory or a Hugging Face hub id (``HaochenWang/GAR-1B``).
:func:`resolve_model_dir` turns it into a local directory holding the files a loader needs:

* a directory is checked for them (a missing one is named);
* a hub id is looked up in the local Hugging Face cache first (``snapshot_download(...,
  local_files_only=True)`` of those files only); a download is attempted only when files are
  missing and neither ``HF_HUB_OFFLINE`` nor ``TRANSFORMERS_OFFLINE`` is set (:func:`hub_offline`,
  read at call time); one repository look-up, so no network fails fast.

Every failure is one :class:`~gar_tool.errors.ModelNotFoundError` line naming the model, the missing
files and how to pass a local directory instead. Only the hub client's "not available" errors are
caught (:data:`HUB_UNAVAILABLE`: OS / HTTP / connection / offline / missing-entry errors), never
``Exception``. Loaders then read the directory with ``local_files_only=True``; weights are
safetensors only. This module also reads the GAR layout (:func:`read_config`, :func:`read_tensor`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from gar_tool.errors import GARError, ModelError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Files a GAR checkpoint directory must hold (weights: single file or a sharded index).
REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                  "preprocessor_config.json", "processor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
OPTIONAL_FILES = ("chat_template.jinja", "special_tokens_map.json", "generation_config.json")
#: Environment variables that forbid downloads (either one is enough).
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

_TRUE = {"1", "on", "yes", "true"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` forbid downloads (read at call time;
    also the hub client's own offline setting)."""
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in OFFLINE_VARS):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_unavailable() -> tuple[type[BaseException], ...]:
    """The exceptions meaning "not available from the hub" (cache miss, no network, no repo, ...)."""
    from huggingface_hub import errors

    found: list[type[BaseException]] = [OSError, errors.EntryNotFoundError, errors.OfflineModeIsEnabled]
    for name in ("CachedRepoTreeNotFoundError", "RevisionResolutionError"):
        if hasattr(errors, name):
            found.append(getattr(errors, name))
    for module in ("httpx2", "httpx"):  # the HTTP client the hub client uses raises its own errors
        try:
            found.append(__import__(module).HTTPError)
        except ImportError:
            continue
    return tuple(found)


def _looks_like_path(model: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with path syntax is meant as a directory.
    return (model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
            or (len(model) > 1 and model[1] == ":") or not _HUB_ID.match(model))


def _groups(files: Sequence[Sequence[str] | str]) -> list[tuple[str, ...]]:
    return [(f,) if isinstance(f, str) else tuple(f) for f in files]


def missing_files(directory: Path, files: Sequence[Sequence[str] | str]) -> list[str]:
    """The groups of ``files`` (each a file or a tuple of accepted alternatives) absent from ``directory``."""
    return [" or ".join(alts) for alts in _groups(files) if not any((directory / a).is_file() for a in alts)]


def resolve_model_dir(model: str | os.PathLike, required_files: Sequence[Sequence[str] | str],
                      weight_files: Sequence[str] = WEIGHT_FILES, what: str = "model", *,
                      option: str = "a local directory", model_type: str | None = None,
                      extra: Sequence[str] = ()) -> Path:
    """Local directory holding the checkpoint named by ``model`` (a directory or a hub id).

    Args:
        model: local directory or hub id.
        required_files: files the checkpoint needs; an item may be a tuple of alternatives.
        weight_files: accepted weight files (one of them is needed; safetensors only).
        what: human name used in messages (``"Grounding DINO detector"``).
        option: how users pass a directory instead (``"--detector DIR"``).
        model_type: expected ``config.json`` ``model_type``, or None (not checked).
        extra: further file patterns fetched from the hub when present (shards, tokenizer extras).

    Raises :class:`ModelNotFoundError` (one line) or :class:`ModelError` (a checkpoint of another
    ``model_type``, an unreadable ``config.json``).
    """
    name = os.fspath(model)
    files = _groups(required_files) + [tuple(weight_files)]
    hint = (f"download it where there is network (`hf download {name} --local-dir DIR`) and pass a local "
            f"directory: {option}")
    path = Path(name).expanduser()
    if path.is_dir():
        _check_dir(path, what, model_type, files)
        return path
    if path.exists():
        raise ModelNotFoundError(f"{what} {name!r} is a file; expected a checkpoint directory or a hub id")
    if _looks_like_path(name):
        raise ModelNotFoundError(f"{what} {name!r}: no such checkpoint directory (the path does not exist, and it is "
                                 "not a hub id like 'owner/name')")

    from huggingface_hub import snapshot_download

    unavailable = _hub_unavailable()
    patterns = sorted({a for alts in files for a in alts} | set(extra))
    missing = [" or ".join(alts) for alts in files]
    try:
        cached = Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
        missing = missing_files(cached, files)
        if not missing:
            _check_dir(cached, what, model_type, files)
            return cached
    except ValueError as exc:  # HFValidationError: not a valid repo id
        raise ModelNotFoundError(f"{what} {name!r} is neither a directory nor a valid hub id "
                                 f"({one_line(exc)})") from None
    except unavailable:
        pass  # nothing cached
    if hub_offline():
        raise ModelNotFoundError(f"{what} {name!r} is not in the Hugging Face cache and downloads are "
                                 f"disabled ({' / '.join(OFFLINE_VARS)}): missing {', '.join(missing)}; {hint}")
    try:
        fetched = Path(snapshot_download(name, allow_patterns=patterns))
    except ValueError as exc:
        raise ModelNotFoundError(f"{what} {name!r} is not a valid hub id ({one_line(exc)})") from None
    except unavailable as exc:
        raise ModelNotFoundError(f"{what} {name!r} is not in the Hugging Face cache and could not be "
                                 f"downloaded ({type(exc).__name__}: {one_line(exc, 90)}): missing "
                                 f"{', '.join(missing)}; {hint}") from None
    lacking = missing_files(fetched, files)
    if lacking:
        raise ModelNotFoundError(f"{what} hub repository {name!r} has no {', '.join(lacking)} "
                                 "(safetensors weights are required)")
    _check_dir(fetched, what, model_type, files)
    return fetched


def _check_dir(path: Path, what: str, model_type: str | None, files: Sequence[Sequence[str]]) -> None:
    if model_type is not None and (path / "config.json").is_file():  # another kind: say so first
        found = read_json(path / "config.json", what).get("model_type")
        if found != model_type:
            raise ModelError(f"{what} checkpoint {str(path)!r} has model_type {found!r}, expected {model_type!r}")
    missing = missing_files(path, files)
    if missing:
        raise ModelNotFoundError(f"{what} directory {str(path)!r} lacks {', '.join(missing)}")


def read_json(path: Path, what: str = "checkpoint") -> dict:
    """A checkpoint's JSON file as a dict; :class:`ModelError` (one line) when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{what} file {str(path)!r} is not valid JSON ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{what} file {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


@contextlib.contextmanager
def loading(what: str, directory: Path) -> Iterator[None]:
    """Turn what reading a *present* checkpoint can raise — corrupt / truncated safetensors,
    malformed JSON or tokenizer files, tensors of the wrong shape — into one :class:`ModelError`
    line naming ``what`` and ``directory`` (gar_tool's own errors pass through)."""
    from safetensors import SafetensorError

    try:
        yield
    except GARError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{what} in {str(directory)!r} cannot be loaded: {one_line(exc)}") from None
    except Exception as exc:  # the tokenizers library raises a bare Exception for a malformed tokenizer.json
        if type(exc) is not Exception:
            raise
        raise ModelError(f"{what} in {str(directory)!r} cannot be loaded: {one_line(exc)}") from None


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- the GAR layout
def resolve_checkpoint(model: str | os.PathLike) -> Path:
    """Local directory holding a GAR checkpoint for ``model`` (a directory or a hub id)."""
    return resolve_model_dir(model, REQUIRED_FILES, WEIGHT_FILES, "GAR model", option="--model DIR / model=DIR",
                             extra=OPTIONAL_FILES + ("model-*.safetensors",))


def read_config(directory: Path) -> dict:
    cfg = read_json(directory / "config.json", "GAR config")
    if cfg.get("model_type") != "GAR" or not isinstance(cfg.get("mllm_config"), dict):
        raise ModelError(f"{directory / 'config.json'} is not a GAR config "
                         f"(model_type {cfg.get('model_type')!r}, expected 'GAR' with an mllm_config)")
    return cfg


def read_tensor(directory: Path, key: str) -> "torch.Tensor":
    """One tensor from the checkpoint's safetensors (single file or shards); :class:`ModelError`
    when a file is corrupt, truncated or lacks the tensor."""
    from safetensors import SafetensorError, safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shard = read_json(index, "weight index").get("weight_map", {}).get(key)
        files = [directory / shard] if isinstance(shard, str) else []
    else:
        files = [directory / "model.safetensors"]
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as st:
                if key in st.keys():
                    return st.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"weights file {str(f)!r} is corrupt or truncated ({one_line(exc, 160)})") from None
    raise ModelError(f"checkpoint in {directory} has no tensor {key!r}")


def check_safetensors(directory: Path, what: str, weight_files: Sequence[str] = WEIGHT_FILES) -> None:
    """Open every safetensors file of ``directory`` (header and size only) so that a corrupt or
    truncated file is one :class:`ModelError` line before a loader meets it."""
    from safetensors import SafetensorError, safe_open

    files = sorted(directory.glob("*.safetensors"))
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index, f"{what} weight index").get("weight_map", {})
        names = sorted({v for v in weight_map.values() if isinstance(v, str)}) if isinstance(weight_map, dict) else []
        absent = [n for n in names if not (directory / n).is_file()]
        if absent:
            raise ModelError(f"{what} in {str(directory)!r}: weight shards missing: {', '.join(absent[:5])}")
    for f in files:
        try:
            with safe_open(str(f), framework="pt"):
                pass  # opening parses the header and checks it against the file size
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{what} weights file {str(f)!r} is corrupt or truncated ({one_line(exc, 160)}); "
                             "download it again") from None


__all__ = ["resolve_model_dir", "resolve_checkpoint", "hub_offline", "missing_files", "read_config", "read_tensor",
           "read_json", "check_safetensors", "loading", "one_line", "REQUIRED_FILES", "WEIGHT_FILES", "OFFLINE_VARS"]
