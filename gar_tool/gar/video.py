"""GAR's video path on :class:`~gar_tool.gar.modeling.GARModel`: frames as tiles, per-frame replays.

:class:`VideoEngine` runs batches of :class:`~gar_tool.gar.video_protocol.GARVideoRequest`:

1. each frame becomes one tile (:func:`~gar_tool.gar.processing.video.tile_frame`), cached per
   frame content;
2. the vision tower sees each frame with *its own* binary mask (the union of the objects present
   on it) through :meth:`GARModel.encode_images` — features are cached per (frame, mask), so a
   new question about the same clip and tracks, or another object on the same frames where it is
   absent, reuses them; all uncached frames of a batch go through the tower together;
3. every (object, frame) replay is cut from that frame's own ``S×S`` feature map at that frame's
   box, all replays of the batch in one :meth:`GARModel.roi_features` call (``thumbnail=False``,
   grid ``(1, 1)``, the checkpoint's RoI scaling);
4. :meth:`GARModel.build_inputs_embeds` scatters the frame features and splices the replays in;
   the batch is left-padded and decoded by :func:`gar_tool.gar.generation.decode`;
5. a request asked alone keeps the KV cache of its prompt's context (frames and replays, cached per
   frames, masks, replays and context tokens), so a follow-up question about the same clip and
   tracks prefills only its own tokens; a batch of several clip requests is prefilled in full.

The processing choices (frame count, prompt text, several objects) are documented in
:mod:`gar_tool.gar.processing.video`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from gar_tool.cache import LRUCache, content_key
from gar_tool.gar.engine import CacheConfig, _left_pad
from gar_tool.gar.generation import DecodeOptions, DecodeResult, decode, positions_from_mask
from gar_tool.gar.processing import GARProcessor
from gar_tool.gar.processing.video import GARVideoInputs, tile_frame, video_inputs
from gar_tool.gar.video_protocol import GARVideoRequest


@dataclass
class _Prepared:
    inputs: GARVideoInputs
    vision_keys: list[str]  # per frame: (frame pixels, frame binary mask)


class VideoEngine:
    """Batched clip inference with frame-tile and frame-feature caches (not thread-safe by itself;
    ``GAR`` serialises calls)."""

    def __init__(self, model: Any, processor: GARProcessor, cache: CacheConfig | None = None,
                 vision_batch: int = 32) -> None:
        self.model = model
        self.processor = processor
        self.config = cache if cache is not None else CacheConfig()
        self.vision_batch = vision_batch
        self.tiles = LRUCache(self.config.tiles_bytes, self.config.max_items)
        self.vision = LRUCache(self.config.vision_bytes, self.config.max_items)
        self.contexts = LRUCache(self.config.context_bytes, self.config.max_items)

    def clear(self) -> None:
        for c in (self.tiles, self.vision, self.contexts):
            c.clear()

    def prepare(self, req: GARVideoRequest) -> _Prepared:
        keys, tiles = [], []
        for frame in req.clip.frames:
            key = content_key(np.asarray(frame), "frame")
            tile = self.tiles.get(key)
            if tile is None:
                tile = tile_frame(self.processor, frame)
                self.tiles.put(key, tile)
            keys.append(key)
            tiles.append(tile)
        inp = video_inputs(self.processor, req.clip.frames, req.tracks, req.question, req.compat,
                           req.instruction, frame_tiles=tiles)
        background = self.processor.vocab.prompt_slots
        vision_keys = [content_key(k, inp.label_tiles[f] != background) for f, k in enumerate(keys)]
        return _Prepared(inp, vision_keys)

    @torch.no_grad()
    def frame_features(self, preps: Sequence[_Prepared]) -> list[torch.Tensor]:
        """Per request ``(F, S², H)`` features; the distinct uncached frames in one tower batch."""
        found: dict[str, torch.Tensor] = {}
        todo: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for p in preps:
            pixels = None
            for f, key in enumerate(p.vision_keys):
                if key in found or key in todo:
                    continue
                hit = self.vision.get(key)
                if hit is not None:
                    found[key] = hit
                    continue
                pixels = p.inputs.pixel_values if pixels is None else pixels
                todo[key] = (pixels[f], p.inputs.label_tiles[f])
        if todo:
            keys = list(todo)
            pix = torch.stack([todo[k][0] for k in keys])
            lab = torch.stack([todo[k][1] for k in keys])
            vb = self.vision_batch
            feats = torch.cat([self.model.encode_images(pix[i:i + vb], lab[i:i + vb])
                               for i in range(0, len(keys), vb)])
            for key, feat in zip(keys, feats):
                found[key] = feat
                self.vision.put(key, feat)
        return [torch.stack([found[k] for k in p.vision_keys]) for p in preps]

    @torch.no_grad()
    def embeds(self, preps: Sequence[_Prepared], feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per request ``(L, H)`` LLM input embeddings (frame features scattered, replays spliced)."""
        m = self.model
        frame_maps: list[torch.Tensor] = []
        boxes, sample, offset = [], [], 0
        for p, f in zip(preps, feats):
            frame_maps.extend(f[i:i + 1] for i in range(f.shape[0]))  # one (1, S², H) tile per frame
            boxes.append(p.inputs.replay_boxes)
            sample.append(p.inputs.replay_frames + offset)
            offset += f.shape[0]
        replay = m.roi_features(frame_maps, [(1, 1)] * len(frame_maps), torch.cat(boxes),
                                torch.cat(sample).to(m.device), thumbnail=False)
        out, start = [], 0
        for p, f in zip(preps, feats):
            r = len(p.inputs.replay_token_ids)
            ids = p.inputs.input_ids.to(m.device).unsqueeze(0)
            emb = m.build_inputs_embeds(ids, f, replay[start:start + r],
                                        torch.zeros(r, dtype=torch.long, device=m.device),
                                        p.inputs.replay_token_ids.to(m.device))
            out.append(emb[0])
            start += r
        return out

    @torch.no_grad()
    def generate(self, requests: Sequence[GARVideoRequest], opts: DecodeOptions, stop_ids: set[int],
                 keep_logits: bool = False) -> tuple[DecodeResult, list[int]]:
        """Decode every request → the decode result and each prompt's length in tokens."""
        preps = [self.prepare(r) for r in requests]
        lengths = [len(p.inputs.input_ids) for p in preps]
        if len(preps) == 1 and self.config.context_bytes > 0:
            return self._generate_one(preps[0], opts, stop_ids, keep_logits), lengths
        feats = self.frame_features(preps)
        embeds = self.embeds(preps, feats)
        x, mask = _left_pad(embeds, self.model.device)
        res = decode(self.model, x, mask, stop_ids, self.processor.vocab.pad_id, opts, keep_logits)
        return res, lengths

    def _generate_one(self, prep: _Prepared, opts: DecodeOptions, stop_ids: set[int],
                      keep_logits: bool) -> DecodeResult:
        """One request with the prompt's *context* — everything up to its last image / crop
        token: the frame features and the replays — prefilled once and its KV cache kept (per
        frames, masks, replays and context tokens); a follow-up question about the same clip and
        tracks then prefills only its own tokens."""
        from transformers import DynamicCache

        m = self.model
        inp = prep.inputs
        ids = inp.input_ids
        context_ids = torch.cat([torch.tensor([self.processor.vocab.image_token_id]), inp.replay_token_ids])
        c = int(torch.isin(ids, context_ids).nonzero().max()) + 1
        key = content_key(*prep.vision_keys, repr(m.settings), inp.replay_token_ids, inp.replay_frames,
                          inp.replay_boxes, ids[:c])
        kv = self.contexts.get(key)
        if kv is None:
            [feats] = self.frame_features([prep])
            [emb] = self.embeds([prep], [feats])
            ones = torch.ones((1, c), dtype=torch.long, device=m.device)
            _, past = m.language_model(emb[:c].unsqueeze(0), ones, positions_from_mask(ones))
            kv = [(layer.keys, layer.values) for layer in past.layers]
            self.contexts.put(key, kv)
            suffix = emb[c:]
        else:
            suffix = m.mllm.get_input_embeddings()(ids[c:].to(m.device))
        cache = DynamicCache()
        for li, (k, v) in enumerate(kv):  # the stored tensors are not modified: decoding appends copies
            cache.update(k, v, li)
        n = len(ids)
        mask = torch.ones((1, n), dtype=torch.long, device=m.device)
        pos = torch.arange(c, n, device=m.device).unsqueeze(0)
        return decode(m, suffix.unsqueeze(0), mask, stop_ids, self.processor.vocab.pad_id, opts, keep_logits,
                      cache=cache, position_ids=pos)


__all__ = ["VideoEngine"]
