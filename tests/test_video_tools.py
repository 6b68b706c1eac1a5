"""The video tools: clip / track store, video inputs, gar_track, gar_describe / gar_relate on clips,
and the same calls through MCP and HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gar_tool.regions.rle import rle_encode
from gar_tool.testing.video import square_box
from gar_tool.tools.errors import ToolFailure, ToolInputError
from gar_tool.tools.video import VideoInputs, VideoStore
from gar_tool.video.clip import uniform_indices
from gar_tool.video.decode import load_clip
from gar_tool.video.track import coerce_track
from video_fixtures import N_SOURCE, SIDE, SIZE, square_clip, tiny_sam2_dir, tiny_tracker  # noqa: F401


def test_store_ids_eviction_and_ownership(square_clip):
    store = VideoStore(max_clips=1)
    a = store.put_clip(load_clip(square_clip.frames, 4))
    assert a.clip_id.startswith("vid_") and store.put_clip(load_clip(square_clip.frames, 4)).clip_id == a.clip_id
    t = store.put_track(a.clip_id, coerce_track([square_clip.masks[i] for i in a.clip.source_indices], a.clip))
    assert t.id == "t1" and store.get_track("t1", a.clip_id) is t
    b = store.put_clip(load_clip(square_clip.frames, 5))  # evicts a and its track
    with pytest.raises(ToolInputError, match="has expired"):
        store.get_clip(a.clip_id)
    with pytest.raises(ToolInputError, match="'t1' has expired"):
        store.get_track("t1", b.clip_id)
    with pytest.raises(ToolInputError, match="'t9' is unknown"):
        store.get_track("t9", b.clip_id)
    t2 = store.put_track(b.clip_id, coerce_track([square_clip.masks[i] for i in b.clip.source_indices], b.clip))
    other = VideoStore()
    c = other.put_clip(b.clip)
    other.put_track(c.clip_id, t2)
    with pytest.raises(ToolInputError, match="belongs to clip"):
        other.get_track("t1", "vid_000000000000")


def test_video_paths_stay_inside_the_allowed_directories(square_clip, tmp_path):
    inputs = VideoInputs(VideoStore(), [square_clip.mp4.parent])
    stored = inputs.resolve(square_clip.mp4.name, 4)  # relative to the first root
    assert len(stored.clip) == 4 and inputs.resolve(stored.clip_id).clip is stored.clip
    with pytest.raises(ToolInputError, match="outside the allowed directories"):
        inputs.resolve(str(tmp_path / "x.mp4"))
    with pytest.raises(ToolInputError, match="outside the allowed directories"):
        inputs.resolve("../" + tmp_path.name + "/x.mp4")
    with pytest.raises(ToolInputError, match="not URLs"):
        inputs.resolve("https://example.com/a.mp4")
    with pytest.raises(ToolInputError, match="clip 'vid_0123456789ab' is unknown"):
        inputs.resolve("vid_0123456789ab")
