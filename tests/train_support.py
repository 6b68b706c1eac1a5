"""Helpers of the training and shapes-world tests: a tiny shapes-world checkpoint and data."""

from __future__ import annotations

from pathlib import Path

import pytest


def tiny_shapes_checkpoint(directory: Path, *, roi_double_scale: bool = False, seed: int = 0) -> Path:
    """A very small untrained GAR with the shapes-world tokenizer (trained on a short corpus):
    56-px tiles (2×2 features per tile), a 1-block ViT and a 1-layer Llama."""
    from gar_tool.shapes.checkpoint import build_tokenizer, corpus, init_checkpoint

    return init_checkpoint(directory, tile_size=56, max_num_tiles=4, vision_width=32, vision_depth=1,
                           vision_heads=2, hidden_size=48, num_layers=1, num_heads=2, num_kv_heads=1,
                           intermediate_size=96, roi_double_scale=roi_double_scale, seed=seed,
                           tokenizer=build_tokenizer(corpus(n_scenes=15)))


@pytest.fixture(scope="session")
def shapes_ckpt(tmp_path_factory) -> Path:
    return tiny_shapes_checkpoint(tmp_path_factory.mktemp("shapes-ckpt"))


@pytest.fixture(scope="session")
def shapes_jsonl(tmp_path_factory) -> Path:
    """24 shapes-world records (JSONL manifest + images)."""
    from gar_tool.shapes.dataset import write_jsonl

    return write_jsonl(tmp_path_factory.mktemp("shapes-data"), 24, seed=5)


def quick_config(data: Path, model: Path, out: Path, **overrides):
    """A TrainConfig for a few fast steps on the tiny model."""
    from gar_tool.training import TrainConfig

    base = dict(data=str(data), model=str(model), out=str(out), lr=2e-3, batch_size=4, micro_batch=4,
                max_steps=4, max_tiles=4, warmup=0.0, logging_steps=1, save_steps=1000, progress=False,
                scheduler="constant")
    base.update(overrides)
    return TrainConfig(**base)
