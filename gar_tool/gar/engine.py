"""Batched GAR inference with caches: the work behind ``GAR.describe`` / ``relate``.

A request's prompt splits into a **context** — everything up to the last image / crop token: the
system text, 256·T image features and the region replays — and a short **suffix**: the question
or instruction and the assistant header. Agents ask many questions about the same image and
regions, so the engine caches, each in a byte-bounded LRU:

* preprocessed tiles per image (key: pixel content);
* vision features per (image, binary region mask) — the mask embedding enters the vision tower,
  so features depend on the masks (key: image key + the label tiles the tower sees);
* the LLM KV cache of the context per (vision features, replays, context tokens).

A batch is run as: vision for the distinct (image, masks) pairs not cached (one batched tower
call) → RoI replays of every sample (one ``roi_align``) → a prefill of each distinct uncached
context (batch 1, cached) → one batched prefill of all suffixes on top of their contexts (contexts
right-aligned, gaps masked) → one batched decode. With ``CacheConfig.disabled()`` it runs the
original way instead: full prefill of every sample, nothing kept.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from gar_tool.cache import LRUCache, content_key
from gar_tool.cache import image_key as gar_image_key
from gar_tool.gar.generation import DecodeOptions, DecodeResult, decode, positions_from_mask
from gar_tool.gar.processing import GARInputs, GARProcessor
from gar_tool.gar.protocol import GARRequest

MiB = 1 << 20


@dataclass(frozen=True)
class CacheConfig:
    """Byte budgets of the three caches (0 disables one; ``split_context`` needs ``context_bytes``)."""

    tiles_bytes: int = 256 * MiB
    vision_bytes: int = 512 * MiB
    context_bytes: int = 2048 * MiB
    max_items: int = 256

    @classmethod
    def disabled(cls) -> "CacheConfig":
        return cls(0, 0, 0)


@dataclass
class _Prepared:
    inputs: GARInputs
    image_key: str
    vision_key: str
    context_len: int
    context_key: str = ""


class InferenceEngine:
    """Runs batches of :class:`~gar_tool.gar.protocol.GARRequest` through a GARModel with caching. Not thread-safe by itself
    (``GAR`` serialises calls)."""

    def __init__(self, model: Any, processor: GARProcessor, cache: CacheConfig | None = None,
                 vision_batch: int = 32) -> None:
        self.model = model
        self.processor = processor
        self.config = cache if cache is not None else CacheConfig()
        self.vision_batch = vision_batch
        self.tiles = LRUCache(self.config.tiles_bytes, self.config.max_items)
        self.vision = LRUCache(self.config.vision_bytes, self.config.max_items)
        self.contexts = LRUCache(self.config.context_bytes, self.config.max_items)
        #: seconds per phase (preprocess, vision, replay, context, prefill, decode) and decode_steps,
        #: accumulated over calls; reset with ``timings.clear()``.
        self.timings: dict[str, float] = {}
        self._context_ids = torch.tensor((processor.vocab.image_token_id,) + processor.vocab.crop_token_ids
                                         + _extra_crops(processor))

    @property
    def split_context(self) -> bool:
        return self.config.context_bytes > 0

    def clear(self) -> None:
        for c in (self.tiles, self.vision, self.contexts):
            c.clear()

    # ------------------------------------------------------------------ preprocessing
    def prepare(self, sample: GARRequest) -> _Prepared:
        pil = sample.image
        image_key = gar_image_key(pil)
        tiles = self.tiles.get(image_key)
        if tiles is None:
            tiles = self.processor.tile_image(pil)
            self.tiles.put(image_key, tiles)
        inp = self.processor(pil, sample.regions, sample.question, sample.compat, sample.instruction, tiles=tiles)
        binary = inp.label_tiles != self.processor.vocab.prompt_slots
        vision_key = content_key(image_key, binary)
        ids = inp.input_ids
        special = torch.isin(ids, self._context_ids)
        context_len = int(special.nonzero().max()) + 1
        prep = _Prepared(inp, image_key, vision_key, context_len)
        prep.context_key = content_key(vision_key, repr(self.model.settings), inp.replay_token_ids,
                                       inp.replay_boxes, ids[:context_len])
        return prep

    # ------------------------------------------------------------------ vision + replay
    @torch.no_grad()
    def vision_features(self, preps: Sequence[_Prepared]) -> list[torch.Tensor]:
        """Per sample ``(T, S², H)`` features; distinct uncached (image, masks) pairs in one batch."""
        found: dict[str, torch.Tensor] = {}
        todo: list[_Prepared] = []
        for p in preps:
            if p.vision_key in found or any(p.vision_key == q.vision_key for q in todo):
                continue
            hit = self.vision.get(p.vision_key)
            if hit is not None:
                found[p.vision_key] = hit
            else:
                todo.append(p)
        if todo:
            pix = torch.cat([p.inputs.pixel_values for p in todo])
            lab = torch.cat([p.inputs.label_tiles for p in todo])
            vb = self.vision_batch
            feats = torch.cat([self.model.encode_images(pix[k:k + vb], lab[k:k + vb])
                               for k in range(0, pix.shape[0], vb)])
            for p, f in zip(todo, feats.split([q.inputs.num_tiles for q in todo])):
                found[p.vision_key] = f
                self.vision.put(p.vision_key, f)
        return [found[p.vision_key] for p in preps]

    def _embeds(self, preps: Sequence[_Prepared], feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per sample ``(L_b, H)`` LLM input embeddings (image features and replays spliced in)."""
        m = self.model
        sample_idx = torch.cat([torch.full((len(p.inputs.replay_token_ids),), b, dtype=torch.long)
                                for b, p in enumerate(preps)])
        boxes = torch.cat([p.inputs.replay_boxes for p in preps])
        if len(sample_idx):
            replay = m.roi_features(feats, [p.inputs.grid for p in preps], boxes, sample_idx)
        else:
            replay = feats[0].new_zeros((0,) + tuple(feats[0].shape[1:]))
        out = []
        for b, p in enumerate(preps):
            sel = sample_idx == b
            ids = p.inputs.input_ids.to(m.device).unsqueeze(0)
            emb = m.build_inputs_embeds(ids, feats[b], replay[sel], torch.zeros(int(sel.sum()), dtype=torch.long,
                                        device=m.device), p.inputs.replay_token_ids.to(m.device))
            out.append(emb[0])
        return out

    # ------------------------------------------------------------------ prefill + decode
    @torch.no_grad()
    def generate(self, samples: Sequence[GARRequest], opts: DecodeOptions, stop_ids: set[int],
                 keep_logits: bool = False) -> tuple[DecodeResult, list[int]]:
        """Decode every request (each with its own ``compat``) → the decode result and the prompt
        length of each."""
        with self._timed("preprocess"):
            preps = [self.prepare(s) for s in samples]
        lengths = [len(p.inputs.input_ids) for p in preps]
        pad = self.processor.vocab.pad_id
        if not self.split_context:
            with self._timed("vision"):
                feats = self.vision_features(preps)
            with self._timed("replay"):
                embeds = self._embeds(preps, feats)
            e, mask = _left_pad(embeds, self.model.device)
            res = decode(self.model, e, mask, stop_ids, pad, opts, keep_logits, timings=self.timings)
            return res, lengths
        # Samples whose context KV is cached need neither vision features nor replays: only the
        # embeddings of their own suffix tokens.
        cached = {p.context_key: kv for p in preps if (kv := self.contexts.get(p.context_key)) is not None}
        todo = [p for p in preps if p.context_key not in cached]
        with self._timed("vision"):
            feats = self.vision_features(todo) if todo else []
        with self._timed("replay"):
            full = dict(zip((id(p) for p in todo), self._embeds(todo, feats))) if todo else {}
            embed = self.model.mllm.get_input_embeddings()
            embeds = [full[id(p)] if id(p) in full else
                      _suffix_only(embed, p.inputs.input_ids.to(self.model.device), p.context_len) for p in preps]
        with self._timed("context"):
            for p, e in zip(preps, embeds):  # one prefill per distinct uncached context
                if p.context_key not in cached:
                    cached[p.context_key] = self._context(p, e)
            contexts = [cached[p.context_key] for p in preps]
            e, mask, pos, past = self._stack(preps, embeds, contexts)
        res = decode(self.model, e, mask, stop_ids, pad, opts, keep_logits, cache=past,
                     position_ids=pos, timings=self.timings)
        return res, lengths

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        from gar_tool.gar.generation import _now

        t0 = _now(self.model.device)
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + _now(self.model.device) - t0

    def _context(self, prep: _Prepared, embeds: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Prefill the sample's context (not cached yet) → KV tensors ``[(k, v)]`` per layer, each
        ``(1, kv_heads, C, d)``, and cache them."""
        c = prep.context_len
        mask = torch.ones((1, c), dtype=torch.long, device=embeds.device)
        _, past = self.model.language_model(embeds[:c].unsqueeze(0), mask, positions_from_mask(mask))
        kv = [(layer.keys, layer.values) for layer in past.layers]
        self.contexts.put(prep.context_key, kv)
        return kv

    def _stack(self, preps, embeds, contexts):
        """Batch the suffixes on top of right-aligned contexts: returns suffix embeds ``(B, S, H)``,
        mask ``(B, P + S)``, suffix positions ``(B, S)`` and a DynamicCache of the ``P`` contexts."""
        from transformers import DynamicCache

        dev = self.model.device
        bsz = len(preps)
        ctx = [p.context_len for p in preps]
        suf = [len(e) - c for e, c in zip(embeds, ctx)]
        P, S = max(ctx), max(suf)
        hidden = embeds[0].shape[-1]
        x = embeds[0].new_zeros((bsz, S, hidden))
        mask = torch.zeros((bsz, P + S), dtype=torch.long, device=dev)
        pos = torch.zeros((bsz, S), dtype=torch.long, device=dev)
        for b in range(bsz):
            x[b, S - suf[b]:] = embeds[b][ctx[b]:]
            mask[b, P - ctx[b]:P] = 1
            mask[b, P + S - suf[b]:] = 1
            pos[b, S - suf[b]:] = torch.arange(ctx[b], ctx[b] + suf[b], device=dev)
        cache = DynamicCache()
        for li in range(len(contexts[0])):
            k0, v0 = contexts[0][li]
            if bsz == 1:
                cache.update(k0, v0, li)
                continue
            k = k0.new_zeros((bsz, k0.shape[1], P, k0.shape[3]))
            v = v0.new_zeros((bsz, v0.shape[1], P, v0.shape[3]))
            for b in range(bsz):
                kb, vb = contexts[b][li]
                k[b, :, P - ctx[b]:] = kb[0]
                v[b, :, P - ctx[b]:] = vb[0]
            cache.update(k, v, li)
        return x, mask, pos, cache


def _suffix_only(embed: Any, ids: torch.Tensor, context_len: int) -> torch.Tensor:
    """``(L, H)`` embeddings whose context rows are placeholders (zeros): only rows from
    ``context_len`` on are read when the context comes from the KV cache."""
    with torch.no_grad():
        suffix = embed(ids[context_len:])
    out = suffix.new_zeros((len(ids), suffix.shape[-1]))
    out[context_len:] = suffix
    return out


def _left_pad(embeds: Sequence[torch.Tensor], device) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(e) for e in embeds)
    x = embeds[0].new_zeros((len(embeds), n, embeds[0].shape[-1]))
    mask = torch.zeros((len(embeds), n), dtype=torch.long, device=device)
    for b, e in enumerate(embeds):
        x[b, n - len(e):] = e
        mask[b, n - len(e):] = 1
    return x, mask


def _extra_crops(processor: GARProcessor, limit: int = 256) -> tuple[int, ...]:
    """Crop tokens of prompts beyond the slots (used as plain text by compat="original")."""
    from gar_tool.errors import PromptError

    v = processor.vocab
    extra = []
    for k in range(v.prompt_slots, v.prompt_slots + limit):
        try:
            tid = processor.tokenizer.convert_tokens_to_ids(v.crop_token(k))
        except PromptError:  # no naming pattern for this tokenizer
            break
        if tid is None or tid == processor.tokenizer.unk_token_id:
            break
        extra.append(int(tid))
    return tuple(extra)


__all__ = ["InferenceEngine", "CacheConfig"]
