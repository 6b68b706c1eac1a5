"""The SAM 2 video tracker on a tiny random checkpoint in the hub's layout.

A random SAM 2 cannot follow an object by itself, so tracking *quality* is not tested here. What is
tested is everything around the model, where the expected result is known:

* mask prompts on every sampled frame: SAM 2 turns a mask prompt into that frame's output, so the
  masks coming back must follow the moving square frame by frame (a frame mix-up, a wrong resize
  or a transposed size would not);
* an empty mask prompt → SAM 2's object score is negative there → the frame is reported absent;
* a single prompt on a middle frame is propagated to every frame in both directions, the prompt
  frame keeping the caller's exact mask;
* box / points / phrase prompts reach SAM 2 as prompts; bad prompts fail with one clear error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gar_tool.errors import InputError, ModelNotFoundError, RegionError
from gar_tool.testing.video import square_box
from gar_tool.video.decode import load_clip
from gar_tool.video.tracker import FramePrompt, Sam2VideoTracker
from grounding_fixtures import tiny_dino_dir, tiny_sam_dir  # noqa: F401  (session fixtures)
from video_fixtures import N_SOURCE, SIDE, SIZE, iou, square_clip, tiny_sam2_dir, tiny_tracker  # noqa: F401


@pytest.fixture(scope="module")
def clip(square_clip):
    return load_clip(square_clip.mp4, 6)


def _truth(square_clip, clip):
    return [square_clip.masks[i] for i in clip.source_indices]


def test_checkpoint_layout(tiny_sam2_dir):
    names = {p.name for p in tiny_sam2_dir.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "preprocessor_config.json",
            "video_preprocessor_config.json"} <= names  # the released repositories' layout
    assert json.loads((tiny_sam2_dir / "config.json").read_text())["model_type"] == "sam2_video"
    with pytest.raises(ModelNotFoundError, match="SAM 2 video tracker .*missing.: no such checkpoint directory"):
        Sam2VideoTracker.from_pretrained(str(tiny_sam2_dir / "missing"))


def test_mask_prompts_on_every_frame_follow_the_square(tiny_tracker, square_clip, clip):
    truth = _truth(square_clip, clip)
    prop = tiny_tracker.propagate(clip, [FramePrompt(i, mask=m) for i, m in enumerate(truth)])
    for i, mask in enumerate(prop.masks):
        assert mask.shape == SIZE and prop.appears(i)
        assert iou(mask, truth[i]) > 0.75  # SAM 2 works at 64 px and 16 px low-res: not pixel exact
        others = [iou(mask, t) for j, t in enumerate(truth) if j != i]
        assert max(others) < 0.5  # it is *this* frame's square, not a neighbour's
    xs = [np.nonzero(m.any(0))[0].mean() for m in prop.masks]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 40  # left to right, as the square moves


def test_empty_mask_prompt_is_absent(tiny_tracker, square_clip, clip):
    truth = _truth(square_clip, clip)
    prompts = [FramePrompt(i, mask=m if i != 3 else np.zeros(SIZE, bool)) for i, m in enumerate(truth)]
    prop = tiny_tracker.propagate(clip, prompts)
    assert [prop.appears(i) for i in range(len(clip))] == [True, True, True, False, True, True]
    assert prop.scores[3] < 0 < min(s for i, s in enumerate(prop.scores) if i != 3)


def test_one_prompt_propagates_both_ways(tiny_tracker, square_clip, clip):
    truth = _truth(square_clip, clip)
    track = tiny_tracker.track(clip, truth[3], 3, label="square")
    assert len(track) == len(clip) and track.label == "square"
    assert track.states[3] == "given" and np.array_equal(track.regions[3].mask, truth[3])  # exact
    assert set(track.states[:3] + track.states[4:]) <= {"tracked", "absent"}  # SAM 2 ran on every other frame
    assert all(s is not None and 0 <= s <= 1 for s in track.scores)
    for i in track.frames_in("tracked"):
        assert track.regions[i].source == "sam2" and track.regions[i].mask.any()


def test_box_and_points_prompts(tiny_tracker, clip):
    i = 2
    x1, y1, x2, y2 = square_box(clip.source_indices[i], N_SOURCE, SIZE, SIDE)
    for prompt in ({"box": [x1, y1, x2, y2]}, f"box:{x1},{y1},{x2},{y2}",
                   {"points": [[x1 + 5, y1 + 5]], "labels": [1]}, f"points:{x1 + 5},{y1 + 5}"):
        track = tiny_tracker.track(clip, prompt, i)
        assert track.states[i] in ("tracked", "given")
        if track.states[i] == "given":  # SAM 2 found nothing at the prompt: the prompt itself is kept
            assert track.regions[i].source in ("box-rect", "points-disc")


def test_bad_prompts(tiny_tracker, clip):
    with pytest.raises(InputError, match="the prompt frame 6 is outside the clip: it has 6 sampled frames"):
        tiny_tracker.track(clip, {"box": [1, 1, 10, 10]}, 6)
    with pytest.raises(RegionError, match="outside the image"):
        tiny_tracker.track(clip, {"box": [1, 1, 500, 10]}, 0)
    with pytest.raises(RegionError, match="mask size 10x10"):
        tiny_tracker.track(clip, np.ones((10, 10), bool), 0)


def test_phrase_grounded_on_a_key_frame(tiny_tracker, clip, tiny_dino_dir, tiny_sam_dir):
    from gar_tool.grounding import GroundingDetector

    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=str(tiny_sam_dir), device="cpu")
    track = tiny_tracker.track_phrase(clip, "a ball", 1, det, box_threshold=0.0)
    assert track.label == "a ball" and track.states[1] in ("given", "tracked") and len(track) == len(clip)
    with pytest.raises(RegionError, match="no region found for 'a ball' on frame 1"):
        tiny_tracker.track_phrase(clip, "a ball", 1, det, box_threshold=1.0)
