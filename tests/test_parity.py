"""compat="original" reproduces the original GAR code on the shared fixture: features, RoI
replays, spliced embeddings, last-prompt logits, the first cached decoding step and greedy tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import FIXTURE, FIXTURE_CASES
from gar_tool.gar.generation import DecodeOptions
from gar_tool.gar.engine import CacheConfig
from gar_tool.regions.region import Region, Regions

ATOL = 1e-4


def _load(name):
    d = FIXTURE / "cases" / name
    case = json.loads((d / "case.json").read_text())
    regs = Regions([Region.from_rle(r) for r in json.loads((d / "masks_rle.json").read_text())])
    question = None if case["dataset_class"] == "SingleRegionCaptionDataset" else case["question"]
    return case, load_file(str(d / "expected.safetensors")), Image.open(d / "image.png").convert("RGB"), regs, question


@pytest.mark.parametrize("name", FIXTURE_CASES)
@torch.no_grad()
def test_intermediates_match(gar_original, name):
    case, exp, img, regs, question = _load(name)
    m = gar_original.model
    inp = gar_original.inputs(img, regs, question)
    feats = m.encode_images(inp.pixel_values, inp.label_tiles)
    torch.testing.assert_close(feats, exp["image_features"], atol=ATOL, rtol=ATOL)
    n = len(inp.replay_token_ids)
    rois = m.roi_features([feats], [inp.grid], inp.replay_boxes, torch.zeros(n, dtype=torch.long))
    for k in range(n):
        torch.testing.assert_close(rois[k], exp[f"roi_{k}"], atol=ATOL, rtol=ATOL)
    ids = inp.input_ids.unsqueeze(0)
    emb = m.build_inputs_embeds(ids, feats, rois, torch.zeros(n, dtype=torch.long), inp.replay_token_ids)[0]
    np.testing.assert_allclose(emb.double().sum(-1).numpy(), exp["inputs_embeds_row_sum_f64"].numpy(), atol=1e-3)
    np.testing.assert_allclose(emb.double().abs().sum(-1).numpy(), exp["inputs_embeds_row_abs_sum_f64"].numpy(), atol=1e-3)


@pytest.fixture(scope="module", params=["cached", "uncached"])
def gar_any(request, gar_original):
    """Both engine paths: context split + caches (the default) and the original-style full prefill."""
    from gar_tool import GAR

    if request.param == "cached":
        return gar_original
    return GAR(gar_original.model, gar_original.processor, compat="original", cache=CacheConfig.disabled())


@pytest.mark.parametrize("name", FIXTURE_CASES)
def test_logits_and_greedy_tokens_match(gar_any, name):
    gar_original = gar_any
    case, exp, img, regs, question = _load(name)
    logits = gar_original.next_token_logits(img, regs, question)
    torch.testing.assert_close(logits, exp["last_prompt_logits"], atol=ATOL, rtol=ATOL)
    steps = len(exp["generated_ids"])
    gen = gar_original.generate([gar_original.request(img, regs, question)], DecodeOptions(max_new_tokens=steps),
                                keep_logits=True)
    ans = gen.answers[0]
    assert ans.token_ids == exp["generated_ids"].tolist()
    assert ans.prompt_tokens == case["input_ids"]["length"]
    step_logits = gen.step_logits
    torch.testing.assert_close(step_logits[1][0], exp["step1_logits"], atol=ATOL, rtol=ATOL)
    top5 = torch.stack([s[0] for s in step_logits]).topk(5, dim=-1)
    torch.testing.assert_close(top5.values, exp["step_logits_top5_values"], atol=ATOL, rtol=ATOL)


def test_public_api_matches_fixture_tokens(gar_original):
    """describe()/relate() as a user calls them give the fixture's greedy tokens."""
    case, exp, img, regs, _ = _load("a_single_640x480")
    ans = gar_original.describe(img, regs[0], max_new_tokens=len(exp["generated_ids"]))
    assert ans.token_ids == exp["generated_ids"].tolist() and ans.finish_reason == "length"
    case, exp, img, regs, question = _load("c_three_regions_vqa_1280x1024")
    ans = gar_original.relate(img, list(regs), question, max_new_tokens=len(exp["generated_ids"]))
    assert ans.token_ids == exp["generated_ids"].tolist()
