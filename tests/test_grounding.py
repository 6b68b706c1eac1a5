"""GroundingDetector and SamSegmenter on tiny random checkpoints loaded like real ones (CPU)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gar_tool.errors import InputError, ModelError, ModelNotFoundError, RegionError
from gar_tool.grounding import GroundingDetector, SamSegmenter, load_segmenter
from gar_tool.grounding.phrases import build_prompt, chunk_phrases
from gar_tool.media.overlay import draw_overlay, region_color
from gar_tool.regions.region import Region, Regions
from grounding_fixtures import TINY_MAX_TEXT_LEN, real_image, tiny_dino_dir, tiny_sam_dir  # noqa: F401

PHRASES = ["a dog", "a ball"]
LONG = ["a dog", "a cat", "a ball", "a red car", "a big tree", "the sky"]  # > TINY_MAX_TEXT_LEN tokens


@pytest.fixture(scope="module")
def detector(tiny_dino_dir, tiny_sam_dir):
    return GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=str(tiny_sam_dir), device="cpu",
                                             dtype="float32")


@pytest.fixture(scope="module")
def box_detector(tiny_dino_dir):
    return GroundingDetector.from_pretrained(str(tiny_dino_dir), device="cpu", dtype="float32")


@pytest.fixture()
def fresh_sam(tiny_sam_dir):
    return SamSegmenter.from_pretrained(str(tiny_sam_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def photo(real_image):
    return Image.open(real_image).convert("RGB")


def _in_image(regions: Regions, h: int, w: int) -> None:
    for r in regions:
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert r.mask.shape == (h, w) and r.mask.dtype == np.bool_


def _count_calls(module: torch.nn.Module) -> list:
    calls: list = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


# ----------------------------------------------------------------------------- loading
def test_loads_real_transformers_classes(detector):
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor, SamModel, SamProcessor

    assert isinstance(detector.model, GroundingDinoForObjectDetection)
    assert isinstance(detector.processor, GroundingDinoProcessor)
    assert isinstance(detector.segmenter.model, SamModel)
    assert isinstance(detector.segmenter.processor, SamProcessor)
    assert detector.max_text_len == TINY_MAX_TEXT_LEN
    assert not detector.model.training


def test_missing_directory_is_one_clear_line(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist") as info:
        GroundingDetector.from_pretrained(str(tmp_path / "nowhere"), device="cpu")
    assert "\n" not in str(info.value)


def test_uncached_hub_id_offline_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        GroundingDetector.from_pretrained("gar-agent-tests/no-such-detector", device="cpu")
    msg = str(info.value)
    assert "\n" not in msg
    for part in ("'gar-agent-tests/no-such-detector'", "HF_HUB_OFFLINE", "config.json", "model.safetensors",
                 "local directory", "--detector DIR"):
        assert part in msg
    with pytest.raises(ModelNotFoundError, match="no-such-sam.*--segmenter none"):
        SamSegmenter.from_pretrained("gar-agent-tests/no-such-sam", device="cpu")


def test_directory_without_safetensors_weights(tmp_path, tiny_dino_dir):
    (tmp_path / "config.json").write_text((tiny_dino_dir / "config.json").read_text())
    with pytest.raises(ModelNotFoundError, match="lacks .*model.safetensors or model.safetensors.index.json"):
        GroundingDetector.from_pretrained(str(tmp_path), device="cpu")


def test_wrong_checkpoint_kind(tiny_sam_dir, tiny_dino_dir):
    with pytest.raises(ModelError, match="model_type 'sam', expected 'grounding-dino'"):
        GroundingDetector.from_pretrained(str(tiny_sam_dir), device="cpu")
    with pytest.raises(ModelError, match="expected 'sam'"):
        SamSegmenter.from_pretrained(str(tiny_dino_dir), device="cpu")


def test_load_segmenter_specs(fresh_sam):
    assert load_segmenter(None) is None and load_segmenter(False) is None and load_segmenter("none") is None
    assert load_segmenter(fresh_sam) is fresh_sam
    with pytest.raises(TypeError):
        load_segmenter(3.5)


# ----------------------------------------------------------------------------- detect
def test_detect_on_a_photo_with_sam(detector, photo):
    regions = detector.detect(photo, "a dog. a ball.", box_threshold=0.0, text_threshold=0.0)
    assert isinstance(regions, Regions) and len(regions) > 0
    _in_image(regions, photo.height, photo.width)
    assert set(regions.labels) <= set(PHRASES)
    assert {r.source for r in regions} <= {"sam", "box-rect"} and "sam" in {r.source for r in regions}
    scores = regions.scores
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    # the score is the detector's, not SAM's IoU estimate
    boxes = detector.detect_boxes(photo, PHRASES, 0.0, 0.0)
    assert scores == pytest.approx(boxes.scores.tolist())


def test_thresholds_of_one_give_no_region(detector, photo):
    regions = detector.detect(photo, PHRASES, box_threshold=1.0, text_threshold=1.0)
    assert isinstance(regions, Regions) and len(regions) == 0


def test_without_segmenter_masks_are_box_rectangles(box_detector, photo):
    regions = box_detector.detect(photo, PHRASES, box_threshold=0.0, text_threshold=0.0, max_regions=5)
    boxes = box_detector.detect_boxes(photo, PHRASES, 0.0, 0.0, max_regions=5).boxes.tolist()
    assert 0 < len(regions) <= 5
    for r, (x1, y1, x2, y2) in zip(regions, boxes):
        assert r.source == "box-rect"
        assert r.box == (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))
        assert r.area == (r.box[2] - r.box[0]) * (r.box[3] - r.box[1])  # a filled rectangle


def test_long_prompts_are_chunked_and_merged(box_detector, photo):
    tok = box_detector.processor.tokenizer
    assert len(tok(build_prompt(LONG)[0])["input_ids"]) > TINY_MAX_TEXT_LEN
    chunks = chunk_phrases(LONG, lambda t: len(tok(t)["input_ids"]), TINY_MAX_TEXT_LEN)
    assert len(chunks) >= 2
    calls = _count_calls(box_detector.model)
    regions = box_detector.detect(photo, ". ".join(LONG), box_threshold=0.0, text_threshold=0.0)
    assert len(calls) == len(chunks)  # one forward per chunk
    assert set(regions.labels) <= set(LONG)
    assert set(regions.labels) & set(chunks[-1])  # phrases of the last chunk were seen too


def test_phrase_longer_than_the_text_limit(box_detector, photo):
    with pytest.raises(InputError, match=f"limit of {TINY_MAX_TEXT_LEN} tokens"):
        box_detector.detect(photo, " ".join(["dog"] * TINY_MAX_TEXT_LEN))


@pytest.mark.parametrize("kwargs, message", [
    (dict(phrases=""), "no phrase"),
    (dict(phrases=" . "), "no phrase"),
    (dict(phrases="a dog", box_threshold=1.5), r"box_threshold must be in \[0, 1\]"),
    (dict(phrases="a dog", text_threshold="x"), "text_threshold must be a number"),
    (dict(phrases="a dog", max_regions=0), "max_regions must be a positive integer"),
])
def test_detect_input_errors(box_detector, photo, kwargs, message):
    with pytest.raises(InputError, match=message):
        box_detector.detect(photo, **kwargs)


def test_max_regions_and_array_images_from_skimage(detector):
    from skimage import data as skdata

    arr = skdata.astronaut()  # (512, 512, 3) uint8
    regions = detector.detect(arr, ["a person", "the sky"], box_threshold=0.0, text_threshold=0.0, max_regions=3)
    assert len(regions) == 3
    _in_image(regions, *arr.shape[:2])


def test_bfloat16_runs_on_cpu(tiny_dino_dir, photo):
    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), device="cpu", dtype="bfloat16")
    assert det.model.dtype == torch.bfloat16
    regions = det.detect(photo, PHRASES, box_threshold=0.0, text_threshold=0.0, max_regions=2)
    assert len(regions) == 2 and regions.size == (photo.height, photo.width)


# ----------------------------------------------------------------------------- SAM prompts
def test_segment_boxes_points_and_both(fresh_sam, photo):
    h, w = photo.height, photo.width
    boxes = [[10, 20, 200, 240], [300, 100, 600, 450]]
    points = [[[100, 120]], [[400, 200], [350, 150]]]
    labels = [[1], [1, 0]]
    for kwargs in (dict(boxes=boxes), dict(points=points, point_labels=labels),
                   dict(boxes=boxes, points=points, point_labels=labels), dict(boxes=boxes[0])):
        regions, ious = fresh_sam.segment_with_scores(photo, **kwargs)
        assert len(regions) == len(ious) == (1 if kwargs.get("boxes") is boxes[0] else 2)
        _in_image(regions, h, w)
        for r, iou in zip(regions, ious):
            assert r.score is None  # a region's score is a detector's confidence; SAM is not a detector
            assert (r.source == "sam" and 0.0 <= iou <= 1.0) or (r.source in ("box-rect", "points-disc")
                                                                  and iou is None)
        assert [r.source for r in fresh_sam.segment(photo, **kwargs)] == [r.source for r in regions]


def test_region_constructors_use_the_segmenter(fresh_sam, photo):
    size = (photo.height, photo.width)
    by_box = Region.from_box([10, 20, 200, 240], size, image=photo, segmenter=fresh_sam, label="thing")
    by_points = Region.from_points([[100, 120], [50, 60]], size, labels=[1, 0], image=photo, segmenter=fresh_sam)
    assert by_box.mask.shape == size and by_box.label == "thing"
    assert by_points.mask.shape == size


def test_image_embedding_is_computed_once_per_image(fresh_sam, photo, real_image):
    calls = _count_calls(fresh_sam.model.vision_encoder)
    fresh_sam.segment(photo, boxes=[[10, 20, 200, 240]])
    fresh_sam.segment(real_image, points=[[[100, 120]]])  # same pixels given as a path
    fresh_sam.segment(np.asarray(photo), boxes=[[0, 0, 50, 50]])
    assert len(calls) == 1
    fresh_sam.segment(photo.rotate(90, expand=True), boxes=[[0, 0, 50, 50]])
    assert len(calls) == 2
    fresh_sam.reset_image()
    fresh_sam.segment(photo, boxes=[[10, 20, 200, 240]])
    assert len(calls) == 3


def test_multimask_policy(fresh_sam, photo):
    seen: list[bool] = []
    fresh_sam.model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw["multimask_output"]),
                                              with_kwargs=True)
    fresh_sam.segment(photo, points=[[[100, 120]]])                # one click: ambiguous → 3 masks, best IoU
    fresh_sam.segment(photo, boxes=[[10, 20, 200, 240]])            # box → single-mask output
    fresh_sam.segment(photo, points=[[[100, 120]], [[5, 5], [9, 9]]])  # mixed: one call per mode
    fresh_sam.segment(photo, boxes=[[10, 20, 200, 240]], multimask=True)
    assert seen == [True, False, True, False, True]


def _blind(sam: SamSegmenter) -> SamSegmenter:
    """Make SAM predict all-zero mask logits, i.e. empty masks."""
    with torch.no_grad():
        for p in sam.model.mask_decoder.output_hypernetworks_mlps.parameters():
            p.zero_()
    return sam


def test_empty_sam_masks_fall_back_and_are_flagged(fresh_sam, photo):
    sam = _blind(fresh_sam)
    regions = sam.segment(photo, boxes=[[10, 20, 200, 240]], points=None)
    assert regions[0].source == "box-rect" and regions[0].box == (10, 20, 200, 240) and regions[0].score is None
    regions = sam.segment(photo, points=[[[100, 120]]])
    assert regions[0].source == "points-disc" and regions[0].mask[120, 100]


def test_detect_with_empty_sam_masks_keeps_label_and_score(tiny_dino_dir, tiny_sam_dir, photo):
    sam = _blind(SamSegmenter.from_pretrained(str(tiny_sam_dir), device="cpu"))
    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=sam, device="cpu")
    regions = det.detect(photo, PHRASES, box_threshold=0.0, text_threshold=0.0, max_regions=3)
    assert [r.source for r in regions] == ["box-rect"] * 3
    assert set(regions.labels) <= set(PHRASES) and all(s is not None for s in regions.scores)


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "boxes and/or points"),
    (dict(boxes=[]), "at least one prompt"),
    (dict(boxes=[[10, 10, 5, 20]]), "empty or inverted"),
    (dict(boxes=[[-1, 0, 5, 5]]), "outside the image"),
    (dict(boxes=[[0, 0, 5]]), "4 numbers"),
    (dict(boxes=[[0, 0, float("nan"), 5]]), "non-finite"),
    (dict(points=[[100, 120]]), "one list per region"),
    (dict(points=[[[100, 120]]], point_labels=[[1, 0]]), "one 1 .* per point"),
    (dict(points=[[[100, 120]]], point_labels=[[2]]), "one 1 .* per point"),
    (dict(points=[[[100, 120]]], point_labels=[[1], [1]]), "one per region"),
    (dict(points=[[[10000, 5]]]), "outside the image"),
    (dict(boxes=[[0, 0, 5, 5]], points=[[[1, 1]], [[2, 2]]]), "one of each per region"),
])
def test_segment_input_errors(fresh_sam, photo, kwargs, message):
    with pytest.raises(RegionError, match=message):
        fresh_sam.segment(photo, **kwargs)


def test_detector_segment_without_sam(box_detector, photo):
    assert box_detector.segment(photo, boxes=[[1, 2, 30, 40]])[0].source == "box-rect"
    assert box_detector.segment(photo, points=[[[5, 5]]])[0].source == "points-disc"
    with pytest.raises(InputError, match="needs SAM"):
        box_detector.segment(photo, boxes=[[1, 2, 30, 40]], points=[[[5, 5]]])


# ----------------------------------------------------------------------------- overlay
def test_draw_overlay(detector, photo):
    regions = detector.detect(photo, PHRASES, box_threshold=0.0, text_threshold=0.0, max_regions=3)
    out = draw_overlay(photo, regions)
    assert out.mode == "RGB" and out.width >= photo.width and out.height > photo.height
    top = np.asarray(out)[: photo.height, : photo.width]
    assert (top[regions[0].mask] != np.asarray(photo)[regions[0].mask]).any()
    assert len({region_color(i) for i in range(20)}) == 20
    with pytest.raises(RegionError, match="labels has 1 entries for 3 regions"):
        draw_overlay(photo, regions, labels=["x"])
    assert draw_overlay(photo, Regions()).height > photo.height  # legend says "no regions"
    json.dumps(region_color(0))  # plain ints
