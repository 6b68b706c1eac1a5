"""GAR on transformers' PerceptionLM: mask patch embedding + RoI-aligned feature replay.

``GARModel`` wraps a stock ``PerceptionLMForConditionalGeneration`` (``self.mllm``) and adds:

* the **mask patch embedding**: a bias-free conv (kernel = stride = the ViT patch size) over the
  binary region mask (``label != prompt_slots``), added to the ViT patch embeddings right after
  ``patch_embed`` (before CLS and position embeddings), for every tile including the thumbnail;
* **RoI-aligned feature replay**: the projected features of the non-thumbnail tiles are stitched
  into one map per image and each region's box is cut out of it with ``torchvision.ops.roi_align``
  (16×16 output) — one batched call for all regions of all samples — and written over the region's
  256 crop-token embeddings.

One method, :meth:`GARModel.build_inputs_embeds`, produces the LLM input used by both the plain
forward (:meth:`prefill`) and generation (``gar_tool.gar.generation``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GARSettings:
    """Model-side constants, all derived from the checkpoint's configs.

    Attributes:
        prompt_slots: ``prompt_numbers``; label value of background.
        image_token_id: ``<|image|>`` id.
        tokens_side: features per tile side (16).
        feature_stride: input pixels per feature cell (28 = patch 14 × pooling 2).
        roi_double_scale: reproduce the released model's RoI box that is scaled to feature units
            *and* by ``1/feature_stride`` again inside ``roi_align`` (quirk Q1; GAR-1B/8B were
            trained this way). ``False`` applies the scale once (the evident intent).
    """

    prompt_slots: int
    image_token_id: int
    tokens_side: int
    feature_stride: int
    roi_double_scale: bool = True


class GARModel(nn.Module):
    """GAR = PerceptionLM (``mllm``) + ``mask_patch_embedding`` (``Conv2d(3, C_vision, k, k)``)."""

    def __init__(self, mllm: nn.Module, mask_patch_embedding: nn.Conv2d, settings: GARSettings) -> None:
        super().__init__()
        self.mllm = mllm
        self.mask_patch_embedding = mask_patch_embedding
        self.settings = settings
        self._mask_embeds: torch.Tensor | None = None
        timm_model = mllm.model.vision_tower.timm_model
        timm_model.patch_embed.register_forward_hook(self._add_mask_embeds)

    # ------------------------------------------------------------------ vision
    def _add_mask_embeds(self, module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        if self._mask_embeds is None:
            return None
        if out.shape != self._mask_embeds.shape:
            raise RuntimeError(f"mask embeddings {tuple(self._mask_embeds.shape)} do not match the "
                               f"patch embeddings {tuple(out.shape)}")
        return out + self._mask_embeds

    @contextlib.contextmanager
    def _with_mask_embeds(self, mask_embeds: torch.Tensor) -> Iterator[None]:
        self._mask_embeds = mask_embeds
        try:
            yield
        finally:
            self._mask_embeds = None

    @property
    def dtype(self) -> torch.dtype:
        return self.mask_patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.mask_patch_embedding.weight.device

    def mask_embeds(self, label_tiles: torch.Tensor) -> torch.Tensor:
        """``(N, tile, tile)`` uint8 label tiles → ``(N, P, C_v)`` mask embeddings (``P`` patches,
        row-major). Only the binary "inside any prompt" mask reaches the model (the prompt
        numbers themselves are discarded, as in the original)."""
        binary = (label_tiles != self.settings.prompt_slots).to(self.dtype)
        x = binary.unsqueeze(1).expand(-1, self.mask_patch_embedding.in_channels, -1, -1)
        return self.mask_patch_embedding(x).flatten(2).transpose(1, 2)

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor, label_tiles: torch.Tensor) -> torch.Tensor:
        """Tiles → projected image features.

        Args:
            pixel_values: ``(N, 3, tile, tile)`` normalised tiles (any float dtype).
            label_tiles: ``(N, tile, tile)`` uint8 label tiles of the same tiles.
        Returns:
            ``(N, tokens_side², H_text)`` features in the model dtype (thumbnail rows included).
        """
        pixel_values = pixel_values.to(self.device, self.dtype)
        label_tiles = label_tiles.to(self.device)
        with self._with_mask_embeds(self.mask_embeds(label_tiles)):
            out = self.mllm.model.get_image_features(pixel_values=pixel_values.unsqueeze(0))
        return out.pooler_output

    # ------------------------------------------------------------------ replay
    @torch.no_grad()
    def roi_features(self, tile_features: Sequence[torch.Tensor], grids: Sequence[tuple[int, int]],
                     boxes: torch.Tensor, sample_index: torch.Tensor) -> torch.Tensor:
        """RoI-aligned features of all regions of all samples in one ``roi_align`` call.

        Args:
            tile_features: per sample ``(T_b, S², H)`` features, thumbnail first (it is skipped).
            grids: per sample ``(ncw, nch)``.
            boxes: ``(R, 4)`` normalised ``(x1, y1, x2, y2)`` (max inclusive) per region.
            sample_index: ``(R,)`` int64 sample of each region.
        Returns:
            ``(R, S², H)`` float32 features, rows row-major over the ``S × S`` RoI bins.
        """
        from torchvision.ops import roi_align

        s = self.settings.tokens_side
        maps = []
        for feats, (ncw, nch) in zip(tile_features, grids):
            hdim = feats.shape[-1]
            # Tiles (row r, col c) of S×S features → one raster-order (H·W, C) matrix (row copies),
            # then a single 2-D transpose to (C, H, W): ~4× faster than one 5-D permute on CPU.
            raster = feats[1:].reshape(nch, ncw, s, s, hdim).permute(0, 2, 1, 3, 4).reshape(-1, hdim)
            maps.append(raster.float().t().contiguous().view(hdim, nch * s, ncw * s))
        max_h = max(m.shape[1] for m in maps)
        max_w = max(m.shape[2] for m in maps)
        # Edge replication keeps roi_align's border clamping exact for maps smaller than the batch.
        stacked = torch.stack([F.pad(m.unsqueeze(0), (0, max_w - m.shape[2], 0, max_h - m.shape[1]),
                                     mode="replicate")[0] if m.shape[1:] != (max_h, max_w) else m
                               for m in maps])
        fh = torch.tensor([m.shape[1] for m in maps], dtype=torch.float64)[sample_index.cpu()]
        fw = torch.tensor([m.shape[2] for m in maps], dtype=torch.float64)[sample_index.cpu()]
        b = boxes.to(torch.float64)
        rois = torch.stack([sample_index.to(torch.float64), b[:, 0] * fw, b[:, 1] * fh,
                            b[:, 2] * fw, b[:, 3] * fh], dim=1).to(torch.float32)
        scale = 1.0 / self.settings.feature_stride if self.settings.roi_double_scale else 1.0
        out = roi_align(stacked, rois.to(stacked.device), output_size=(s, s), spatial_scale=scale,
                        sampling_ratio=2, aligned=True)
        return out.permute(0, 2, 3, 1).reshape(out.shape[0], s * s, -1)

    # ------------------------------------------------------------------ LLM input
    @torch.no_grad()
    def build_inputs_embeds(self, input_ids: torch.Tensor, image_features: torch.Tensor,
                            replay: torch.Tensor, replay_sample: torch.Tensor,
                            replay_token_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings with image features scattered in and region replays spliced over.

        Args:
            input_ids: ``(B, L)`` int64 (padding allowed; pad ids are never image/crop ids).
            image_features: ``(ΣT, S², H)`` features of all samples' tiles in batch order.
            replay: ``(R, S², H)`` RoI features; ``replay_sample`` / ``replay_token_ids``: ``(R,)``
                the sample and crop token each replay overwrites.
        Returns:
            ``(B, L, H)`` embeddings in the model dtype.
        """
        emb = self.mllm.get_input_embeddings()(input_ids)
        image_mask = (input_ids == self.settings.image_token_id).unsqueeze(-1)
        n_img = int(image_mask.sum())
        if n_img * emb.shape[-1] != image_features.numel():
            raise ValueError(f"{n_img} image tokens but {image_features.shape[:-1].numel()} image features")
        emb = emb.masked_scatter(image_mask, image_features.to(emb.dtype))
        if replay.shape[0]:
            rows = replay.shape[1]
            hit = input_ids[replay_sample] == replay_token_ids.unsqueeze(1)  # (R, L)
            counts = hit.sum(1)
            if not bool((counts == rows).all()):
                raise ValueError(f"each replayed crop token must occur {rows} times; got {counts.tolist()}")
            positions = hit.nonzero()[:, 1].view(-1, rows)  # (R, rows), ascending per region
            emb = emb.index_put((replay_sample.unsqueeze(1).expand_as(positions), positions),
                                replay.to(emb.dtype))
        return emb

    @torch.no_grad()
    def language_model(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                       position_ids: torch.Tensor, past_key_values=None, logits_to_keep: int = 1):
        """One LLM pass → ``(logits (B, logits_to_keep, V) float32, past_key_values)``.

        ``attention_mask`` ``(B, P + S)`` (1 = real token, any padding pattern) is turned into an
        explicit ``(B, 1, S, P + S)`` boolean mask: causal within the new tokens, padding masked.
        Passing it explicitly also keeps transformers from dropping an all-ones mask, which on CPU
        sends batched single-token decoding to a several-times slower SDPA kernel.
        """
        q_len, kv_len = inputs_embeds.shape[1], attention_mask.shape[1]
        cols = torch.arange(kv_len, device=attention_mask.device)
        rows = torch.arange(kv_len - q_len, kv_len, device=attention_mask.device)
        causal = cols[None, :] <= rows[:, None]  # (S, P + S)
        mask4d = causal[None, None] & attention_mask[:, None, None, :].bool()
        # Padding queries see only themselves: no all-masked row (softmax over nothing gives NaN,
        # which would reach the real tokens through the padding rows' keys and values).
        mask4d = mask4d | (cols[None, :] == rows[:, None])[None, None]
        out = self.mllm.model.language_model(inputs_embeds=inputs_embeds, attention_mask=mask4d,
                                             position_ids=position_ids, past_key_values=past_key_values,
                                             use_cache=True, return_dict=True)
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        return self.mllm.lm_head(hidden).float(), out.past_key_values


__all__ = ["GARModel", "GARSettings"]
