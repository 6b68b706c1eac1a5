"""GAR on transformers' PerceptionLM: mask patch embedding + RoI-aligned feature replay.

``GARModel`` wraps a stock ``PerceptionLMForConditionalGeneration`` (``self.mllm``) and adds:

* the **mask patch embedding**: a bias-free conv (kernel = stride = the ViT patch size) over the
  binary region mask (``label != prompt_slots``), added to the ViT patch embeddings right after the
  patch projection (before CLS and position embeddings), for every tile including the thumbnail.
  The mask travels *with* the pixels: the vision tower is fed ``(N, 4, tile, tile)`` = RGB + binary
  mask, and :class:`MaskedPatchProjection` (which replaces timm's ``patch_embed.proj``) projects the
  first three channels with the ViT's own weights and the fourth with the mask conv. No hook and no
  side state, so the same module serves inference, training, gradient checkpointing and threads.
* **RoI-aligned feature replay**: the projected features of the non-thumbnail tiles are stitched
  into one map per image and each region's box is cut out of it with ``torchvision.ops.roi_align``
  (16×16 output) — one batched call for all regions of all samples — and written over the region's
  256 crop-token embeddings.

One method, :meth:`GARModel.build_inputs_embeds`, produces the LLM input used by both the
teacher-forced :meth:`GARModel.forward` (training, ``labels=`` → loss) and generation
(``gar_tool.gar.generation`` through :meth:`GARModel.language_model`). Nothing here disables
gradients: ``torch.no_grad`` is the inference engine's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

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


@dataclass
class GAROutput:
    """What :meth:`GARModel.forward` returns.

    Attributes:
        loss: mean next-token cross-entropy over the positions whose label is not ``-100``
            (``None`` without ``labels``); float32 scalar.
        logits: ``(B, L, V)`` float32 next-token logits at every position.
    """

    loss: torch.Tensor | None
    logits: torch.Tensor


class MaskedPatchProjection(nn.Conv2d):
    """The ViT patch projection (``patch_embed.proj``) taking the region mask as a 4th channel.

    ``forward(x)``: ``x`` is ``(N, 4, H, W)``: channels 0–2 the normalised RGB tile, channel 3 the
    binary region mask (1 inside any prompt, 0 elsewhere) in the same dtype. Returns
    ``proj(rgb) + mask_conv(mask replicated to 3 channels)``, ``(N, C_v, H/p, W/p)``: exactly the
    original's "patch embedding + mask embedding" (its patch embedding has no norm, checked at
    construction). The projection keeps the original conv's parameters (state-dict keys
    unchanged); the mask conv is :attr:`GARModel.mask_patch_embedding`, held here by reference only
    (not registered twice), so checkpoints keep the released key layout.
    """

    def __init__(self, proj: nn.Conv2d, mask_conv: nn.Conv2d) -> None:
        super().__init__(proj.in_channels, proj.out_channels, proj.kernel_size, proj.stride,  # type: ignore[arg-type]
                         proj.padding, proj.dilation, proj.groups, proj.bias is not None,  # type: ignore[arg-type]
                         proj.padding_mode, device="meta")
        self.weight = proj.weight
        self.bias = proj.bias
        self._mask_conv = (mask_conv,)  # a tuple: not a registered submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = self.in_channels
        if x.shape[1] != rgb + 1:
            raise ValueError(f"GAR's vision tower takes {rgb} image channels + 1 mask channel, got "
                             f"{x.shape[1]} channels")
        mask_conv = self._mask_conv[0]
        mask = x[:, rgb:].expand(-1, mask_conv.in_channels, -1, -1)
        return super().forward(x[:, :rgb]) + mask_conv(mask)


class GARModel(nn.Module):
    """GAR = PerceptionLM (``mllm``) + ``mask_patch_embedding`` (``Conv2d(3, C_vision, k, k)``).

    ``state_dict()`` keys are the released layout (``mllm.*`` and ``mask_patch_embedding.weight``).
    """

    #: the stock ``transformers.PerceptionLMForConditionalGeneration`` (typed ``Any``: its
    #: submodules are reached by attribute, which nn.Module's typing cannot follow).
    mllm: Any

    def __init__(self, mllm: nn.Module, mask_patch_embedding: nn.Conv2d, settings: GARSettings) -> None:
        super().__init__()
        self.mllm = mllm
        self.mask_patch_embedding = mask_patch_embedding
        self.settings = settings
        patch_embed = self.vision_model.patch_embed
        if not isinstance(getattr(patch_embed, "norm", nn.Identity()), nn.Identity):
            raise ValueError("GAR adds the mask embedding after the patch projection; this vision tower "
                             f"normalises its patch embeddings ({type(patch_embed.norm).__name__})")
        if not isinstance(patch_embed.proj, MaskedPatchProjection):
            patch_embed.proj = MaskedPatchProjection(patch_embed.proj, mask_patch_embedding)

    @property
    def vision_model(self) -> Any:
        """The timm vision transformer inside PerceptionLM's vision tower."""
        return self.mllm.model.vision_tower.timm_model

    @property
    def dtype(self) -> torch.dtype:
        return self.mask_patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.mask_patch_embedding.weight.device

    def tower_input(self, pixel_values: torch.Tensor, label_tiles: torch.Tensor) -> torch.Tensor:
        """``(N, 3, tile, tile)`` normalised tiles + ``(N, tile, tile)`` uint8 label tiles →
        ``(N, 4, tile, tile)`` vision-tower input in the model dtype (RGB + binary mask). Only the
        binary "inside any prompt" mask reaches the model (the prompt numbers are discarded, as in
        the original)."""
        pixel_values = pixel_values.to(self.device, self.dtype)
        binary = (label_tiles.to(self.device) != self.settings.prompt_slots).to(self.dtype)
        return torch.cat([pixel_values, binary.unsqueeze(1)], dim=1)

    def encode_images(self, pixel_values: torch.Tensor, label_tiles: torch.Tensor) -> torch.Tensor:
        """Tiles → projected image features.

        Args:
            pixel_values: ``(N, 3, tile, tile)`` normalised tiles (any float dtype).
            label_tiles: ``(N, tile, tile)`` uint8 label tiles of the same tiles.
        Returns:
            ``(N, tokens_side², H_text)`` features in the model dtype (thumbnail rows included).
        """
        x = self.tower_input(pixel_values, label_tiles)
        return self.mllm.model.get_image_features(pixel_values=x.unsqueeze(0)).pooler_output

    # ------------------------------------------------------------------ replay
    def roi_features(self, tile_features: Sequence[torch.Tensor], grids: Sequence[tuple[int, int]],
                     boxes: torch.Tensor, sample_index: torch.Tensor, thumbnail: bool = True) -> torch.Tensor:
        """RoI-aligned features of all regions of all samples in one ``roi_align`` call.

        Args:
            tile_features: per sample ``(T_b, S², H)`` features, thumbnail first (it is skipped).
            grids: per sample ``(ncw, nch)``.
            boxes: ``(R, 4)`` normalised ``(x1, y1, x2, y2)`` (max inclusive) per region.
            sample_index: ``(R,)`` int64 sample of each region.
            thumbnail: whether each sample's features start with a thumbnail row (skipped).
                ``False`` for video frames, each one ``(1, S², H)`` tile with grid ``(1, 1)``
                and no thumbnail, as the original's video branch replays them.
        Returns:
            ``(R, S², H)`` float32 features, rows row-major over the ``S × S`` RoI bins.
        """
        from torchvision.ops import roi_align

        s = self.settings.tokens_side
        first = 1 if thumbnail else 0
        maps = []
        for feats, (ncw, nch) in zip(tile_features, grids):
            hdim = feats.shape[-1]
            # Tiles (row r, col c) of S×S features → one raster-order (H·W, C) matrix (row copies),
            # then a single 2-D transpose to (C, H, W): ~4× faster than one 5-D permute on CPU.
            raster = feats[first:].reshape(nch, ncw, s, s, hdim).permute(0, 2, 1, 3, 4).reshape(-1, hdim)
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

    def language_model(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                       position_ids: torch.Tensor, cache: Any = None,
                       logits_to_keep: int = 1) -> tuple[torch.Tensor, Any]:
        """One incremental LLM pass → ``(logits (B, logits_to_keep, V) float32, cache)``.

        ``attention_mask`` ``(B, P + S)`` (1 = real token, any padding pattern) is turned into an
        explicit ``(B, 1, S, P + S)`` boolean mask: causal within the new tokens, padding masked
        (a first pass without padding is left plain causal, which SDPA runs faster).
        Passing it explicitly also keeps transformers from dropping an all-ones mask, which on CPU
        sends batched single-token decoding to a several-times slower SDPA kernel. ``cache`` is a
        transformers ``Cache`` holding the ``P`` earlier positions (``None``: a new one).
        """
        q_len, kv_len = inputs_embeds.shape[1], attention_mask.shape[1]
        if cache is None and q_len == kv_len and bool(attention_mask.all()):
            # Nothing cached, no padding: plain causal attention. The 2-D mask lets transformers
            # hand SDPA its causal flag instead of an (L, L) mask, whose kernel is several times
            # slower on CPU for long prompts (a 4.9k-token GAR prefill: ~3.7x per attention call).
            mask: torch.Tensor = attention_mask
        else:
            cols = torch.arange(kv_len, device=attention_mask.device)
            rows = torch.arange(kv_len - q_len, kv_len, device=attention_mask.device)
            causal = cols[None, :] <= rows[:, None]  # (S, P + S)
            mask = causal[None, None] & attention_mask[:, None, None, :].bool()
            # Padding queries see only themselves: no all-masked row (softmax over nothing gives
            # NaN, which would reach the real tokens through the padding rows' keys and values).
            mask = mask | (cols[None, :] == rows[:, None])[None, None]
        if cache is None:
            from transformers import DynamicCache

            cache = DynamicCache()
        out = self.mllm.model.language_model(inputs_embeds=inputs_embeds, attention_mask=mask,
                                             position_ids=position_ids, cache=cache,
                                             use_cache=True, return_dict=True)
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        return self.mllm.lm_head(hidden).float(), out.cache

    # ------------------------------------------------------------------ training forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                label_tiles: torch.Tensor, grids: Sequence[tuple[int, int]], replay_boxes: torch.Tensor,
                replay_sample: torch.Tensor, replay_token_ids: torch.Tensor,
                labels: torch.Tensor | None = None, labelled_logits_only: bool = False) -> GAROutput:
        """Teacher-forced pass over whole sequences (training, scoring), through the same splice
        as generation.

        Args:
            input_ids: ``(B, L)`` int64, padded on either side (pad ids are never image/crop ids).
            attention_mask: ``(B, L)`` 1 = real token, 0 = padding.
            pixel_values: ``(ΣT, 3, tile, tile)`` normalised tiles of all samples, batch order,
                each sample's thumbnail first.
            label_tiles: ``(ΣT, tile, tile)`` uint8 label tiles of the same tiles.
            grids: per sample ``(ncw, nch)``; sample ``b`` has ``1 + ncw·nch`` tiles.
            replay_boxes: ``(R, 4)`` normalised boxes, ``replay_sample`` ``(R,)`` int64 sample of
                each, ``replay_token_ids`` ``(R,)`` the crop token each replay overwrites.
            labels: ``(B, L)`` int64 target ids at each position, ``-100`` = no loss (the usual
                transformers convention: position ``t`` predicts ``labels[t + 1]``).
            labelled_logits_only: with ``labels``, run the LM head only on the ``N`` positions
                that have a target and return ``(N, V)`` logits (in batch-major order). GAR
                prompts hold thousands of image tokens and answers a few dozen, so this saves
                most of the head's time and memory in training.
        Returns:
            :class:`GAROutput` (float32 loss; ``(B, L, V)`` or ``(N, V)`` logits).
        """
        counts = [1 + ncw * nch for ncw, nch in grids]
        if sum(counts) != pixel_values.shape[0]:
            raise ValueError(f"grids {list(grids)} need {sum(counts)} tiles, got {pixel_values.shape[0]}")
        feats = self.encode_images(pixel_values, label_tiles)
        device = self.device
        if replay_boxes.shape[0]:
            replay = self.roi_features(feats.split(counts), grids, replay_boxes, replay_sample.to(device))
        else:
            replay = feats.new_zeros((0,) + tuple(feats.shape[1:]))
        input_ids = input_ids.to(device)
        attention_mask = attention_mask.to(device)
        emb = self.build_inputs_embeds(input_ids, feats, replay, replay_sample.to(device),
                                       replay_token_ids.to(device))
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.mllm.model.language_model(inputs_embeds=emb, attention_mask=attention_mask,
                                             position_ids=position_ids, use_cache=False, return_dict=True)
        hidden = out.last_hidden_state
        if labels is None:
            return GAROutput(None, self.mllm.lm_head(hidden).float())
        targets = labels[:, 1:].to(device)
        if labelled_logits_only:
            used = targets != -100
            logits = self.mllm.lm_head(hidden[:, :-1][used]).float()
            return GAROutput(F.cross_entropy(logits, targets[used]), logits)
        logits = self.mllm.lm_head(hidden).float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return GAROutput(loss, logits)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute activations in the backward pass (LLM layers and ViT blocks) to save memory."""
        self.mllm.model.language_model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=gradient_checkpointing_kwargs or {"use_reentrant": False})
        self.vision_model.set_grad_checkpointing(True)


__all__ = ["GARModel", "GARSettings", "GAROutput", "MaskedPatchProjection"]
