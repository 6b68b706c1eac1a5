"""Thumbnail + tile geometry of PerceptionLM's "thumb+tile" vision input, as the original GAR runs it.

Pure functions on torch tensors (CPU). Images are ``(C, H, W)`` ``uint8`` tensors; sizes are given
as ``(height, width)`` unless a name says otherwise. The grid is ``(ncw, nch)`` = tiles along the
width, tiles along the height.

Resampling follows torchvision's v1 ``functional.resize`` on uint8 tensors, which the original
image processor calls: bicubic = ``interpolate(float32, "bicubic", align_corners=False,
antialias=True)``, clamped to [0, 255] and rounded half-to-even; nearest = the legacy ``"nearest"``
mode (``src = floor(dst * in / out)``); a resize to the same size returns the input unchanged.
transformers-5's stock PerceptionLM processor (torchvision v2, NEAREST_EXACT) is *not* equivalent.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

#: PIL resample codes used in ``preprocessor_config.json``.
PIL_NEAREST, PIL_BILINEAR, PIL_BICUBIC = 0, 2, 3


@lru_cache(maxsize=64)
def candidate_grids(max_num_tiles: int) -> tuple[tuple[int, int], ...]:
    """All ``(ncw, nch)`` grids with at most ``max_num_tiles`` tiles, in the order that decides ties.

    For n = max..1, each factor pair (w, n // w) with w ascending is filed under the key w / h;
    keys keep their first-insertion order and pairs their insertion order; the result is flattened
    key by key. A later candidate wins ties in :func:`select_grid`.
    """
    if max_num_tiles < 1:
        raise ValueError(f"max_num_tiles must be >= 1, got {max_num_tiles}")
    groups: dict[float, list[tuple[int, int]]] = {}
    for n in range(max_num_tiles, 0, -1):
        for w in (d for d in range(1, n + 1) if n % d == 0):
            groups.setdefault(w / (n // w), []).append((w, n // w))
    return tuple(pair for pairs in groups.values() for pair in pairs)


def _fitted_size(width: int, height: int, canvas_w: int, canvas_h: int) -> tuple[float, float]:
    """Aspect-preserving size of the image scaled into a canvas (one side floored, as the original)."""
    s = width / height
    r = min(canvas_w / width, canvas_h / height)
    if s > 1.0:
        fw = r * width
        return fw, math.floor(fw / s)
    fh = r * height
    return math.floor(fh * s), fh


def select_grid(width: int, height: int, tile_size: int, max_num_tiles: int) -> tuple[int, int]:
    """Tile grid ``(ncw, nch)`` for an image of ``width × height`` pixels.

    Among the canvases (``ncw·tile × nch·tile``) that hold the image without downscaling, the one
    that lets it grow most wins (small images are upscaled to many tiles); ties go to the later
    candidate of :func:`candidate_grids`. When no canvas holds it, the closest supported aspect
    ratio is used (largest grid of that ratio).
    """
    s = width / height
    best: tuple[int, int] | None = None
    best_size = (0.0, 0.0)
    for ncw, nch in candidate_grids(max_num_tiles):
        cw, ch = ncw * tile_size, nch * tile_size
        if cw < width or ch < height:
            continue
        size = _fitted_size(width, height, cw, ch)
        if best is None or (s < 1.0 and size[0] >= best_size[0]) or (s >= 1.0 and size[1] >= best_size[1]):
            best, best_size = (ncw, nch), size
    if best is not None:
        return best
    ratios: dict[float, list[tuple[int, int]]] = {}
    for pair in candidate_grids(max_num_tiles):
        ratios.setdefault(pair[0] / pair[1], []).append(pair)
    if s >= 1.0:
        key = min((k for k in ratios if k <= s), key=lambda k: abs(k - s))
        return max(ratios[key], key=lambda p: p[0])
    key = min((k for k in ratios if k > s), key=lambda k: abs(1 / k - 1 / s))
    return max(ratios[key], key=lambda p: p[1])


def resize_u8(image: torch.Tensor, size: tuple[int, int], resample: int) -> torch.Tensor:
    """Resize a ``(C, H, W)`` uint8 tensor to ``size = (height, width)`` (torchvision v1 semantics)."""
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected a (C, H, W) uint8 tensor, got {tuple(image.shape)} {image.dtype}")
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    x = image.unsqueeze(0).to(torch.float32)
    if resample == PIL_NEAREST:
        out = F.interpolate(x, size=size, mode="nearest")
    elif resample in (PIL_BICUBIC, PIL_BILINEAR):
        mode = "bicubic" if resample == PIL_BICUBIC else "bilinear"
        out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
        out = out.clamp(0, 255) if mode == "bicubic" else out
    else:
        raise ValueError(f"unsupported resample code {resample} (expected 0 nearest, 2 bilinear, 3 bicubic)")
    return out.round().to(torch.uint8).squeeze(0)


def thumb_and_tiles(image: torch.Tensor, grid: tuple[int, int], tile_size: int,
                    resample: int) -> torch.Tensor:
    """``(C, H, W)`` uint8 → ``(1 + ncw·nch, C, tile, tile)`` uint8: thumbnail, then tiles row-major.

    The thumbnail is the whole image stretched to ``tile × tile``; the tiles come from the image
    stretched to ``(nch·tile, ncw·tile)`` (no padding, aspect ratio not preserved), top row left to
    right first.
    """
    ncw, nch = grid
    thumb = resize_u8(image, (tile_size, tile_size), resample)
    big = resize_u8(image, (nch * tile_size, ncw * tile_size), resample)
    c = big.shape[0]
    tiles = (big.reshape(c, nch, tile_size, ncw, tile_size)
             .permute(1, 3, 0, 2, 4)
             .reshape(nch * ncw, c, tile_size, tile_size))
    return torch.cat([thumb.unsqueeze(0), tiles], dim=0)


def normalize_u8(pixels: torch.Tensor, mean: float | list[float], std: float | list[float],
                 rescale_factor: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(..., C, H, W)`` uint8 → float: ``(u8 · rescale − mean) / std``, fused as the original does
    (``(u8 − mean/rescale) / (std/rescale)``; ``(u8 − 127.5) / 127.5`` for mean = std = 0.5)."""
    c = pixels.shape[-3]
    m = torch.tensor(mean, dtype=torch.float64).expand(c) / rescale_factor
    s = torch.tensor(std, dtype=torch.float64).expand(c) / rescale_factor
    shape = (c, 1, 1)
    out = (pixels.to(torch.float32) - m.to(torch.float32).view(shape)) / s.to(torch.float32).view(shape)
    return out.to(dtype)


__all__ = ["candidate_grids", "select_grid", "resize_u8", "thumb_and_tiles", "normalize_u8",
           "PIL_NEAREST", "PIL_BILINEAR", "PIL_BICUBIC"]
