"""GARToolkit: describe / relate / ground / measure over fake and tiny real components."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gar_tool.errors import PromptError
from gar_tool.regions.rle import rle_decode
from gar_tool.tools import GARToolkit, ImageInputConfig, SessionStore, ToolFailure, ToolInputError, ToolResult
from grounding_fixtures import tiny_dino_dir  # noqa: F401
from tools_support import FakeDetector, FakeGAR, FakeSegmenter, b64, png_bytes, rgb, write_png

H, W = 60, 80
ARR = rgb(H, W, 7)
IMAGE = b64(png_bytes(ARR))
BOXES = [[2 + 11 * i, 5, 10 + 11 * i, 20 + i] for i in range(7)]  # 7 disjoint boxes, left to right


def kit(**kw) -> GARToolkit:
    kw.setdefault("gar", FakeGAR())
    return GARToolkit(inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=3, **kw)


def decode_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# ------------------------------------------------------------------------------------ describe
def test_describe_stores_image_and_region_and_chains():
    k = kit()
    res = k.describe({"image": IMAGE, "region": {"box": [10, 10, 30, 40]}})
    out = res.artifact
    assert out.region.id == "r1" and out.region.box == [10, 10, 30, 40] and out.region.area == 600
    assert out.region.source == "box-rect" and rle_decode(out.region.rle.model_dump()).sum() == 600
    assert out.description == "region of 600 px" and out.finish_reason == "stop"
    assert res.content == f"r1 (box [10, 10, 30, 40]) in {out.image_id}: region of 600 px"
    overlay = decode_png(res.overlay_png)
    assert overlay.format == "PNG" and overlay.width >= W and overlay.height > H
    # chain: by image_id and region id; the same inline box maps to the same id
    again = k.describe({"image": out.image_id, "region": "r1", "instruction": "What colour is it?"})
    assert again.artifact.region.id == "r1" and k.gar.calls[-1][1]["instruction"] == "What colour is it?"
    assert k.describe({"image": out.image_id, "region": {"box": [10, 10, 30, 40]}}).artifact.region.id == "r1"
    assert k.store.stats()["regions"] == 1


def test_describe_with_tiny_gar(tiny_gar):
    k = GARToolkit(tiny_gar, inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=3)
    res = k.describe({"image": IMAGE, "region": {"polygon": [[5, 5], [60, 8], [30, 50]]}})
    direct = tiny_gar.describe(ARR, {"polygon": [[5, 5], [60, 8], [30, 50]]}, max_new_tokens=3)
    assert res.artifact.description == direct.text and res.artifact.finish_reason == direct.finish_reason
    assert res.artifact.region.source == "polygon" and res.content.startswith("r1 (box [")


def test_segmenter_turns_box_prompts_into_masks():
    seg = FakeSegmenter()
    res = kit(segmenter=seg).describe({"image": IMAGE, "region": {"box": [10, 10, 30, 40]}})
    assert seg.calls == 1 and res.artifact.region.source == "sam" and res.artifact.region.box == [11, 11, 29, 39]
    det = FakeDetector({}, segmenter=seg)
    assert kit(detector=det).segmenter is seg  # the detector's segmenter by default
    assert kit(detector=det, segmenter=False).segmenter is None


# ------------------------------------------------------------------------------------ relate
def test_relate_without_chunking():
    k = kit()
    res = k.relate({"image": IMAGE, "regions": [{"box": BOXES[0]}, {"box": BOXES[1]}],
                    "question": "Is <Prompt1> right of <Prompt0>?"})
    out = res.artifact
    (call,) = k.gar.calls
    assert call[0] == "relate" and call[1]["questions"] == ["Is <Prompt1> right of <Prompt0>?"]
    assert not out.chunked and out.answer == "saw 2: Is <Prompt1> right of <Prompt0>?"
    assert out.answer_with_ids == "saw 2: Is r2 right of r1?"
    assert [r.id for r in out.regions] == ["r1", "r2"]
    assert "<Prompt0> = r1 (box [2, 5, 10, 20])" in res.content and res.content.endswith("Answer: saw 2: Is r2 right of r1?")


def test_relate_chunks_seven_regions_in_one_batched_call():
    k = kit(detector=FakeDetector({"a dog": [(BOXES[5], 0.9)]}))
    dog = k.ground({"image": IMAGE, "phrases": "a dog"}).artifact.regions[0].id  # r1, labelled
    regions = [{"box": b} for b in BOXES[:5]] + [dog, {"box": BOXES[6]}]
    q = "Which of " + ", ".join(f"<Prompt{i}>" for i in range(7)) + " is largest?"
    res = k.relate({"image": IMAGE, "regions": regions, "question": q})
    out = res.artifact
    (call,) = [c for c in k.gar.calls if c[0] == "relate"]  # one batched GAR call
    assert call[1]["questions"] == [
        "Which of <Prompt0>, <Prompt1>, <Prompt2>, <Prompt3>, another region, a dog, another region is largest?",
        "Which of another region, another region, another region, another region, <Prompt0>, <Prompt1>, <Prompt2> "
        "is largest?"]
    assert [len(r) for r in call[1]["regions"]] == [4, 3] and len(call[1]["images"]) == 2
    ids = [r.id for r in out.regions]
    assert ids == ["r2", "r3", "r4", "r5", "r6", "r1", "r7"]
    assert [b.region_id for b in out.chunks[1].regions] == ["r6", "r1", "r7"]
    assert [b.prompt for b in out.chunks[1].regions] == ["<Prompt0>", "<Prompt1>", "<Prompt2>"]
    assert np.array_equal(call[1]["regions"][1][1].mask, k.store.get_region("r1").mask)
    assert out.chunked and out.answer.splitlines()[1] == (
        "Part 2 of 2 (<Prompt4>, <Prompt5>, <Prompt6>): saw 3: Which of another region, another region, another "
        "region, another region, <Prompt4>, <Prompt5>, <Prompt6> is largest?")
    assert out.chunks[1].answer_with_ids.endswith("r6, r1, r7 is largest?")
    assert "asked in 2 parts" in res.content and "Part 2 of 2 (r6, r1, r7)" in res.content


def test_relate_chunked_with_tiny_gar(tiny_gar, monkeypatch):
    calls = []
    real = tiny_gar.answer

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tiny_gar, "answer", spy)
    k = GARToolkit(tiny_gar, inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=2)
    q = "How are " + ", ".join(f"<Prompt{i}>" for i in range(7)) + " arranged?"
    out = k.relate({"image": IMAGE, "regions": [{"box": b} for b in BOXES], "question": q}).artifact
    assert len(calls) == 1 and len(calls[0][0]) == 2  # one batched forward with both chunk questions
    assert out.chunked and [len(c.regions) for c in out.chunks] == [4, 3]
    assert all(c.finish_reason in ("stop", "length") for c in out.chunks)
    assert [r.id for r in out.regions] == [f"r{i}" for i in range(1, 8)]


def test_relate_through_a_micro_batcher(tiny_gar):
    from gar_tool.gar.batching import MicroBatcher

    batcher = MicroBatcher(tiny_gar, max_batch=8, max_wait=0.05)
    try:
        k = GARToolkit(batcher, inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=2)
        q = "How are " + ", ".join(f"<Prompt{i}>" for i in range(7)) + " arranged?"
        out = k.relate({"image": IMAGE, "regions": [{"box": b} for b in BOXES], "question": q}).artifact
        assert out.chunked and batcher.batches_run == 1  # both chunks in one batch
        d = k.describe({"image": out.image_id, "region": "r3"}).artifact
        direct = tiny_gar.describe(ARR, {"box": BOXES[2]}, max_new_tokens=2)
        assert d.description == direct.text
    finally:
        batcher.close()


@pytest.mark.parametrize("question, message", [
    ("What is this?", "names no region"),
    ("Is <Prompt0> near <Prompt3>?", "names <Prompt3> but only 2 region"),
    ("Describe <Prompt1>.", "<Prompt0> are never named"),
])
def test_relate_question_mismatch_is_an_input_error(question, message):
    k = kit()
    with pytest.raises(ToolInputError, match=message) as info:
        k.relate({"image": IMAGE, "regions": [{"box": BOXES[0]}, {"box": BOXES[1]}], "question": question})
    assert info.value.tool == "gar_relate" and k.gar.calls == []


# ------------------------------------------------------------------------------------ errors
def test_input_errors_and_failures():
    k = kit()
    first = k.describe({"image": IMAGE, "region": {"box": [0, 0, 5, 5]}}).artifact
    other = b64(png_bytes(rgb(H, W, 8)))
    with pytest.raises(ToolInputError, match="region 'r1' belongs to image"):
        k.describe({"image": other, "region": "r1"})
    with pytest.raises(ToolInputError, match=r"region: box \(0.0, 0.0, 100.0, 5.0\) lies outside the image"):
        k.describe({"image": first.image_id, "region": {"box": [0, 0, 100, 5]}})
    with pytest.raises(ToolInputError, match="does not match the image"):
        k.measure({"image": first.image_id, "regions": [{"rle": {"size": [2, 2], "counts": [0, 4]}}]})
    with pytest.raises(ToolInputError, match="invalid arguments: region: a region given as a string"):
        k.call("gar_describe", {"image": IMAGE, "region": "dog"})
    with pytest.raises(ToolInputError, match="unknown tool 'gar_fly'"):
        k.call("gar_fly", {})
    with pytest.raises(ToolFailure, match="gar_describe is not available: this toolkit has no GAR model"):
        GARToolkit().describe({"image": IMAGE, "region": "r1"})
    with pytest.raises(ToolFailure, match="gar_ground is not available"):
        k.ground({"image": IMAGE, "phrases": "a dog"})
    broken = kit(gar=FakeGAR(fail=RuntimeError("CUDA out of memory")))
    with pytest.raises(ToolFailure, match="gar_describe: the model failed \\(RuntimeError: CUDA out of memory\\)") as info:
        broken.describe({"image": IMAGE, "region": {"box": [0, 0, 5, 5]}})
    assert not info.value.retryable and isinstance(info.value.__cause__, RuntimeError)
    picky = kit(gar=FakeGAR(fail=PromptError("instruction must not be empty")))
    with pytest.raises(ToolInputError, match="instruction must not be empty") as info:
        picky.describe({"image": IMAGE, "region": {"box": [0, 0, 5, 5]}, "instruction": " "})
    assert info.value.retryable


# ------------------------------------------------------------------------------------ ground / measure
def test_ground_with_fake_detector_then_chain():
    det = FakeDetector({"a dog": [(BOXES[0], 0.9), (BOXES[2], 0.3)], "a ball": [(BOXES[4], 0.6)]})
    k = kit(detector=det)
    res = k.ground({"image": IMAGE, "phrases": "a dog. a ball.", "box_threshold": 0.25})
    out = res.artifact
    assert det.calls[-1] == dict(phrases=["a dog", "a ball"], box_threshold=0.25, text_threshold=0.25, max_regions=None)
    assert [(r.id, r.label, r.score) for r in out.regions] == [("r1", "a dog", 0.9), ("r2", "a ball", 0.6),
                                                               ("r3", "a dog", 0.3)]
    assert res.content.startswith(f"Found 3 region(s) for 'a dog', 'a ball' in {out.image_id}: r1 (a dog, score 0.90")
    assert k.describe({"image": out.image_id, "region": "r2"}).artifact.region.label == "a ball"
    capped = k.ground({"image": out.image_id, "phrases": ["a dog"], "max_regions": 1}).artifact
    assert [r.id for r in capped.regions] == ["r4"]  # detections always get fresh ids
    none = k.ground({"image": out.image_id, "phrases": "a cat"})
    assert none.artifact.regions == [] and "No region found for 'a cat'" in none.content
    assert decode_png(none.overlay_png).height > H
    with pytest.raises(ToolInputError, match="no phrase"):
        k.ground({"image": out.image_id, "phrases": " . "})


def test_ground_with_tiny_grounding_dino(tiny_dino_dir):
    from gar_tool.grounding import GroundingDetector

    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), device="cpu", dtype="float32")
    k = GARToolkit(detector=det, inputs=ImageInputConfig(allowed_roots=[]))
    assert k.available_tools() == ["gar_ground", "gar_measure", "gar_zoom"]
    out = k.ground({"image": IMAGE, "phrases": "a dog. a ball.", "box_threshold": 0.0, "max_regions": 3}).artifact
    assert 1 <= len(out.regions) <= 3 and [r.id for r in out.regions] == [f"r{i + 1}" for i in range(len(out.regions))]
    for r in out.regions:
        assert r.label in ("a dog", "a ball") and 0 <= r.score <= 1 and r.rle.size == [H, W]
    m = k.measure({"image": out.image_id, "regions": [r.id for r in out.regions]}).artifact
    assert [g.area_px for g in m.geometry] == [r.area for r in out.regions]


def test_measure_exact_values_and_text():
    k = GARToolkit(inputs=ImageInputConfig(allowed_roots=[]))
    assert k.available_tools() == ["gar_measure", "gar_zoom"]
    res = k.measure({"image": IMAGE, "regions": [{"box": [0, 0, 40, 30]}, {"box": [10, 10, 20, 20]},
                                                 {"polygon": [[60, 40], [79, 40], [79, 59], [60, 59]]}]})
    out = res.artifact
    assert out.image_size.width == W and out.image_size.height == H
    big, small = out.geometry[0], out.geometry[1]
    assert (big.area_px, big.area_fraction, big.centroid) == (1200, 0.25, [20, 15])
    assert (small.area_px, small.box, small.centroid) == (100, [10, 10, 20, 20], [15, 15])
    p01 = out.pairs[0]
    assert (p01.a, p01.b, p01.horizontal, p01.vertical, p01.dx, p01.dy) == ("r1", "r2", "right_of", "same_y", -5, 0)
    assert (p01.intersection_px, p01.iou, p01.a_inside_b, p01.b_inside_a) == (100, round(100 / 1200, 4), 0.0833, 1.0)
    assert out.left_to_right == ["r2", "r1", "r3"] and out.top_to_bottom == ["r1", "r2", "r3"]
    assert "r1: area 1200 px (25.00% of image), box [0, 0, 40, 30], centroid (20, 15)" in res.content
    assert "r1 vs r2 (centroids): r1 is 5 px right of and level in y with r2" in res.content
    assert "100.0% of r2 inside r1" in res.content


def test_result_round_trips_through_json():
    res = kit().describe({"image": IMAGE, "region": {"box": [10, 10, 30, 40]}})
    data = res.to_dict(include_overlay=True)
    back = ToolResult.from_dict(data)
    assert back.artifact == res.artifact and back.content == res.content and back.overlay_png == res.overlay_png


def test_shared_store_and_eviction_reach_the_tools():
    store = SessionStore(max_images=1)
    k = kit(store=store)
    first = k.describe({"image": IMAGE, "region": {"box": [0, 0, 5, 5]}}).artifact
    k.describe({"image": b64(png_bytes(rgb(H, W, 9))), "region": {"box": [0, 0, 5, 5]}})
    with pytest.raises(ToolInputError, match="has expired"):
        k.describe({"image": first.image_id, "region": "r1"})


def test_paths_go_through_the_allowed_roots(tmp_path):
    write_png(tmp_path / "a.png", ARR)
    k = GARToolkit(FakeGAR(), inputs=ImageInputConfig(allowed_roots=[tmp_path]))
    assert k.describe({"image": "a.png", "region": {"points": [[5, 5]]}}).artifact.region.source == "points-disc"
    with pytest.raises(ToolInputError, match="outside the allowed directories"):
        k.describe({"image": "../a.png", "region": {"points": [[5, 5]]}})


def test_importing_tools_stays_light():
    code = ("import sys, gar_tool.tools, gar_tool.integrations; "
            "bad = [m for m in ('torch', 'transformers', 'langchain_core') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_from_checkpoint_directories(tiny_ckpt, tiny_dino_dir):
    k = GARToolkit.load(str(tiny_ckpt), detector=str(tiny_dino_dir), device="cpu", dtype="float32",
                        inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=2)
    assert k.available_tools() == ["gar_describe", "gar_relate", "gar_ground", "gar_measure", "gar_zoom"]
    assert k.segmenter is None and k.max_new_tokens == 2
    assert GARToolkit.load(None).available_tools() == ["gar_measure", "gar_zoom"]


def test_measure_text_is_capped_but_the_artifact_is_complete():
    k = GARToolkit(inputs=ImageInputConfig(allowed_roots=[]))
    boxes = [{"box": [i * 8, 0, i * 8 + 5, 5]} for i in range(10)]  # 10 regions -> 45 pairs
    res = k.measure({"image": IMAGE, "regions": boxes})
    assert len(res.artifact.pairs) == 45 and res.artifact.left_to_right == [f"r{i}" for i in range(1, 11)]
    assert res.content.count(" vs ") == 36 and "(first 36 of 45 pairs shown" in res.content
    with pytest.raises(ToolInputError, match=r"regions\[1\]: points: need at least one positive"):
        k.measure({"image": IMAGE, "regions": ["r1", {"points": [[3, 3]], "labels": [0]}]})
