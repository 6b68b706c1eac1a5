"""Which parts of GAR train: per-part freezing, and LoRA adapters through ``peft``.

Parts (names used by ``gar train --freeze``):

* ``llm`` — the Llama decoder, its token embeddings and the LM head (tied or not);
* ``vision`` — the PE vision transformer;
* ``projector`` — PerceptionLM's vision→text projector;
* ``mask-embedding`` — GAR's mask patch embedding.

GAR's 1B recipe trains all of them (the default). With LoRA the LLM's base weights stay frozen
and low-rank adapters are trained on its attention and MLP projections; the other parts still
train unless frozen. :func:`merge_lora` folds the adapters back into plain weights, so the
exported checkpoint has the released layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from torch import nn

from gar_tool.errors import InputError

#: Modules of each part, from a GARModel.
PARTS: dict[str, Callable[[Any], list[nn.Module]]] = {
    "llm": lambda m: [m.mllm.model.language_model, m.mllm.lm_head],
    "vision": lambda m: [m.mllm.model.vision_tower],
    "projector": lambda m: [m.mllm.model.multi_modal_projector],
    "mask-embedding": lambda m: [m.mask_patch_embedding],
}
#: The LLM's linear layers LoRA adapts (module-name regex, matched in full by peft).
LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA rank ``r``, ``alpha`` (scale = alpha / r) and ``dropout`` on the adapter input."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05


def check_parts(names: Iterable[str]) -> tuple[str, ...]:
    """Validate part names (``InputError`` naming the known ones)."""
    out = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    bad = [n for n in out if n not in PARTS]
    if bad:
        raise InputError(f"unknown part(s) {', '.join(bad)}; expected some of {', '.join(PARTS)}")
    return out


def set_trainable(model: Any, freeze: Iterable[str], *, lora: bool = False) -> None:
    """Make every part trainable except those in ``freeze`` (and, with ``lora``, the LLM's base
    weights: its adapters stay trainable)."""
    frozen = set(check_parts(freeze))
    if lora and "llm" in frozen:
        raise InputError("--lora trains adapters on the LLM; it cannot be combined with --freeze llm")
    base = base_model(model)
    for name, modules in PARTS.items():
        train = name not in frozen and not (lora and name == "llm")
        for mod in modules(base):
            for p in mod.parameters():
                p.requires_grad_(train)
    if lora:
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.requires_grad_(True)


def add_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap a GARModel with LoRA adapters on its LLM (a ``peft`` model; forward unchanged)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:  # pragma: no cover - an extra
        raise InputError("LoRA needs the 'peft' package (pip install 'gar-agent[train]')") from None
    if settings.r < 1:
        raise InputError(f"LoRA rank must be >= 1, got {settings.r}")
    cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                     target_modules=LORA_TARGETS, bias="none")
    return get_peft_model(model, cfg)


def is_lora(model: Any) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


def merge_lora(model: Any) -> Any:
    """The GARModel with the adapters folded into its weights (the peft wrapper is removed)."""
    return model.merge_and_unload() if is_lora(model) else model


def base_model(model: Any) -> Any:
    """The GARModel of ``model`` (peft-wrapped or not)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (tied weights counted once)."""
    seen: dict[int, tuple[int, bool]] = {}
    for p in model.parameters():
        seen[id(p)] = (p.numel(), p.requires_grad)
    return sum(n for n, t in seen.values() if t), sum(n for n, _ in seen.values())


__all__ = ["PARTS", "LORA_TARGETS", "LoraSettings", "check_parts", "set_trainable", "add_lora",
           "is_lora", "merge_lora", "base_model", "count_parameters"]
