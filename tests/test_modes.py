"""compat="default" (training-faithful) vs compat="original": the documented differences, each
checked on the model, plus the RoI geometry switch (quirk Q1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gar_tool.errors import PromptError
from gar_tool.regions.region import Region

W, H = 320, 240


def _image():
    rng = np.random.RandomState(0)
    return Image.fromarray((rng.rand(H, W, 3) * 255).astype(np.uint8))


def _box_region(x1, y1, x2, y2):
    return Region.from_box([x1, y1, x2, y2], (H, W))


A = _box_region(10, 20, 90, 120)
B = _box_region(200, 100, 300, 220)
A2 = _box_region(30, 10, 150, 60)


def test_bos_count(gar_original, gar_default):
    bos = gar_original.processor.vocab.bos_id
    orig = gar_original.inputs(_image(), [A]).input_ids
    default = gar_default.inputs(_image(), [A]).input_ids
    assert orig[:2].tolist() == [bos, bos] and orig[2] != bos
    assert default[0] == bos and default[1] != bos
    assert int((default == bos).sum()) == 1 and int((orig == bos).sum()) == 2


def test_describe_strings(gar_original, gar_default):
    assert "<Prompt1>;\n<Prompt1>: " in gar_original.inputs(_image(), [A]).prompt_text
    assert "<Prompt0>; \n<Prompt0>: " in gar_default.inputs(_image(), [A]).prompt_text


def test_replay_boxes(gar_original, gar_default):
    q = "Is <Prompt0> left of <Prompt1>?"
    orig = gar_original.inputs(_image(), [A, B], q).replay_boxes
    default = gar_default.inputs(_image(), [A, B], q).replay_boxes
    b_box = [200 / W, 100 / H, 299 / W, 219 / H]  # max inclusive
    assert orig.tolist() == [b_box, b_box]  # every replay from the last mask (Q2)
    assert default.tolist() == [[10 / W, 20 / H, 89 / W, 119 / H], b_box]


@torch.no_grad()
def _replays(gar, regions, q):
    inp = gar.inputs(_image(), regions, q)
    m = gar.model
    feats = m.encode_images(inp.pixel_values, inp.label_tiles)
    n = len(inp.replay_token_ids)
    return m.roi_features([feats], [inp.grid], inp.replay_boxes, torch.zeros(n, dtype=torch.long))


def test_replays_are_per_region_only_in_default_mode(gar_original, gar_default):
    """Default mode cuts each region's replay from its own box; the original inference cuts all
    of them from the last region's box, so they are identical and region 0's place is ignored."""
    q = "Compare <Prompt0> with <Prompt1>."
    d = _replays(gar_default, [A, B], q)
    assert not torch.allclose(d[0], d[1])
    o = _replays(gar_original, [A, B], q)
    torch.testing.assert_close(o[0], o[1], rtol=0, atol=0)
    boxes = [gar_default.inputs(_image(), regs, q).replay_boxes for regs in ([A, B], [A2, B])]
    assert not torch.equal(boxes[0][0], boxes[1][0]) and torch.equal(boxes[0][1], boxes[1][1])
    boxes = [gar_original.inputs(_image(), regs, q).replay_boxes for regs in ([A, B], [A2, B])]
    assert torch.equal(boxes[0], boxes[1])


def test_more_regions_than_slots(gar_original, gar_default):
    regions = [_box_region(10 * i, 10 * i, 10 * i + 30, 10 * i + 30) for i in range(7)]
    q = "Which is largest: " + ", ".join(f"<Prompt{i}>" for i in range(7)) + "?"
    with pytest.raises(PromptError, match="5 region slots"):
        gar_default.relate(_image(), regions, q, max_new_tokens=1)
    inp = gar_original.inputs(_image(), regions, q)
    assert len(inp.replay_token_ids) == 5  # <Prompt5>, <Prompt6>: plain text, never replayed
    vocab = gar_original.processor.vocab
    six = gar_original.processor.tokenizer.convert_tokens_to_ids(vocab.crop_token(6))
    assert int((inp.input_ids == six).sum()) == 256
    ans = gar_original.relate(_image(), regions, q, max_new_tokens=2, ignore_eos=True)
    assert len(ans.token_ids) == 2
    assert ans.token_ids[0] == int(gar_original.next_token_logits(_image(), regions, q).argmax())


def test_modes_give_different_logits(gar_original, gar_default):
    q = "Is <Prompt0> left of <Prompt1>?"
    lo = gar_original.next_token_logits(_image(), [A, B], q)
    ld = gar_default.next_token_logits(_image(), [A, B], q)
    assert (lo - ld).abs().max() > 1e-3


@pytest.mark.parametrize("double", [True, False])
def test_roi_geometry(gar_original, double):
    """On a feature map whose value is the column index, bilinear RoI bins average to the box
    centre in feature units (minus 0.5, aligned=True) — divided by 28 again when double-scaled."""
    from dataclasses import replace

    model = gar_original.model
    saved = model.settings
    model.settings = replace(saved, roi_double_scale=double)
    try:
        ncw, nch, s = 4, 4, saved.tokens_side
        fw = ncw * s
        col = torch.arange(fw, dtype=torch.float32)
        stitched = col.view(1, fw, 1).expand(nch * s, fw, 1).clone()  # (rows, cols, 1) value = col
        tiles = stitched.reshape(nch, s, ncw, s, 1).permute(0, 2, 1, 3, 4).reshape(nch * ncw, s * s, 1)
        feats = torch.cat([torch.zeros(1, s * s, 1), tiles])
        box = torch.tensor([[0.5, 0.2, 0.9, 0.6]], dtype=torch.float64)
        out = model.roi_features([feats], [(ncw, nch)], box, torch.zeros(1, dtype=torch.long))
        scale = 1 / saved.feature_stride if double else 1.0
        want = (0.5 + 0.9) / 2 * fw * scale - 0.5
        assert out.mean().item() == pytest.approx(want, abs=1e-4)
    finally:
        model.settings = saved
