"""Region tracks: the per-frame forms callers give, counts checked against the clip, absent frames kept."""

from __future__ import annotations

import numpy as np
import pytest

from gar_tool.errors import InputError, RegionError
from gar_tool.regions.region import Region
from gar_tool.regions.rle import rle_encode
from gar_tool.testing.video import moving_square
from gar_tool.video.decode import load_clip
from gar_tool.video.track import RegionTrack, coerce_track

SIZE = (64, 96)


@pytest.fixture(scope="module")
def clip_and_masks():
    frames, masks = moving_square(12, SIZE, 20)
    clip = load_clip(frames, 4)  # source frames 1, 4, 7, 10
    return clip, masks


def test_per_sampled_frame_rle_with_absent(clip_and_masks):
    clip, masks = clip_and_masks
    rles = [rle_encode(masks[i]) for i in clip.source_indices]
    rles[2] = None  # the caller says: not visible on sampled frame 2
    track = coerce_track(rles, clip)
    assert track.states == ("given", "given", "absent", "given")
    assert track.present == [0, 1, 3] and track.absent == [2]
    for i in track.present:
        assert np.array_equal(track.regions[i].mask, masks[clip.source_indices[i]])
    assert track.summary() == "given: #0-#1, #3; absent: #2"


def test_per_source_frame_masks_are_sampled(clip_and_masks):
    clip, masks = clip_and_masks
    track = coerce_track(list(masks), clip)  # one mask per source frame (12): the sampled 4 are taken
    assert [np.array_equal(track.regions[i].mask, masks[s]) for i, s in enumerate(clip.source_indices)] == [True] * 4


def test_mask_count_must_match(clip_and_masks):
    clip, masks = clip_and_masks
    with pytest.raises(RegionError, match=r"track has 5 per-frame masks but the clip has 4 sampled frames: give 4 .* or 12"):
        coerce_track(list(masks[:5]), clip)


def test_sparse_frames_dict_and_videorefer_entries(clip_and_masks):
    clip, masks = clip_and_masks
    empty = np.zeros(SIZE, dtype=np.uint8)
    track = coerce_track({"frames": {"1": {"segmentation": rle_encode(masks[4])}, 3: empty}, "label": "square"}, clip)
    assert track.states == ("unknown", "given", "unknown", "absent") and track.label == "square"
    with pytest.raises(InputError, match="frame 7 is outside the clip"):
        coerce_track({"frames": {7: rle_encode(masks[0])}}, clip)
    with pytest.raises(RegionError, match="no mask on any frame"):
        coerce_track([None] * 4, clip)


def test_wrong_sizes_and_forms(clip_and_masks):
    clip, masks = clip_and_masks
    small = np.zeros((10, 10), dtype=bool)
    small[2:4, 2:4] = True
    with pytest.raises(RegionError, match="track frame 0: mask size 10x10"):
        coerce_track([small, None, None, None], clip)
    with pytest.raises(RegionError, match="must be a RegionTrack"):
        coerce_track("r1", clip)
    other = RegionTrack((Region(masks[0]),), ("given",))
    with pytest.raises(RegionError, match="has 1 frames but the clip has 4"):
        coerce_track(other, clip)


def test_track_invariants(clip_and_masks):
    clip, masks = clip_and_masks
    r = Region(masks[0])
    with pytest.raises(RegionError, match="state 'absent' cannot have a region"):
        RegionTrack((r,), ("absent",))
    with pytest.raises(RegionError, match="state 'tracked' needs a region"):
        RegionTrack((None,), ("tracked",))
    t = RegionTrack((r, None), ("given", "unknown"), label="sq")
    d = t.as_dict()
    assert d["frames"][0]["box"] == list(r.box) and d["frames"][1] == {
        "frame": 1, "state": "unknown", "box": None, "area": 0, "score": None, "rle": None}
