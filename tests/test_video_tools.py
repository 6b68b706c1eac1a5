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


# --------------------------------------------------------------------------- through the toolkit
@pytest.fixture()
def video_kit(tiny_gar, tiny_tracker, square_clip):
    """A micro-batched toolkit over the tiny GAR with the tiny SAM 2 tracker, paths under the clip's
    folder."""
    from gar_tool import GAR
    from gar_tool.gar.batching import MicroBatcher
    from gar_tool.tools import GARToolkit, ImageInputConfig

    batcher = MicroBatcher(GAR(tiny_gar.model, tiny_gar.processor), max_wait=0.0)
    kit = GARToolkit(batcher, tracker=tiny_tracker, max_new_tokens=3,
                     inputs=ImageInputConfig(allowed_roots=[square_clip.mp4.parent]))
    yield kit
    batcher.close()


def _box(i: int, n: int = 6) -> list[int]:
    return list(square_box(uniform_indices(N_SOURCE, n)[i], N_SOURCE, SIZE, SIDE))


def test_track_then_describe_and_relate_by_ids(video_kit, square_clip):
    assert "gar_track" in video_kit.available_tools()
    res = video_kit.call("gar_track", {"video": str(square_clip.mp4), "frame": 2, "region": {"box": _box(2)},
                                       "frames": 6})
    out = res.artifact
    assert out.track.id == "t1" and out.clip.clip_id.startswith("vid_") and out.clip.frames == 6
    assert [f.frame for f in out.track.frames] == list(range(6))
    assert out.track.frames[2].state in ("given", "tracked") and out.track.frames[2].rle is not None
    assert res.content.startswith("Track t1 (") and f"frame 2 of {out.clip.clip_id}" in res.content
    assert res.overlay_png.startswith(b"\x89PNG")
    clip_id = out.clip.clip_id
    d = video_kit.call("gar_describe", {"video": clip_id, "track": "t1"})
    assert d.artifact.track.id == "t1" and d.artifact.clip.clip_id == clip_id and d.artifact.region is None
    assert d.content.startswith("t1 (") and f"in {clip_id}: " in d.content
    masks = [rle_encode(square_clip.masks[i]) for i in uniform_indices(N_SOURCE, 6)]
    masks[0] = "absent"
    r = video_kit.call("gar_relate", {"video": clip_id, "tracks": ["t1", {"frames": masks}],
                                      "question": "Is <Prompt0> the same as <Prompt1>?"})
    assert [t.id for t in r.artifact.tracks] == ["t1", "t2"]  # the inline masks were stored as t2
    assert r.artifact.tracks[1].frames[0].state == "absent" and r.artifact.tracks[1].frames[1].state == "given"
    assert [b.region_id for b in r.artifact.chunks[0].regions] == ["t1", "t2"] and "<Prompt0> = t1 (" in r.content


def test_video_tool_errors(video_kit, square_clip):
    def err(name, args):
        with pytest.raises((ToolInputError, ToolFailure)) as exc:
            video_kit.call(name, args)
        return str(exc.value)

    assert "outside the clip: it has 6 sampled frames" in err(
        "gar_track", {"video": str(square_clip.mp4), "frame": 6, "region": {"box": _box(0)}, "frames": 6})
    assert "give exactly one of region" in err("gar_track", {"video": str(square_clip.mp4)})
    bad = square_clip.mp4.parent / "bad.mp4"
    bad.write_bytes(b"no video here" * 20)
    assert "is not a readable video" in err("gar_track", {"video": str(bad), "region": {"box": [0, 0, 5, 5]}})
    clip_id = video_kit.call("gar_track", {"video": str(square_clip.mp4), "region": {"box": _box(0)},
                                           "frames": 6}).artifact.clip.clip_id
    assert "has 3 per-frame masks but the clip has 6 sampled frames" in err(
        "gar_describe", {"video": clip_id, "track": {"frames": [rle_encode(m) for m in square_clip.masks[:3]]}})
    assert "frames: Input should be less than or equal to 32" in err(
        "gar_track", {"video": str(square_clip.mp4), "region": {"box": _box(0)}, "frames": 33})
    assert "give either image and region" in err("gar_describe", {"image": "x.png", "video": clip_id, "track": "t1"})
    assert "track 't7' is unknown" in err("gar_describe", {"video": clip_id, "track": "t7"})


