"""Token generation on top of :class:`~gar_tool.gar.modeling.GARModel`: a KV-cached decode loop.

Works on precomputed input embeddings (image features and replays already spliced in), with a
batch of left-padded sequences. Greedy by default (what GAR is evaluated with); temperature /
top-p sampling on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gar_tool.gar.modeling import GARModel
from gar_tool.gar.protocol import DecodeOptions


@dataclass
class DecodeResult:
    """Per sample: generated ids (the stop token excluded) and why decoding stopped."""

    token_ids: list[list[int]]
    finish_reasons: list[str]  # "stop" (an end token) or "length"
    step_logits: list[torch.Tensor] = field(default_factory=list)  # (B, V) float32 per step, if kept


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` 0/1 mask (left padding) → ``(B, L)`` positions 0.. of the real tokens."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _pick(logits: torch.Tensor, opts: DecodeOptions, gen: torch.Generator | None) -> torch.Tensor:
    if not opts.do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits / opts.temperature, dim=-1)
    if opts.top_p < 1.0:
        sorted_p, idx = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < opts.top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


@torch.no_grad()
def decode(model: GARModel, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
           stop_ids: set[int], pad_id: int, opts: DecodeOptions, keep_logits: bool = False,
           cache: Any = None, position_ids: torch.Tensor | None = None,
           timings: dict[str, float] | None = None) -> DecodeResult:
    """Prefill ``(B, S, H)`` embeddings, then generate.

    ``attention_mask`` is ``(B, P + S)``: 1 for real tokens, 0 for padding anywhere (left padding,
    or gaps between a cached context of length ``P`` and the new tokens). ``cache`` (a transformers
    ``Cache``) holds the ``P`` cached positions (``None``: ``P = 0``). ``position_ids`` ``(B, S)`` are the positions of
    the new tokens (default: counted from the mask). ``timings`` (optional) accumulates the
    seconds spent in ``prefill`` and ``decode`` and the number of ``decode_steps``.
    """
    device = inputs_embeds.device
    gen = None
    if opts.do_sample and opts.seed is not None:
        gen = torch.Generator(device=device).manual_seed(opts.seed)
    if position_ids is None:
        position_ids = positions_from_mask(attention_mask)[:, -inputs_embeds.shape[1]:]
    t0 = _now(device)
    logits, past = model.language_model(inputs_embeds, attention_mask, position_ids, cache)
    logits = logits[:, -1]
    t1 = _now(device)
    next_pos = position_ids[:, -1] + 1  # position of the next token per sample
    bsz = attention_mask.shape[0]
    out: list[list[int]] = [[] for _ in range(bsz)]
    reasons = ["length"] * bsz
    done = torch.zeros(bsz, dtype=torch.bool, device=device)
    stop = torch.tensor(sorted(stop_ids) if not opts.ignore_eos else [], dtype=torch.long, device=device)
    steps = 0
    kept: list[torch.Tensor] = []
    embed: Any = model.mllm.get_input_embeddings()
    for step in range(opts.max_new_tokens):
        if keep_logits:
            kept.append(logits.detach().float().cpu())
        tok = _pick(logits.float(), opts, gen)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        is_stop = torch.isin(tok, stop) & ~done
        for b in range(bsz):
            if done[b]:
                continue
            if is_stop[b]:
                reasons[b] = "stop"
            else:
                out[b].append(int(tok[b]))
        done |= is_stop
        if bool(done.all()) or step == opts.max_new_tokens - 1:
            break
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        logits, past = model.language_model(embed(tok.unsqueeze(1)), attention_mask,
                                            next_pos.unsqueeze(1), past)
        logits = logits[:, -1]
        next_pos = next_pos + 1
        steps += 1
    if timings is not None:
        t2 = _now(device)
        timings["prefill"] = timings.get("prefill", 0.0) + (t1 - t0)
        timings["decode"] = timings.get("decode", 0.0) + (t2 - t1)
        timings["decode_steps"] = timings.get("decode_steps", 0.0) + steps
    return DecodeResult(out, reasons, kept)


def _now(device: torch.device) -> float:
    """Wall clock after the device finished its queued work."""
    import time

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


__all__ = ["DecodeOptions", "DecodeResult", "decode", "positions_from_mask"]
