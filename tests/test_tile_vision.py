"""Per-tile vision features: a new region set on a known image runs the vision tower only on the
tiles whose binary mask changed, and gives the same greedy tokens and logits (within 1e-4) as
encoding everything from scratch — on random checkpoints and on the parity fixture, with regions
touching one tile, several tiles, and the thumbnail only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gar_tool import GAR
from gar_tool.gar.engine import CacheConfig
from gar_tool.gar.generation import DecodeOptions
from gar_tool.gar.processing.tiling import PIL_NEAREST, select_grid, thumb_and_tiles

from test_parity import ATOL, _load


def _image(h, w, seed):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def _mask(h, w, box):
    m = np.zeros((h, w), bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


def _sampled(size, tile, grid_len):
    """Source indices (along one axis of ``size`` pixels) that the thumbnail and the tiles sample
    with the nearest-neighbour label resize."""
    idx = torch.arange(size)
    img = torch.stack([(idx // 256).to(torch.uint8), (idx % 256).to(torch.uint8)]).unsqueeze(1).contiguous()
    out = thumb_and_tiles(img, (grid_len, 1), tile, PIL_NEAREST).long()
    seen = out[:, 0] * 256 + out[:, 1]  # (T, 1, tile) source index of every sampled pixel
    return set(seen[0].unique().tolist()), set(seen[1:].unique().tolist())


def thumbnail_only_mask(gar, h, w):
    """A one-pixel mask that the thumbnail's label map shows and no tile's does (the image must be
    downscaled into its tile canvas, so that the tiles skip some pixels the thumbnail samples)."""
    g = gar.processor.geometry
    ncw, nch = select_grid(w, h, g.tile_size, g.max_num_tiles)
    thumb_x, tiles_x = _sampled(w, g.tile_size, ncw)
    thumb_y, _ = _sampled(h, g.tile_size, nch)
    xs = sorted(thumb_x - tiles_x)
    assert xs, f"a {w}x{h} image samples every thumbnail column in its tiles"
    m = np.zeros((h, w), bool)
    m[min(thumb_y), xs[0]] = True
    return m


def _binary(gar, img, regions):
    inp = gar.inputs(img, regions, _question(regions))
    return inp.label_tiles != gar.processor.vocab.prompt_slots  # (T, tile, tile)


def _question(regions):
    if len(regions) == 1:
        return None
    return "How are " + " and ".join(f"<Prompt{i}>" for i in range(len(regions))) + " related?"


def _run(gar, img, regions, steps=5):
    gen = gar.generate([gar.request(img, regions, _question(regions))],
                       DecodeOptions(max_new_tokens=steps, ignore_eos=True), keep_logits=True)
    return gen.answers[0].token_ids, torch.stack([s[0] for s in gen.step_logits])


def check_sequence(model, processor, compat, img, region_sets):
    """Ask about each region set in turn with per-tile caching and from scratch: same tokens and
    logits; the tower runs exactly on the tiles whose (tile, binary mask) pair is new."""
    tiled = GAR(model, processor, compat=compat)
    plain = GAR(model, processor, compat=compat, cache=CacheConfig.disabled())
    seen: set[tuple[int, bytes]] = set()
    ran = []
    for regions in region_sets:
        binary = _binary(tiled, img, regions)
        new = {(t, b.numpy().tobytes()) for t, b in enumerate(binary)} - seen
        seen |= new
        before = tiled.engine.timings.get("vision_tiles", 0)
        tokens, logits = _run(tiled, img, regions)
        ran.append(tiled.engine.timings["vision_tiles"] - before)
        assert ran[-1] == len(new), "the tower must run on the changed tiles only"
        ref_tokens, ref_logits = _run(plain, img, regions)
        assert tokens == ref_tokens
        torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=ATOL)
    assert plain.engine.timings["vision_tiles"] == len(region_sets) * len(binary)
    return ran


def _touched(gar, img, regions):
    """Indices of the tiles (0 = thumbnail) with region pixels."""
    return [t for t, b in enumerate(_binary(gar, img, regions)) if bool(b.any())]


def test_untouched_tiles_get_the_mask_free_features(tiny_gar):
    """The premise: the mask embedding is a bias-free conv and tiles go through the tower one by
    one, so a tile without region pixels has exactly the features of the tile with no mask."""
    img = _image(448, 448, 0)
    inp = tiny_gar.inputs(img, [{"box": [20, 30, 150, 140]}])
    m = tiny_gar.model
    assert m.mask_patch_embedding.bias is None
    empty = torch.full_like(inp.label_tiles, tiny_gar.processor.vocab.prompt_slots)
    with torch.no_grad():
        masked = m.encode_images(inp.pixel_values, inp.label_tiles)
        free = m.encode_images(inp.pixel_values, empty)
        alone = torch.cat([m.encode_images(inp.pixel_values[t:t + 1], inp.label_tiles[t:t + 1])
                           for t in range(inp.num_tiles)])
    touched = _touched(tiny_gar, img, [{"box": [20, 30, 150, 140]}])
    assert touched == [0, 1]  # the thumbnail and the top-left tile
    for t in range(inp.num_tiles):
        if t in touched:
            assert (masked[t] - free[t]).abs().max() > 1e-3
        else:
            torch.testing.assert_close(masked[t], free[t], atol=0, rtol=0)
    torch.testing.assert_close(alone, masked, atol=1e-5, rtol=1e-5)


def test_region_sets_on_a_random_checkpoint(tiny_gar):
    h, w = 448, 448  # a 2x2 grid of 224-px tiles + thumbnail
    img = _image(h, w, 1)
    one_tile = [{"box": [20, 30, 150, 140]}]                              # top-left tile
    other_tile = [{"box": [300, 260, 420, 400]}]                          # bottom-right tile
    several = [{"box": [150, 150, 300, 300]}, {"box": [10, 300, 100, 440]}]  # all 4 tiles
    pair = [one_tile[0], other_tile[0]]                                   # two tiles, both seen before
    sets = [one_tile, other_tile, several, pair, one_tile]
    assert _touched(tiny_gar, img, one_tile) == [0, 1] and _touched(tiny_gar, img, other_tile) == [0, 4]
    assert _touched(tiny_gar, img, several) == [0, 1, 2, 3, 4]
    ran = check_sequence(tiny_gar.model, tiny_gar.processor, "default", img, sets)
    # first set: every tile; then the thumbnail + the tiles whose mask is new; a repeated set: none
    assert ran == [5, 3, 5, 1, 0]


def test_thumbnail_only_region_on_a_random_checkpoint(tiny_gar):
    """A region that only the thumbnail sees: with this geometry the nearest-neighbour label
    resize of the tiles (scale 700/672, rounded down) skips a column that the thumbnail's (700/224)
    samples."""
    h, w = 230, 700
    img = _image(h, w, 2)
    dot = thumbnail_only_mask(tiny_gar, h, w)
    assert _touched(tiny_gar, img, [dot]) == [0]
    box = {"box": [300, 40, 420, 200]}  # the middle tile
    ran = check_sequence(tiny_gar.model, tiny_gar.processor, "default", img, [[box], [dot], [dot, box]])
    assert ran == [4, 2, 1]  # [dot]: thumbnail + the middle tile without mask; [dot, box]: thumbnail


@pytest.fixture(scope="module")
def fixture_case_a():
    return _load("a_single_640x480")


def test_region_sets_on_the_parity_fixture(gar_original, fixture_case_a):
    _, _, pil, regs, _ = fixture_case_a
    img = np.asarray(pil)
    h, w = img.shape[:2]
    case_mask = regs[0].mask
    corner = _mask(h, w, (w - 30, h - 30, w - 2, h - 2))
    far = _mask(h, w, (4, 4, 40, 30))
    sets = [[case_mask], [corner], [case_mask, corner], [far, corner]]
    n = len(_binary(gar_original, img, [case_mask]))
    several = _touched(gar_original, img, [case_mask])
    assert n > 5 and len(several) > 2                                  # several tiles
    assert len(_touched(gar_original, img, [corner])) == 2             # thumbnail + one tile
    assert not set(several[1:]) & set(_touched(gar_original, img, [corner])[1:])
    ran = check_sequence(gar_original.model, gar_original.processor, "original", img, sets)
    # [corner]: thumbnail, its tile, and the case's tiles without mask; [case, corner]: every
    # tile's mask was seen before, so only the thumbnail runs; [far, corner]: thumbnail + far's tile
    assert ran == [n, 2 + len(several) - 1, 1, 2]


@pytest.mark.parametrize("name", ["a_single_640x480", "b_two_regions_400x900", "c_three_regions_vqa_1280x1024"])
def test_fixture_outputs_with_reused_tiles(gar_original, name):
    """The fixture's expected logits and greedy tokens, with most tile features coming from an
    earlier request about another region of the same image."""
    case, exp, img, regs, question = _load(name)
    gar = GAR(gar_original.model, gar_original.processor, compat="original")
    h, w = img.height, img.width
    gar.describe(img, _mask(h, w, (w - 20, h - 20, w, h)), max_new_tokens=1)  # warm: another region
    warm = gar.engine.timings["vision_tiles"]
    gen = gar.generate([gar.request(img, regs, question)],
                       DecodeOptions(max_new_tokens=len(exp["generated_ids"])), keep_logits=True)
    reran = gar.engine.timings["vision_tiles"] - warm
    assert 0 < reran < warm, "most tiles should come from the cache"
    assert gen.answers[0].token_ids == exp["generated_ids"].tolist()
    torch.testing.assert_close(gen.step_logits[0][0], exp["last_prompt_logits"], atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(gen.step_logits[1][0], exp["step1_logits"], atol=ATOL, rtol=ATOL)
