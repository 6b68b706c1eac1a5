"""Caching and batching must not change results: the same greedy tokens (and logits within fp32
noise) with and without caches, for repeated, interleaved and batched requests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gar_tool import GAR
from gar_tool.gar.engine import CacheConfig

IMG_A = (np.random.RandomState(11).rand(240, 320, 3) * 255).astype(np.uint8)
IMG_B = (np.random.RandomState(12).rand(200, 150, 3) * 255).astype(np.uint8)
RA = [{"box": [10, 10, 120, 100]}, {"box": [150, 60, 300, 220]}]
RB = [{"polygon": [[5, 5], [140, 20], [60, 190]]}, {"points": [[100, 150]]}]
QS = ["Is <Prompt0> left of <Prompt1>?", "What is between <Prompt0> and <Prompt1>?",
      "Which of <Prompt0> and <Prompt1> is larger?"]


@pytest.fixture()
def pair(tiny_gar):
    cached = GAR(tiny_gar.model, tiny_gar.processor, compat="default")
    plain = GAR(tiny_gar.model, tiny_gar.processor, compat="default", cache=CacheConfig.disabled())
    return cached, plain


def _tokens(answers):
    return [a.token_ids for a in answers]


def _tiles(gar, img, regions):
    """Number of tiles (thumbnail included) of a request's image."""
    return gar.inputs(img, regions, QS[0] if len(regions) > 1 else None).num_tiles


def test_follow_up_questions_hit_the_caches(pair):
    cached, plain = pair
    for q in QS:
        assert cached.relate(IMG_A, RA, q, max_new_tokens=5).token_ids == \
            plain.relate(IMG_A, RA, q, max_new_tokens=5).token_ids
    eng = cached.engine
    # follow-ups find their context KV cached: no vision pass, no replay, only their own tokens
    n = _tiles(cached, IMG_A, RA)
    assert eng.timings["vision_tiles"] == n and eng.vision.stats.misses == n and eng.vision.stats.hits == 0
    assert eng.contexts.stats.misses == 1 and eng.contexts.stats.hits == 2
    assert eng.tiles.stats.hits == 2
    assert len(plain.engine.vision) == 0 and len(plain.engine.contexts) == 0


def test_batched_questions_equal_sequential(pair):
    cached, plain = pair
    batch = cached.relate([IMG_A, IMG_A, IMG_B, IMG_A], [RA, RA, RB, RA[::-1]],
                          [QS[0], QS[1], QS[2], QS[0]], max_new_tokens=6)
    singles = [plain.relate(i, r, q, max_new_tokens=6)
               for i, r, q in [(IMG_A, RA, QS[0]), (IMG_A, RA, QS[1]), (IMG_B, RB, QS[2]), (IMG_A, RA[::-1], QS[0])]]
    assert _tokens(batch) == _tokens(singles)
    # three distinct (image, masks) -> but RA and RA[::-1] have the same union mask: the tower
    # sees each tile of IMG_A and of IMG_B once
    tiles = _tiles(cached, IMG_A, RA) + _tiles(cached, IMG_B, RB)
    assert cached.engine.timings["vision_tiles"] == tiles == len(cached.engine.vision)
    assert len(cached.engine.contexts) == 3


def test_masks_change_the_vision_key(pair):
    """The mask embedding enters the vision tower: another region on the same image must not reuse
    the first region's features of the tiles whose mask differs (it does reuse the others)."""
    cached, plain = pair
    a = cached.describe(IMG_A, RA[0], max_new_tokens=5)
    b = cached.describe(IMG_A, RA[1], max_new_tokens=5)
    assert a.token_ids == plain.describe(IMG_A, RA[0], max_new_tokens=5).token_ids
    assert b.token_ids == plain.describe(IMG_A, RA[1], max_new_tokens=5).token_ids
    slots = cached.processor.vocab.prompt_slots
    mask_a = cached.inputs(IMG_A, [RA[0]]).label_tiles != slots
    mask_b = cached.inputs(IMG_A, [RA[1]]).label_tiles != slots
    changed = int(sum(not torch.equal(x, y) for x, y in zip(mask_a, mask_b)))
    assert changed > 0
    assert cached.engine.timings["vision_tiles"] == len(mask_a) + changed
    assert cached.engine.tiles.stats.hits == 1


def test_logits_close_with_and_without_cache(pair):
    cached, plain = pair
    cached.relate(IMG_A, RA, QS[0], max_new_tokens=1)  # warm the context cache
    lc = cached.next_token_logits(IMG_A, RA, QS[1])
    lp = plain.next_token_logits(IMG_A, RA, QS[1])
    torch.testing.assert_close(lc, lp, atol=1e-4, rtol=1e-4)


def test_model_settings_are_part_of_the_context_key(pair):
    cached, plain = pair
    first = cached.next_token_logits(IMG_A, RA, QS[0])
    saved = cached.model.settings
    cached.model.settings = replace(saved, roi_double_scale=not saved.roi_double_scale)
    try:
        other = cached.next_token_logits(IMG_A, RA, QS[0])
        assert (first - other).abs().max() > 1e-4
    finally:
        cached.model.settings = saved
    torch.testing.assert_close(cached.next_token_logits(IMG_A, RA, QS[0]), first)


def test_caches_are_bounded(tiny_gar):
    small = GAR(tiny_gar.model, tiny_gar.processor, cache=CacheConfig(tiles_bytes=1 << 20, vision_bytes=1 << 30,
                                                                     context_bytes=1 << 30, max_items=2))
    for seed in range(4):
        img = (np.random.RandomState(seed).rand(100, 120, 3) * 255).astype(np.uint8)
        small.describe(img, {"box": [0, 0, 50, 50]}, max_new_tokens=1)
    eng = small.engine
    # the vision cache holds max_items images' worth of tiles: 2 x (max_num_tiles + 1)
    per_image = small.processor.geometry.max_num_tiles + 1
    assert len(eng.contexts) == 2 and len(eng.vision) <= 2 * per_image
    assert eng.vision.stats.evictions == eng.timings["vision_tiles"] - len(eng.vision) > 0
    assert eng.tiles.bytes <= 1 << 20


def test_mixed_batch_of_cached_and_new_contexts(pair):
    cached, plain = pair
    cached.relate(IMG_A, RA, QS[0], max_new_tokens=1)  # context of (IMG_A, RA) now cached
    batch = cached.relate([IMG_A, IMG_B, IMG_A], [RA, RB, RA], [QS[1], QS[2], QS[2]], max_new_tokens=5)
    singles = [plain.relate(i, r, q, max_new_tokens=5) for i, r, q in
               [(IMG_A, RA, QS[1]), (IMG_B, RB, QS[2]), (IMG_A, RA, QS[2])]]
    assert _tokens(batch) == _tokens(singles)
    # IMG_A once (first call), IMG_B once; no re-encode
    assert cached.engine.timings["vision_tiles"] == _tiles(cached, IMG_A, RA) + _tiles(cached, IMG_B, RB)


def test_uncached_batches_with_left_padding_equal_singles(pair):
    """The original-style path pads shorter prompts on the left; padding must not leak (no NaN)."""
    _, plain = pair
    batch = plain.relate([IMG_A, IMG_B], [RA, RB], [QS[0], QS[1] + " Answer in detail, please."], max_new_tokens=5)
    singles = [plain.relate(IMG_A, RA, QS[0], max_new_tokens=5),
               plain.relate(IMG_B, RB, QS[1] + " Answer in detail, please.", max_new_tokens=5)]
    assert batch[0].prompt_tokens != batch[1].prompt_tokens
    assert _tokens(batch) == _tokens(singles)
