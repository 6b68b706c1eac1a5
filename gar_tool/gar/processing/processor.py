"""GARProcessor: image + regions + question → model inputs, exactly as GAR builds them.

Pure preprocessing (no model): the prompt text and its token ids, the thumbnail + tiles, the
visual-prompt label map tiled the same way, and the normalised RoI boxes of the replayed regions.
All geometry comes from ``preprocessor_config.json`` / ``processor_config.json`` and all token ids
from the tokenizer and ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gar_tool.errors import ModelError, PromptError
from gar_tool.regions.region import Regions
from gar_tool.gar.processing.prompts import Compat, PromptPlan, check_mode, plan_describe, plan_relate, render_user_text
from gar_tool.gar.processing.tiling import PIL_NEAREST, normalize_u8, select_grid, thumb_and_tiles
from gar_tool.gar.processing.vocab import GARVocab


@dataclass(frozen=True)
class Geometry:
    """Tiling and feature geometry (pixels unless stated).

    ``tokens_side`` = features per tile side after patching and pooling (448 // 14 // 2 = 16);
    ``feature_stride`` = input pixels per feature cell (14 · 2 = 28).
    """

    tile_size: int
    max_num_tiles: int
    resample: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rescale_factor: float
    patch_size: int
    pooling_ratio: int

    @property
    def tokens_side(self) -> int:
        return self.tile_size // self.patch_size // self.pooling_ratio

    @property
    def tokens_per_tile(self) -> int:
        return self.tokens_side ** 2

    @property
    def feature_stride(self) -> int:
        return self.patch_size * self.pooling_ratio

    @classmethod
    def from_files(cls, preprocessor: dict, processor: dict) -> "Geometry":
        if preprocessor.get("vision_input_type", "thumb+tile") != "thumb+tile":
            raise ModelError(f"unsupported vision_input_type {preprocessor.get('vision_input_type')!r} "
                             "(GAR uses 'thumb+tile')")
        try:
            return cls(
                tile_size=int(preprocessor["tile_size"]),
                max_num_tiles=int(preprocessor["max_num_tiles"]),
                resample=int(preprocessor.get("resample", 3)),
                mean=tuple(float(v) for v in preprocessor["image_mean"]),
                std=tuple(float(v) for v in preprocessor["image_std"]),
                rescale_factor=float(preprocessor.get("rescale_factor", 1 / 255)),
                patch_size=int(processor["patch_size"]),
                pooling_ratio=int(processor["pooling_ratio"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"processor config lacks a field: {exc}") from None


@dataclass
class GARInputs:
    """Model inputs of one (image, regions, question) sample.

    Attributes:
        input_ids: ``(L,)`` int64 token ids (image placeholders and crop-token runs included).
        pixels_u8: ``(T, 3, tile, tile)`` uint8 thumbnail + tiles (``pixel_values`` normalises them).
        label_tiles: ``(T, tile, tile)`` uint8 visual-prompt label map tiled like the pixels
            (prompt number inside a region, ``prompt_slots`` = background).
        grid: ``(ncw, nch)`` tiles along width and height (``T = 1 + ncw·nch``).
        replay_token_ids: ``(R,)`` int64 crop token whose 256 positions receive region ``r``'s
            RoI features, in the model's ``crop_tokens_ids`` order.
        replay_boxes: ``(R, 4)`` float64 ``(x1/W, y1/H, x2/W, y2/H)`` with the max *inclusive*
            (a full-image box ends at ``(W-1)/W``), the box each replay is cut from.
        prompt_text: the templated prompt before image-token expansion (for inspection).
        image_size: ``(height, width)`` of the input image.
    """

    input_ids: torch.Tensor
    pixels_u8: torch.Tensor
    label_tiles: torch.Tensor
    grid: tuple[int, int]
    replay_token_ids: torch.Tensor
    replay_boxes: torch.Tensor
    prompt_text: str
    image_size: tuple[int, int]
    geometry: Geometry

    @property
    def pixel_values(self) -> torch.Tensor:
        """``(T, 3, tile, tile)`` float32 normalised thumbnail + tiles."""
        g = self.geometry
        return normalize_u8(self.pixels_u8, list(g.mean), list(g.std), g.rescale_factor)

    @property
    def num_tiles(self) -> int:
        return int(self.pixels_u8.shape[0])


def normalized_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """``(x_min/W, y_min/H, x_max/W, y_max/H)`` of a bool mask, max inclusive (GAR's RoI box)."""
    h, w = mask.shape
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return xs[0] / w, ys[0] / h, xs[-1] / w, ys[-1] / h


class GARProcessor:
    """Builds :class:`GARInputs`. ``compat`` selects original-inference or training semantics."""

    def __init__(self, tokenizer: Any, vocab: GARVocab, geometry: Geometry) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError("tokenizer has no chat template (chat_template.jinja missing?)")
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.geometry = geometry

    @classmethod
    def from_pretrained(cls, path: str | Path, gar_config: dict | None = None) -> "GARProcessor":
        """Load from a local checkpoint directory (tokenizer, processor configs, ``config.json``)."""
        from transformers import PreTrainedTokenizerFast

        p = Path(path)
        cfg = gar_config if gar_config is not None else _read_json(p / "config.json")
        tok = PreTrainedTokenizerFast.from_pretrained(str(p))
        geo = Geometry.from_files(_read_json(p / "preprocessor_config.json"),
                                  _read_json(p / "processor_config.json"))
        return cls(tok, GARVocab.resolve(tok, cfg), geo)

    # ------------------------------------------------------------------ pieces
    def tile_image(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """RGB image → ``(T, 3, tile, tile)`` uint8 thumbnail + tiles, and the grid ``(ncw, nch)``."""
        g = self.geometry
        arr = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)
        grid = select_grid(image.width, image.height, g.tile_size, g.max_num_tiles)
        return thumb_and_tiles(arr.contiguous(), grid, g.tile_size, g.resample), grid

    def label_map(self, regions: Regions, plan: PromptPlan) -> np.ndarray:
        """``(H, W)`` uint8 label map: prompt number of the first region (plan order) covering a
        pixel, ``prompt_slots`` (background) elsewhere and for prompts beyond the slots."""
        h, w = regions.size  # type: ignore[misc]
        unset = np.int16(-1)
        labels = np.full((h, w), unset, dtype=np.int16)
        for slot in plan.slots:
            sel = regions[slot.region].mask & (labels == unset)
            labels[sel] = self.vocab.label_value(slot.prompt)
        labels[labels == unset] = self.vocab.prompt_slots
        return labels.astype(np.uint8)

    def tile_labels(self, labels: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
        g = self.geometry
        t = torch.from_numpy(labels).unsqueeze(0)
        return thumb_and_tiles(t, grid, g.tile_size, PIL_NEAREST)[:, 0]

    def encode_text(self, plan: PromptPlan, n_tiles: int, compat: Compat,
                    runs: dict[int, str] | None = None) -> tuple[torch.Tensor, str]:
        """Token ids and templated text of a plan over ``n_tiles`` image tiles. ``runs[k]`` is the
        crop-token text of ``<Prompt{k}>`` (default: its crop token once per replayed feature;
        video prompts pass one run per frame)."""
        v, g = self.vocab, self.geometry
        if runs is None:
            runs = {s.prompt: v.crop_token(s.prompt) * g.tokens_per_tile for s in plan.slots}
        user = render_user_text(plan, runs, compat)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]}]
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if prompt.count(v.image_token) != 1:
            raise ModelError(f"chat template produced {prompt.count(v.image_token)} image placeholders, expected 1")
        expanded = prompt.replace(v.image_token, v.image_token * (g.tokens_per_tile * n_tiles))
        # The original inference tokenizes the templated text *with* special tokens, so the
        # tokenizer's BOS is prepended to the template's own BOS (two BOS); training had one.
        ids = self.tokenizer(expanded, add_special_tokens=(compat == "original"))["input_ids"]
        return torch.tensor(ids, dtype=torch.long), prompt

    # ------------------------------------------------------------------ main entry
    def plan(self, regions: Regions, question: str | None, compat: Compat,
             instruction: str | None = None) -> PromptPlan:
        """Describe plan when ``question`` is None (exactly one region), else a relate plan."""
        check_mode(compat)
        if question is None:
            if len(regions) != 1:
                raise PromptError(f"describe takes exactly one region, got {len(regions)}")
            if instruction is not None:
                self.vocab.check_text(instruction, "instruction")
            return plan_describe(compat, instruction)
        self.vocab.check_text(question)
        return plan_relate(question, len(regions), self.vocab.prompt_slots, compat)

    def __call__(self, image: Image.Image, regions: Regions, question: str | None = None,
                 compat: Compat = "default", instruction: str | None = None,
                 tiles: tuple[torch.Tensor, tuple[int, int]] | None = None) -> GARInputs:
        """Build the inputs. ``tiles`` may pass a cached :meth:`tile_image` result for ``image``."""
        if regions.size != (image.height, image.width):
            raise PromptError(f"regions are for a {regions.size} (HxW) image, the image is "
                              f"{(image.height, image.width)}")
        plan = self.plan(regions, question, compat, instruction)
        pixels_u8, grid = tiles if tiles is not None else self.tile_image(image)
        label_tiles = self.tile_labels(self.label_map(regions, plan), grid)
        input_ids, prompt = self.encode_text(plan, pixels_u8.shape[0], compat)
        # Replays in the model's crop_tokens_ids order, i.e. by prompt number.
        replayed = sorted((s for s in plan.slots if s.replayed), key=lambda s: s.prompt)
        # Original multi-region inference cuts every replay from the *last* mask's box (quirk Q2).
        last_box = compat == "original" and not plan.single_region_layout
        replay_ids = [self.vocab.crop_token_ids[s.prompt] for s in replayed]
        boxes = [normalized_box(regions[len(regions) - 1 if last_box else s.region].mask)
                 for s in replayed]
        return GARInputs(
            input_ids=input_ids,
            pixels_u8=pixels_u8,
            label_tiles=label_tiles,
            grid=grid,
            replay_token_ids=torch.tensor(replay_ids, dtype=torch.long),
            replay_boxes=torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            prompt_text=prompt,
            image_size=(image.height, image.width),
            geometry=self.geometry,
        )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"checkpoint file missing: {path}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None


__all__ = ["GARProcessor", "GARInputs", "Geometry", "normalized_box"]