def test_without_a_tracker(tiny_gar, square_clip):
    from gar_tool.tools import GARToolkit, ImageInputConfig

    kit = GARToolkit(tiny_gar, max_new_tokens=2, inputs=ImageInputConfig(allowed_roots=[square_clip.mp4.parent]))
    assert "gar_track" not in kit.available_tools()
    with pytest.raises(ToolFailure, match="no video tracker"):
        kit.call("gar_track", {"video": str(square_clip.mp4), "region": {"box": _box(0)}})
    masks = [rle_encode(square_clip.masks[i]) for i in uniform_indices(N_SOURCE, 4)]
    res = kit.call("gar_describe", {"video": str(square_clip.mp4), "frames": 4, "track": {"frames": masks}})
    assert res.artifact.track.summary == "given: #0-#3" and res.artifact.finish_reason in ("stop", "length")


# --------------------------------------------------------------------------- MCP and HTTP
def _bad_inputs(root, masks):
    """The five kinds of bad video input, as (tool, arguments, what the error says)."""
    (root / "bad.mp4").write_bytes(b"no video here" * 20)
    (root / "empty").mkdir(exist_ok=True)
    box = {"box": [0, 0, 5, 5]}
    return [
        ("gar_track", {"video": "bad.mp4", "region": box}, "is not a readable video"),
        ("gar_track", {"video": "empty", "region": box}, "holds no image files"),
        ("gar_describe", {"video": "square.mp4", "frames": 6, "track": {"frames": masks[:3]}},
         "has 3 per-frame masks but the clip has 6 sampled frames"),
        ("gar_track", {"video": "square.mp4", "frames": 6, "frame": 6, "region": box},
         "frame 6 is outside the clip: it has 6 sampled frames"),
        ("gar_track", {"video": "square.mp4", "frames": 33, "region": box}, "less than or equal to 32"),
    ]


def test_mcp_runs_the_video_tools_and_reports_bad_input(video_kit, square_clip):
    from gar_tool.integrations.mcp import run_tool

    res = run_tool(video_kit, "gar_track", {"video": str(square_clip.mp4), "region": {"box": _box(0)}, "frames": 6})
    assert not res.is_error and res.structured_content["track"]["id"].startswith("t")
    assert [b.type for b in res.content] == ["text", "image"]  # the contact sheet
    clip_id = res.structured_content["clip"]["clip_id"]
    d = run_tool(video_kit, "gar_describe", {"video": clip_id, "track": res.structured_content["track"]["id"]})
    assert not d.is_error and d.structured_content["clip"]["clip_id"] == clip_id
    masks = [rle_encode(square_clip.masks[i]) for i in uniform_indices(N_SOURCE, 6)]
    for tool, args, needle in _bad_inputs(square_clip.mp4.parent, masks):
        bad = run_tool(video_kit, tool, args)
        assert bad.is_error and len(bad.content) == 1 and needle in bad.content[0].text, (tool, args)
        assert "Traceback" not in bad.content[0].text


def test_http_serves_the_video_tools_and_reports_bad_input(video_kit, square_clip):
    import anyio
    import httpx

    from gar_tool.integrations.http.server import create_app

    app = create_app(video_kit)
    masks = [rle_encode(square_clip.masks[i]) for i in uniform_indices(N_SOURCE, 6)]
    cases = _bad_inputs(square_clip.mp4.parent, masks)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
            ok = await c.post("/v1/track", json={"video": square_clip.mp4.name, "region": {"box": _box(0)}, "frames": 6})
            bad = [await c.post("/v1/" + tool.removeprefix("gar_"), json=args) for tool, args, _ in cases]
            return ok, bad

    ok, bad = anyio.run(go)
    assert ok.status_code == 200 and ok.json()["output"]["track"]["id"].startswith("t")
    for resp, (tool, args, needle) in zip(bad, cases):
        err = resp.json()["error"]
        assert resp.status_code == 422 and err["type"] == "invalid_input" and needle in err["message"], (tool, err)


def test_an_image_only_backend_says_so(square_clip):
    from gar_tool.tools import GARToolkit, ImageInputConfig
    from tools_support import FakeGAR

    kit = GARToolkit(FakeGAR(), inputs=ImageInputConfig(allowed_roots=[square_clip.mp4.parent]))
    masks = [rle_encode(square_clip.masks[i]) for i in uniform_indices(N_SOURCE, 4)]
    with pytest.raises(ToolFailure, match=r"this GAR backend \(FakeGAR\) does not answer about videos"):
        kit.call("gar_describe", {"video": str(square_clip.mp4), "frames": 4, "track": {"frames": masks}})


def test_servers_plan_gar_track_only_with_a_tracker():
    from gar_tool.integrations.serving import planned_tools

    assert "gar_track" not in planned_tools("gar", None) and "gar_track" not in planned_tools("gar", None, "none")
    assert planned_tools("gar", None, "sam2") == ["gar_describe", "gar_relate", "gar_measure", "gar_zoom", "gar_track"]
