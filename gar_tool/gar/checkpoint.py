"""Build a :class:`~gar_tool.gar.modeling.GARModel` + :class:`~gar_tool.gar.processing.GARProcessor` from a
checkpoint in the released GAR layout (``config.json`` with ``model_type: "GAR"`` and
``mllm_config``; ``model.safetensors`` with ``mllm.*`` and ``mask_patch_embedding.weight``).

The PerceptionLM part is loaded by transformers' own ``PerceptionLMForConditionalGeneration
.from_pretrained`` (meta-device init, dtype, sharding, tied embeddings) with the ``mllm.`` prefix
mapped away; the GAR-specific conv is read from the same safetensors. No remote code runs.
"""

from __future__ import annotations

import os
from typing import Any
from pathlib import Path

import torch
from torch import nn

from gar_tool.errors import ModelError
from gar_tool.hub import check_safetensors, loading, read_config, read_tensor, resolve_checkpoint
from gar_tool.runtime import pick_device, pick_dtype, quiet_transformers
from gar_tool.gar.modeling import GARModel, GARSettings
from gar_tool.gar.processing import GARProcessor

MASK_EMBED_KEY = "mask_patch_embedding.weight"


def load_gar_model(model: str | os.PathLike, *, device=None, dtype=None,
                   attn_implementation: str | None = None,
                   roi_double_scale: bool | None = None) -> tuple[GARModel, GARProcessor, Path]:
    """Resolve ``model`` (directory or hub id) and load it on ``device`` in ``dtype``."""
    from transformers import PerceptionLMConfig, PerceptionLMForConditionalGeneration

    directory = resolve_checkpoint(model)
    cfg = read_config(directory)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    check_safetensors(directory, "GAR model")
    with loading("GAR tokenizer / processor", directory):
        processor = GARProcessor.from_pretrained(directory, cfg)
    try:
        plm_config = PerceptionLMConfig(**cfg["mllm_config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"config.json: invalid mllm_config ({exc})") from None
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with quiet_transformers():
        with loading("GAR model (PerceptionLM weights)", directory):
            mllm = PerceptionLMForConditionalGeneration.from_pretrained(
                str(directory), config=plm_config, key_mapping={r"^mllm\.": ""}, dtype=dt,
                use_safetensors=True, **kwargs)
    weight = read_tensor(directory, MASK_EMBED_KEY)
    conv = _mask_conv(weight, cfg, mllm)
    geo = processor.geometry
    patch = mllm.model.vision_tower.timm_model.patch_embed.patch_size
    if tuple(patch) != (geo.patch_size, geo.patch_size) or tuple(conv.kernel_size) != tuple(patch):
        raise ModelError(f"patch sizes disagree: vision tower {tuple(patch)}, processor "
                         f"{geo.patch_size}, mask embedding kernel {tuple(conv.kernel_size)}")
    settings = settings_for(processor, cfg, roi_double_scale)
    gar = GARModel(mllm, conv, settings).to(device=dev, dtype=dt).eval()
    return gar, processor, directory


def settings_for(processor: GARProcessor, cfg: dict, roi_double_scale: bool | None = None) -> GARSettings:
    """Model-side constants from the processor (geometry, token ids) and ``config.json``."""
    geo = processor.geometry
    return GARSettings(
        prompt_slots=processor.vocab.prompt_slots,
        image_token_id=processor.vocab.image_token_id,
        tokens_side=geo.tokens_side,
        feature_stride=geo.feature_stride,
        roi_double_scale=bool(cfg.get("roi_double_scale", True)) if roi_double_scale is None
        else roi_double_scale,
    )


def _mask_conv(weight: torch.Tensor, cfg: dict, mllm: nn.Module) -> nn.Conv2d:
    """The bias-free ``Conv2d(3, C_v, k, stride=k)`` of the mask patch embedding."""
    if weight.ndim != 4:
        raise ModelError(f"{MASK_EMBED_KEY} must be 4-D (C_v, 3, k, k), got {tuple(weight.shape)}")
    out_ch, in_ch, kh, kw = weight.shape
    want = cfg.get("kernel_size")
    if want is not None and list(want) != [kh, kw]:
        raise ModelError(f"config kernel_size {want} does not match {MASK_EMBED_KEY} {tuple(weight.shape)}")
    width = mllm.model.vision_tower.timm_model.embed_dim  # type: ignore[union-attr]
    if out_ch != width:
        raise ModelError(f"{MASK_EMBED_KEY} has {out_ch} output channels, the vision tower is {width} wide")
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=(kh, kw), stride=(kh, kw), bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    return conv


__all__ = ["load_gar_model", "settings_for", "MASK_EMBED_KEY"]
