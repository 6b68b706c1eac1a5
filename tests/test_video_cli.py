"""``gar describe`` / ``gar relate`` on videos, end to end on tiny checkpoints (in process)."""

from __future__ import annotations

import contextlib
import json

import pytest
from PIL import Image

from gar_tool.cli import main
from gar_tool.regions.rle import rle_encode
from gar_tool.testing.video import square_box
from gar_tool.video.clip import uniform_indices
from video_fixtures import N_SOURCE, SIDE, SIZE, square_clip, tiny_sam2_dir  # noqa: F401  (session fixtures)


def _box(frame_of_clip: int, n: int) -> str:
    src = uniform_indices(N_SOURCE, n)[frame_of_clip]
    return "box:" + ",".join(str(v) for v in square_box(src, N_SOURCE, SIZE, SIDE))


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_clip_with_box_on_frame_0(capsys, tiny_ckpt, square_clip, tmp_path):
    sheet = tmp_path / "sheet.png"
    code, out, err = _run(capsys, ["describe", str(square_clip.mp4), "--region", _box(0, 6), "--on-frame", "0",
                                   "--frames", "6", "--model", str(tiny_ckpt), "--max-new-tokens", "4",
                                   "--overlay", str(sheet)])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[2] == "track t1 = <Prompt0>: given: #0; unknown: #1-#5"  # no tracker: known on frame 0 only
    assert len([ln for ln in lines if ln.startswith("  #")]) == 6
    img = Image.open(sheet)
    assert img.width > 3 * 96 and img.height > 2 * 64  # 6 frames in a grid


def test_describe_json_with_tracker(capsys, tiny_ckpt, square_clip, tiny_sam2_dir):
    code, out, _ = _run(capsys, ["describe", str(square_clip.mp4), "--region", _box(2, 6), "--on-frame", "2",
                                 "--frames", "6", "--model", str(tiny_ckpt), "--tracker", str(tiny_sam2_dir),
                                 "--max-new-tokens", "3", "--json"])
    res = json.loads(out)
    assert code == 0 and res["clip"]["frames"] == 6 and res["clip"]["source_indices"] == uniform_indices(N_SOURCE, 6)
    [track] = res["tracks"]
    states = [f["state"] for f in track["frames"]]
    assert len(states) == 6 and states[2] in ("given", "tracked") and set(states) <= {"given", "tracked", "absent"}
    assert all((f["rle"] is None) == (f["state"] == "absent") for f in track["frames"])
    assert res["prompt_tokens"] > 0 and len(res["token_ids"]) <= 3


def test_relate_with_track_json(capsys, tiny_ckpt, square_clip, tmp_path):
    rles = [rle_encode(square_clip.masks[i]) for i in uniform_indices(N_SOURCE, 4)]
    rles[1] = None
    tj = tmp_path / "track.json"
    tj.write_text(json.dumps(rles))
    code, out, _ = _run(capsys, ["relate", str(square_clip.folder), "Is <Prompt0> left of <Prompt1>?",
                                 "--region", _box(3, 4), "--on-frame", "3", "--track-json", str(tj),
                                 "--frames", "4", "--model", str(tiny_ckpt), "--max-new-tokens", "2"])
    assert code == 0
    assert "track t1 = <Prompt0>: given: #3; unknown: #0-#2" in out
    assert "track t2 = <Prompt1>: given: #0, #2-#3; absent: #1" in out


@pytest.mark.parametrize("case, needle", [
    ("corrupt", "is not a readable video"),
    ("empty-folder", "holds no image files"),
    ("count", "has 3 per-frame masks but the clip has 4 sampled frames"),
    ("frame", "--on-frame 4 is outside the clip: it has 4 sampled frames (0..3)"),
    ("limit", "expected a positive integer"),
    ("over", "frames = 33 is over the limit of 32"),
])
def test_bad_input_is_one_line_exit_2(capsys, tiny_ckpt, square_clip, tmp_path, case, needle):
    video, extra = str(square_clip.mp4), []
    if case == "corrupt":
        video = str(tmp_path / "bad.mp4")
        (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 50)
    elif case == "empty-folder":
        (tmp_path / "frames").mkdir()
        video = str(tmp_path / "frames")
    elif case == "count":
        (tmp_path / "t.json").write_text(json.dumps([rle_encode(m) for m in square_clip.masks[:3]]))
        extra = ["--track-json", str(tmp_path / "t.json")]
    region = ["--region", _box(0, 4)] if case != "count" else []
    frames = {"limit": "0", "over": "33"}.get(case, "4")
    argv = ["describe", video, *region, *extra, "--frames", frames, "--on-frame", "4" if case == "frame" else "0",
            "--model", str(tiny_ckpt), "--max-new-tokens", "2"]
    with pytest.raises(SystemExit) if case == "limit" else contextlib.nullcontext() as exc:  # type: ignore[attr-defined]
        code, out, err = _run(capsys, argv)
    if case == "limit":
        assert exc.value.code == 2
        err = capsys.readouterr().err
    else:
        assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_example_builds_everything_the_readme_command_needs(capsys, tmp_path):
    import shlex
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "examples"))
    try:
        import video_tiny
    finally:
        sys.path.pop(0)
    assert video_tiny.main([str(tmp_path / "tiny")]) == 0
    command = capsys.readouterr().out.strip()
    argv = shlex.split(command)
    assert argv[:2] == ["gar", "describe"] and "--on-frame" in argv
    code, out, err = _run(capsys, argv[1:] + ["--max-new-tokens", "3"])
    assert code == 0 and "track t1 = <Prompt0>: " in out and (tmp_path / "tiny" / "sheet.png").is_file()
