"""Grounding under concurrent tool calls: the tiny Grounding DINO + SAM called from 8 threads at once
give the same results as sequential calls, each image is embedded by SAM once, and a user box
refined by SAM carries no detector score."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from gar_tool.cache import image_key
from gar_tool.grounding import GroundingDetector, SamSegmenter
from gar_tool.tools import GARToolkit, ImageInputConfig
from grounding_fixtures import real_image, tiny_dino_dir, tiny_sam_dir  # noqa: F401  (session fixtures)
from tools_support import FakeGAR, b64, png_bytes, rgb


@pytest.fixture(scope="module")
def detector(tiny_dino_dir, tiny_sam_dir):  # noqa: F811
    sam = SamSegmenter.from_pretrained(str(tiny_sam_dir), device="cpu", dtype="float32", cache_size=8)
    return GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=sam, device="cpu", dtype="float32")


def _signature(regions):
    return [(r.label, None if r.score is None else round(r.score, 5), r.source, tuple(r.box),
             int(r.mask.sum())) for r in regions]


def test_concurrent_detect_and_segment_match_sequential(detector):
    images = [Image.fromarray(rgb(90 + 7 * i, 120, seed=i)) for i in range(4)]
    phrases = "a dog. a cat. a red ball. the sky. a tree. a big car."  # several chunks on the tiny detector
    jobs = [(i % 4, kind) for i in range(16) for kind in ("detect", "segment")]

    def run(job):
        i, kind = job
        if kind == "detect":
            return _signature(detector.detect(images[i], phrases, box_threshold=0.0, max_regions=5))
        return _signature(detector.segmenter.segment(images[i], boxes=[[5, 5, 60, 70]], points=[[[20, 30]]]))

    sequential = {job: run(job) for job in jobs[:8]}
    detector.segmenter.reset_image()
    calls: list[int] = []
    lock = threading.Lock()

    def count(*_):
        with lock:
            calls.append(1)
    encoder = detector.segmenter.model.vision_encoder
    handle = encoder.register_forward_hook(count)
    slow = encoder.register_forward_pre_hook(lambda *_: time.sleep(0.05))  # widen the race window
    try:
        barrier = threading.Barrier(8)

        def same_image(_):  # 8 threads ask for image 0's embedding at the same moment
            barrier.wait(timeout=30)
            return run((0, "segment"))

        with ThreadPoolExecutor(max_workers=8) as pool:
            first = list(pool.map(same_image, range(8)))
            assert len(calls) == 1  # embedded once; the other threads waited for it
            slow.remove()
            results = list(pool.map(lambda job: (job, run(job)), jobs))
    finally:
        handle.remove()
        slow.remove()
    assert first == [sequential[(0, "segment")]] * 8
    for job, sig in results:
        assert sig == sequential[job], job
    assert len(calls) == len(images)  # one SAM image embedding per image, however many threads asked


def test_one_image_key_for_every_cache():
    arr = rgb(30, 40, seed=9)
    img = Image.fromarray(arr)
    key = image_key(img)
    assert key == image_key(arr) == image_key(img.convert("RGBA")) and len(key) == 64
    assert image_key(Image.fromarray(rgb(30, 40, seed=8))) != key
    assert image_key(Image.fromarray(arr.reshape(40, 30, 3))) != key  # same bytes, other shape
    from gar_tool.tools.store import compute_image_id

    assert compute_image_id(img) == "img_" + key[:12]
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        image_key(arr.astype(np.float32))


def test_user_box_refined_by_sam_has_no_detector_score(detector):
    kit = GARToolkit(FakeGAR(), segmenter=detector.segmenter, inputs=ImageInputConfig(allowed_roots=[]))
    image = b64(png_bytes(rgb(60, 80, seed=4)))
    out = kit.call("gar_describe", {"image": image, "region": {"box": [5, 5, 50, 40]}}).structured()
    assert out["region"]["source"] in ("sam", "box-rect") and out["region"]["score"] is None
