"""Preprocessing: tile grid, resampling, label map, prompt texts and token ids.

Exactness against the original pipeline is checked on the shared fixture cases; the pieces are
also checked against independent references (torchvision's v1 resize) and hand-made tables.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import FIXTURE, FIXTURE_CASES
from gar_tool.errors import PromptError
from gar_tool.gar.processing.prompts import plan_describe, plan_relate, prompt_refs, render_user_text
from gar_tool.gar.processing.tiling import candidate_grids, resize_u8, select_grid, thumb_and_tiles
from gar_tool.regions.region import Region, Regions


def test_candidate_order_for_five_tiles():
    # Keys in first-insertion order (n = 5, 4, ...), pairs within a key in insertion order.
    assert candidate_grids(5) == ((1, 5), (5, 1), (1, 4), (2, 2), (1, 1), (4, 1), (1, 3), (3, 1),
                                  (1, 2), (2, 1))


@pytest.mark.parametrize("w, h, m, grid", [
    (640, 480, 16, (4, 3)), (400, 900, 16, (3, 5)), (1280, 1024, 16, (4, 4)),
    (448, 448, 16, (4, 4)),      # small images are upscaled to the largest canvas of their ratio
    (448, 448, 1, (1, 1)),
    (10000, 100, 16, (16, 1)),   # nothing fits: closest ratio <= s, widest grid
    (100, 10000, 16, (1, 16)),
    (5000, 3000, 4, (2, 2)),     # too big for every 4-tile canvas: closest ratio <= 1.67 is 1 (2x2, widest)
])
def test_select_grid(w, h, m, grid):
    assert select_grid(w, h, 448, m) == grid


@pytest.mark.parametrize("size", [(448, 448), (896, 1344), (100, 37)])
@pytest.mark.parametrize("resample", [0, 3])
def test_resize_matches_torchvision_v1(size, resample):
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    img = torch.randint(0, 256, (3, 301, 517), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mode = InterpolationMode.NEAREST if resample == 0 else InterpolationMode.BICUBIC
    ref = TF.resize(img, list(size), interpolation=mode, antialias=True)
    assert torch.equal(resize_u8(img, size, resample), ref)


def test_tiles_are_row_major():
    img = torch.zeros((1, 4, 6), dtype=torch.uint8)
    for r in range(2):
        for c in range(3):
            img[0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = 10 * r + c
    tiles = thumb_and_tiles(img, (3, 2), 2, 0)
    assert tiles.shape == (7, 1, 2, 2)
    assert [int(t[0, 0, 0]) for t in tiles[1:]] == [0, 1, 2, 10, 11, 12]


def test_prompt_texts_in_both_modes():
    runs = {0: "A" * 3, 1: "B" * 3}
    assert render_user_text(plan_describe("original"), runs, "original") == (
        "There are some objects I am curious about: <Prompt1>;\n<Prompt1>: BBBDescribe this masked region in detail.")
    assert render_user_text(plan_describe("default"), runs, "default") == (
        "There are some objects I am curious about: <Prompt0>; \n<Prompt0>: AAADescribe this masked region in detail.")
    plan = plan_relate("Is <Prompt1> left of <Prompt0>?", 2, 5, "default")
    assert render_user_text(plan, runs, "default") == (
        "There are some objects I am curious about: <Prompt0>; <Prompt1>; \n"
        "<Prompt0>: AAA\n<Prompt1>: BBB\n\nIs <Prompt1> left of <Prompt0>?")
    assert prompt_refs("<Prompt10> <Prompt2> <Prompt2>") == [2, 10]


@pytest.mark.parametrize("question, n, compat, message", [
    ("What is this?", 1, "default", "names no region"),
    ("<Prompt0> and <Prompt2>", 2, "default", "only 2 region"),
    ("<Prompt0> only", 2, "default", "never named"),
    (" ".join(f"<Prompt{i}>" for i in range(6)), 6, "default", "5 region slots"),
    ("", 1, "default", "non-empty"),
    ("<Prompt0>", 1, "weird", "compat"),
])
def test_relate_plan_errors(question, n, compat, message):
    with pytest.raises(PromptError, match=message):
        plan_relate(question, n, 5, compat)


def test_original_mode_keeps_prompts_beyond_the_slots_as_text():
    plan = plan_relate(" ".join(f"<Prompt{i}>" for i in range(7)), 7, 5, "original")
    assert [s.replayed for s in plan.slots] == [True] * 5 + [False] * 2


def test_label_map_first_prompt_wins_and_beyond_slots_is_background(gar_original):
    proc = gar_original.processor
    size = (20, 30)
    a = np.zeros(size, bool)
    a[0:10, 0:10] = True
    b = np.zeros(size, bool)
    b[5:15, 5:15] = True
    regs = Regions([Region.from_mask(a), Region.from_mask(b)])
    labels = proc.label_map(regs, plan_relate("<Prompt0> <Prompt1>", 2, 5, "default"))
    assert labels[7, 7] == 0 and labels[12, 12] == 1 and labels[19, 29] == 5
    many = Regions([Region.from_mask(b)] * 6 + [Region.from_mask(a)])
    plan = plan_relate(" ".join(f"<Prompt{i}>" for i in range(7)), 7, 5, "original")
    labels = proc.label_map(many, plan)
    assert labels[12, 12] == 0 and labels[1, 1] == 5  # region 6 is <Prompt6>: background


def test_special_tokens_in_question_are_rejected(gar_original):
    img = Image.new("RGB", (50, 40))
    with pytest.raises(PromptError, match="special tokens"):
        gar_original.inputs(img, [{"box": [0, 0, 10, 10]}], "What is <|image|> <Prompt0>?")


def _case(name):
    d = FIXTURE / "cases" / name
    case = json.loads((d / "case.json").read_text())
    regs = Regions([Region.from_rle(r) for r in json.loads((d / "masks_rle.json").read_text())])
    question = None if case["dataset_class"] == "SingleRegionCaptionDataset" else case["question"]
    return d, case, Image.open(d / "image.png").convert("RGB"), regs, question


@pytest.mark.parametrize("name", FIXTURE_CASES)
def test_fixture_preprocessing_is_exact(gar_original, name):
    d, case, img, regs, question = _case(name)
    inp = gar_original.inputs(img, regs, question)
    exp = load_file(str(d / "expected.safetensors"))
    assert inp.prompt_text == (d / "prompt.txt").read_text()
    assert torch.equal(inp.input_ids, exp["input_ids"])
    assert list(inp.grid) == case["aspect_ratios"]
    assert inp.pixel_values.shape[0] == case["num_tiles_incl_thumbnail"]
    labels = np.load(d / "mask_label_tiles.npz")["label"]
    assert np.array_equal(inp.label_tiles.numpy(), labels)
    thumb = np.load(d / "pixel_values_thumbnail_u8.npz")["thumbnail"]
    u8 = torch.round((inp.pixel_values[0] + 1) / 2 * 255).to(torch.uint8).numpy()
    assert np.array_equal(u8, thumb)
    sample = np.load(d / "pixel_values_sample.npz")
    got = inp.pixel_values.flatten()[torch.from_numpy(sample["flat_index"])].numpy()
    assert np.array_equal(got, sample["value"])
    want = {int(k): v for k, v in case["bboxes"].items()}
    got_boxes = dict(zip(inp.replay_token_ids.tolist(), inp.replay_boxes.tolist()))
    assert got_boxes == {k: v for k, v in want.items() if k in got_boxes}
    assert set(got_boxes) == {int(k) for k in case["input_ids"]["crop_token_spans"]}
