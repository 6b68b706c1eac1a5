"""Tiny random Grounding DINO and SAM checkpoints, written in the hub's on-disk layout at test time.

Import the fixtures into a test module (``from grounding_fixtures import tiny_dino_dir, ...``).
The checkpoints are built once per test session (module-level cache: a fixture imported into
several modules is registered once per module) and loaded back through the same
``from_pretrained`` path users take. Nothing is downloaded: the BERT tokenizer is built from a
small vocabulary written here, whose [CLS] / [SEP] / "." / "?" ids are the ones Grounding DINO's
text encoder treats as special (transformers' ``SPECIAL_TOKENS``), so phrase masking behaves as
with the real checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GAR_BENCH_IMAGE = REPO.parent / "shared" / "data" / "gar-bench" / "images" / "vqa_7.png"

#: Words of the tiny vocabulary (anything else tokenizes to [UNK]).
WORDS = ("a an the dog dogs cat ball person man woman car tree sky red blue green big small "
         "left right of on in and with near black white table cup food plate sign bus").split()
#: Text-token limit of the tiny detector: small, so that a few phrases already need chunking.
TINY_MAX_TEXT_LEN = 16

_cache: dict[str, Path] = {}


def _vocab() -> list[str]:
    from transformers.models.grounding_dino.modeling_grounding_dino import SPECIAL_TOKENS

    fixed = dict(zip(SPECIAL_TOKENS, ["[CLS]", "[SEP]", ".", "?"]))  # ids the model treats as separators
    fixed.update({0: "[PAD]", 100: "[UNK]", 103: "[MASK]"})
    size = max(fixed) + 1 + len(WORDS) + 2
    vocab = [fixed.get(i) for i in range(size)]
    words = iter(WORDS + [",", "!"])
    for i, tok in enumerate(vocab):
        if tok is None and i > 103:
            vocab[i] = next(words, f"[unused{i}]")
    return [tok if tok is not None else f"[unused{i}]" for i, tok in enumerate(vocab)]


def build_tiny_dino(directory: Path, seed: int = 0) -> Path:
    """Random Grounding DINO (Swin backbone, BERT text encoder) saved like the hub repository:
    config.json, model.safetensors, preprocessor_config.json and tokenizer files."""
    import torch
    from transformers import (BertConfig, BertTokenizerFast, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, SwinConfig)

    directory.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(directory))  # reads vocab.txt only
    backbone = SwinConfig(image_size=96, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=4, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    # d_model must be a multiple of 32 (GroupNorm(32, d_model)); >= 2 decoder layers (tied box heads).
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                                 decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                                 encoder_attention_heads=2, decoder_attention_heads=2, num_queries=30,
                                 encoder_n_points=2, decoder_n_points=2, max_text_len=TINY_MAX_TEXT_LEN)
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    model.save_pretrained(str(directory))  # config.json + model.safetensors
    tokenizer.save_pretrained(str(directory))
    GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 144}).save_pretrained(str(directory))
    return directory


def build_tiny_sam(directory: Path, seed: int = 0) -> Path:
    """Random SAM saved like the hub repository: config.json, model.safetensors, preprocessor_config.json."""
    import torch
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig,
                              SamVisionConfig)

    directory.mkdir(parents=True, exist_ok=True)
    side, patch = 64, 8
    vision = SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                             image_size=side, patch_size=patch, window_size=4, global_attn_indexes=[1], mlp_dim=32,
                             num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=side, patch_size=patch, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2,
                                   iou_head_hidden_dim=16)
    torch.manual_seed(seed)
    model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder))
    model.eval().save_pretrained(str(directory))
    SamImageProcessor(size={"longest_edge": side}, pad_size={"height": side, "width": side}).save_pretrained(
        str(directory))
    return directory


def _built(name: str, builder, factory) -> Path:
    if name not in _cache:
        _cache[name] = builder(factory.mktemp(name))
    return _cache[name]


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory) -> Path:
    return _built("tiny-grounding-dino", build_tiny_dino, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_sam_dir(tmp_path_factory) -> Path:
    return _built("tiny-sam", build_tiny_sam, tmp_path_factory)


@pytest.fixture(scope="session")
def real_image() -> Path:
    """A GAR-Bench photo from ../shared (read in place, never copied)."""
    if not GAR_BENCH_IMAGE.is_file():
        pytest.fail(f"{GAR_BENCH_IMAGE} must exist (../shared beside the checkout)")
    return GAR_BENCH_IMAGE
