"""Random-weight GAR checkpoints in the released on-disk layout, for tests and benchmarks.

``build_gar_checkpoint(dir, ...)`` writes ``config.json`` (``model_type: "GAR"`` + ``mllm_config``),
``model.safetensors`` (``mllm.*`` + ``mask_patch_embedding.weight``), a byte-level BPE tokenizer
with the PerceptionLM / GAR special tokens (ids laid out Llama-3 style but in a small vocabulary),
the chat template and the processor configs — everything ``GAR.from_pretrained`` reads. Sizes are
parameters, so the same builder makes a 2-layer toy or a model with GAR-1B's real dimensions
(cost does not depend on weight values). Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gar_tool.regions.refs import prompt_token

CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = 'You are a helpful language and vision assistant. You are able "
    "to understand the visual content that the user provides, and assist the user with a variety of "
    "tasks using natural language.' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<|image|>' }}{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{- content['text'] | trim }}{%- endfor %}"
    "{{ '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# Special tokens after the 256 byte tokens, in Llama-3 order (crop tokens of <Prompt0..4> are
# reserved_2, 3, 4, 5, 6, interleaved with the header / eot tokens as in the released tokenizer).
_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|video|>",
             "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>",
             "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"]
_N_RESERVED = 30  # reserved_special_token_5 .. _34: room for <Prompt5>.. in compat="original"


def _tokenizer(directory: Path, prompt_slots: int, vocab_size: int | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    n_special = len(_SPECIALS) + _N_RESERVED + prompt_slots + 1
    for i in range(len(vocab), (vocab_size or 0) - n_special):  # unreachable fillers (real vocab size)
        vocab[f"<|filler_{i}|>"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = _SPECIALS + [f"<|reserved_special_token_{k}|>" for k in range(5, 5 + _N_RESERVED)]
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                   eos_token="<|eot_id|>", pad_token="<|end_of_text|>")
    fast.add_tokens([prompt_token(k) for k in range(prompt_slots)] + ["<NO_Prompt>"], special_tokens=True)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(directory))
    return fast


def build_gar_checkpoint(directory: str | Path, *, vocab_size: int | None = None, hidden_size: int = 32, num_layers: int = 2,
                         num_heads: int = 2, num_kv_heads: int = 1, intermediate_size: int = 64,
                         vision_width: int = 32, vision_depth: int = 2, vision_heads: int = 2,
                         tile_size: int = 448, patch_size: int = 14, pooling_ratio: int = 2,
                         max_num_tiles: int = 4, prompt_slots: int = 5, tie_embeddings: bool = True,
                         vision_architecture: str = "vit_pe_core_large_patch14_336",
                         roi_double_scale: bool | None = None, seed: int = 0,
                         weight_scale: float = 1.0, dtype: torch.dtype = torch.float32,
                         write_weights: bool = True, tokenizer=None):
    """Write a random GAR checkpoint to ``directory`` and return its path.

    ``tokenizer``: a transformers fast tokenizer to save instead of the byte-level one built
    here; it must have the special tokens of the layout above (``<|image|>``, ``<|video|>``,
    ``<|reserved_special_token_{k+2}|>`` as the crop token of ``<Prompt{k}>``, ``<PromptK>``,
    ``<NO_Prompt>``, bos / eos / pad) and a chat template.

    ``vocab_size`` pads the tokenizer with unreachable filler tokens up to a real vocabulary size
    (GAR-1B: 128262), so that embedding and output layers cost what they cost in the real model.
    ``weight_scale`` > 1 sharpens the random weights (so that pixels, masks and text all move the
    logits, which library-default init barely does in a 2-layer model). With
    ``write_weights=False`` only the configs and tokenizer are written and the random model is
    returned in memory as ``(path, GARModel, GARProcessor)`` (no multi-GB file for large sizes).
    """
    from safetensors.torch import save_file
    from transformers import PerceptionLMConfig, PerceptionLMForConditionalGeneration

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        tok = _tokenizer(out, prompt_slots, vocab_size)
    else:
        tok = tokenizer
        tok.save_pretrained(str(out))
    crop_names = [f"<|reserved_special_token_{k + 2}|>" for k in range(prompt_slots)]
    crop_ids = tok.convert_tokens_to_ids(crop_names)
    grid = tile_size // patch_size
    text_cfg = dict(model_type="llama", vocab_size=len(tok), hidden_size=hidden_size,
                    num_hidden_layers=num_layers, num_attention_heads=num_heads,
                    num_key_value_heads=num_kv_heads, head_dim=hidden_size // num_heads,
                    intermediate_size=intermediate_size, rms_norm_eps=1e-5, rope_theta=500000.0,
                    max_position_embeddings=16384, tie_word_embeddings=tie_embeddings,
                    bos_token_id=tok.bos_token_id, eos_token_id=[tok.pad_token_id, tok.eos_token_id],
                    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    vision_cfg = dict(model_type="timm_wrapper", architecture=vision_architecture, num_features=vision_width,
                      do_pooling=False, model_args={
                          "embed_dim": vision_width, "depth": vision_depth, "num_heads": vision_heads,
                          "img_size": [tile_size, tile_size], "ref_feat_shape": [grid, grid],
                          "global_pool": "", "init_values": 0.1, "use_post_transformer_norm": False})
    mllm_cfg = dict(model_type="perception_lm", text_config=text_cfg, vision_config=vision_cfg,
                    vision_use_cls_token=True, projector_pooling_ratio=pooling_ratio,
                    image_token_id=tok.convert_tokens_to_ids("<|image|>"),
                    video_token_id=tok.convert_tokens_to_ids("<|video|>"), tie_word_embeddings=tie_embeddings)
    torch.manual_seed(seed)
    _write_configs(out, mllm_cfg, crop_ids, prompt_slots, patch_size, pooling_ratio, tile_size,
                   max_num_tiles, vision_width, roi_double_scale)
    if not write_weights:
        return (out, *_in_memory(out, mllm_cfg, vision_width, patch_size, dtype))
    model = PerceptionLMForConditionalGeneration(PerceptionLMConfig(**mllm_cfg)).eval()
    mask_conv = torch.randn(vision_width, 3, patch_size, patch_size) / (3 * patch_size ** 2) ** 0.5
    state = {}
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if tie_embeddings and name == "lm_head.weight":
                continue
            if weight_scale != 1.0 and t.is_floating_point() and t.ndim >= 2:
                t = t.normal_(0, 1) * weight_scale / max(t.shape[-1], 1) ** 0.5
            state[f"mllm.{name}"] = t.detach().to(dtype).contiguous().clone()
    state["mask_patch_embedding.weight"] = mask_conv.to(dtype)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def _in_memory(out: Path, mllm_cfg: dict, vision_width: int, patch_size: int, dtype: torch.dtype):
    from transformers import PerceptionLMConfig, PerceptionLMForConditionalGeneration

    from gar_tool.gar.checkpoint import settings_for
    from gar_tool.gar.modeling import GARModel
    from gar_tool.gar.processing import GARProcessor

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build the parameters directly in the target dtype
    try:
        mllm = PerceptionLMForConditionalGeneration(PerceptionLMConfig(**mllm_cfg)).eval()
        conv = torch.nn.Conv2d(3, vision_width, patch_size, patch_size, bias=False)
    finally:
        torch.set_default_dtype(previous)
    processor = GARProcessor.from_pretrained(out)
    cfg = json.loads((out / "config.json").read_text())
    return GARModel(mllm, conv, settings_for(processor, cfg)).to(dtype).eval(), processor


def _write_configs(out: Path, mllm_cfg: dict, crop_ids: list[int], prompt_slots: int, patch_size: int,
                   pooling_ratio: int, tile_size: int, max_num_tiles: int, vision_width: int,
                   roi_double_scale: bool | None) -> None:
    from transformers import PerceptionLMConfig

    config = {"architectures": ["GARModel"], "model_type": "GAR", "prompt_numbers": prompt_slots,
              "crop_tokens_ids": crop_ids, "kernel_size": [patch_size, patch_size],
              "patch_size_h": patch_size, "patch_size_w": patch_size,
              "mask_path_embedding_out_channels": vision_width,
              "mllm_config": PerceptionLMConfig(**mllm_cfg).to_dict()}
    if roi_double_scale is not None:
        config["roi_double_scale"] = roi_double_scale
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "PerceptionLMImageProcessorFast", "processor_class": "PerceptionLMProcessor",
        "vision_input_type": "thumb+tile", "tile_size": tile_size, "max_num_tiles": max_num_tiles,
        "resample": 3, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "do_convert_rgb": True,
        "size": {"height": tile_size, "width": tile_size}}, indent=2))
    (out / "processor_config.json").write_text(json.dumps(
        {"patch_size": patch_size, "pooling_ratio": pooling_ratio, "processor_class": "PerceptionLMProcessor"}))


__all__ = ["build_gar_checkpoint", "CHAT_TEMPLATE"]
