"""Synthetic clips and a random SAM 2 video checkpoint in the hub's on-disk layout, for tests.

* :func:`moving_square` — frames of a white square moving left to right over a dark background
  (blue channel = frame index · 8, so a decoded frame tells which source frame it is), with the
  square's exact mask per frame;
* :func:`write_video` — those frames encoded to a video file with PyAV (H.264 by default);
* :func:`build_sam2_video_checkpoint` — a tiny random ``Sam2VideoModel`` in the layout of the
  released ``facebook/sam2.1-hiera-*`` repositories (``config.json``, ``model.safetensors``,
  ``preprocessor_config.json``, ``video_preprocessor_config.json``, ``processor_config.json``),
  loaded back through the same ``from_pretrained`` path as they are. Random weights exercise the plumbing, not
  tracking quality (see the README's "Video regions").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def square_box(i: int, n: int, size: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` (x2 / y2 exclusive) of the square in frame ``i`` of ``n``."""
    h, w = size
    x1 = round((w - side) * i / max(n - 1, 1))
    y1 = (h - side) // 2
    return x1, y1, x1 + side, y1 + side


def moving_square(n: int = 12, size: tuple[int, int] = (64, 96), side: int = 20) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` frames ``H×W×3`` uint8 and the square's ``H×W`` bool mask in each."""
    frames, masks = [], []
    h, w = size
    for i in range(n):
        frame = np.full((h, w, 3), 30, dtype=np.uint8)
        frame[..., 2] = (i * 8) % 256
        x1, y1, x2, y2 = square_box(i, n, size, side)
        mask = np.zeros((h, w), dtype=bool)
        mask[y1:y2, x1:x2] = True
        frame[mask] = 255
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264",
                gop: int | None = None) -> Path:
    """Encode ``H×W×3`` uint8 frames (even sizes for yuv420p) to ``path`` with PyAV."""
    import av

    out = Path(path)
    h, w = frames[0].shape[:2]
    with av.open(str(out), "w") as container:
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def build_sam2_video_checkpoint(directory: str | Path, *, image_size: int = 64, seed: int = 0) -> Path:
    """Write a random SAM 2 video checkpoint (Hiera backbone, memory attention / encoder) to
    ``directory``; about 4 MB. Sizes keep transformers' constraints: the hidden size is a multiple
    of the 64-channel memory width, windows fit every stage."""
    import torch
    from transformers import (Sam2HieraDetConfig, Sam2ImageProcessor, Sam2VideoConfig, Sam2VideoMaskDecoderConfig,
                              Sam2VideoModel, Sam2VideoProcessor, Sam2VideoPromptEncoderConfig,
                              Sam2VideoVideoProcessor, Sam2VisionConfig)

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    s = image_size
    backbone = Sam2HieraDetConfig(hidden_size=8, num_attention_heads=1, image_size=[s, s], patch_kernel_size=[7, 7],
                                  patch_stride=[4, 4], patch_padding=[3, 3], blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
                                  window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
                                  window_positional_embedding_background_size=[2, 2])
    feats = [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]]
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=feats, fpn_hidden_size=128)
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=128, image_size=s, patch_size=16,
                                                           mask_input_channels=4),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=128, mlp_dim=32, num_hidden_layers=1,
                                                       num_attention_heads=2, iou_head_hidden_dim=16),
        image_size=s, num_maskmem=3, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32, memory_attention_rope_feat_sizes=feats[-1],
        memory_encoder_hidden_size=128, memory_encoder_output_channels=64, mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=32)
    torch.manual_seed(seed)
    Sam2VideoModel(config).eval().save_pretrained(str(out))  # config.json + model.safetensors
    # The released repositories (facebook/sam2.1-hiera-*) keep the three processor files apart:
    # preprocessor_config.json (images), video_preprocessor_config.json and a small
    # processor_config.json. Sam2VideoProcessor.from_pretrained reads them back together.
    Sam2ImageProcessor(size={"height": s, "width": s}).save_pretrained(str(out))
    Sam2VideoVideoProcessor(size={"height": s, "width": s}).save_pretrained(str(out))
    (out / "processor_config.json").write_text(json.dumps(
        {"point_pad_value": -10, "processor_class": Sam2VideoProcessor.__name__, "target_size": s}, indent=2))
    return out


__all__ = ["square_box", "moving_square", "write_video", "build_sam2_video_checkpoint"]
