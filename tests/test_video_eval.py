"""VideoRefer-Bench-Q harness on a few items written here in the benchmark's format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gar_tool.cli import main
from gar_tool.errors import PromptError
from gar_tool.evaluation.videorefer import (annotated_frames, gar_question, is_correct, key_frame_indices,
                                            load_items, multi_indices, object_tracks)
from gar_tool.regions.rle import rle_encode
from gar_tool.testing.video import moving_square, write_video
from gar_tool.video.decode import load_clip
from video_fixtures import tiny_sam2_dir  # noqa: F401  (session fixture)

N = 24


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("videorefer")
    frames, masks = moving_square(N, (64, 96), 20)
    folder = root / "DAVIS" / "JPEGImages" / "480p" / "square"
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.jpg")
    (root / "MeViS").mkdir()
    write_video(root / "MeViS" / "square.mp4", frames, fps=8)
    every_other = {str(i): {"segmentation": rle_encode(masks[i])} for i in range(0, N, 2)}
    every_other["6"] = {"segmentation": None}  # the object is not visible there
    below = {str(i): {"segmentation": rle_encode(np.roll(masks[i], 20, axis=0))} for i in range(1, N, 2)}
    items = [
        {"id": 0, "video": "DAVIS/JPEGImages/480p/square", "Question": "What is <object3><region> doing?",
         "type": "Basic Questions", "options": ["(A) Moving right", "(B) Moving left", "(C) Standing still"],
         "Answer": "(A) Moving right", "frame_idx": "10", "annotation": [every_other]},
        {"id": 1, "video": "MeViS/square.mp4", "Question": "Is <object1><region> above <object2><region>?",
         "type": "Relationship Questions", "options": ["(A) Yes", "(B) No"], "Answer": "(A) Yes",
         "frame_idx": "4", "annotation": [every_other, below]},
        {"id": 2, "video": "DAVIS/JPEGImages/480p/square", "Question": "Where is <region> going?",
         "type": "Future Predictions", "options": ["(A) Left", "(B) Right"], "Answer": "(B) Right",
         "frame_idx": "8", "annotation": [every_other, below]},  # 1 mention, 2 objects: this item fails
    ]
    (root / "VideoRefer-Bench-Q.json").write_text(json.dumps(items))
    return root, items, masks


def test_question_frames_and_tracks(bench):
    root, items, masks = bench
    loaded = load_items(root)
    assert gar_question(loaded[1]) == ("Question: Is <Prompt0> above <Prompt1>?\nOptions:\n(A) Yes\n(B) No\n"
                                       "Answer with the correct option's letter directly.")
    with pytest.raises(PromptError, match="1 <region> mention"):
        gar_question(loaded[2])
    assert key_frame_indices(N, 4, 10) == ([3, 10, 15, 21], 1)  # 10 replaces the nearest sample, 9
    assert key_frame_indices(N, 4, 15) == ([3, 9, 15, 21], 2)  # already a sample
    assert annotated_frames(loaded[1]) == list(range(N))
    picked = multi_indices(loaded[0], 4)
    assert len(picked) == 4 and all(p % 2 == 0 for p in picked)
    clip = load_clip(root / loaded[0]["video"], indices=[4, 5, 6, 10])
    [track] = object_tracks(loaded[0], clip)
    assert track.states == ("given", "unknown", "absent", "given")  # 5 not annotated, 6 null
    assert np.array_equal(track.regions[3].mask, masks[10])


@pytest.mark.parametrize("pred, answer, correct", [
    ("(A) Moving right", "(A) Moving right", True),
    ("A", "(A) x", True), ("A.", "(A) x", True), ("a", "(A) x", True),  # compared case-insensitively
    ("B) Moving left", "(A) x", False), ("The answer is (C).", "(C) x", True),
    ("Answer: B", "(A) x", True),  # VideoRefer's rule reads the first character when no (X) / X) is there
    ("", "(A) x", False),  # the original script fails on an empty prediction; here it is wrong
])
def test_videorefer_letter_rule(pred, answer, correct):
    assert is_correct(pred, answer) is correct


def test_score_a_predictions_file(bench, tmp_path, capsys):
    root, items, _ = bench
    rows = [{"id": 0, "video": items[0]["video"], "Answer": items[0]["Answer"], "pred": "A", "type": items[0]["type"]},
            {"id": 1, "video": items[1]["video"], "Answer": items[1]["Answer"], "pred": "(B) No", "type": items[1]["type"]},
            {"id": 2, "video": items[2]["video"], "Answer": items[2]["Answer"], "pred": "B.", "type": items[2]["type"]}]
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["eval", "score", "--benchmark", "videorefer-bench-q", "--pred", str(pred), "--data", str(root), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["overall"]["correct"] == 2 and res["overall"]["total"] == 3
    assert res["by_type"]["Relationship Questions"]["correct"] == 0
    code = main(["eval", "score", "--benchmark", "videorefer-bench-q", "--pred", str(pred)])
    err = capsys.readouterr().err
    assert code == 2 and "expected 1000 VideoRefer-Bench-Q predictions, got 3" in err


@pytest.mark.parametrize("extra", [[], ["--mode", "multi"], ["--tracker", "TRACKER"]])
def test_run_writes_videorefer_predictions_and_resumes(bench, tmp_path, capsys, tiny_ckpt, tiny_sam2_dir, extra):
    root, items, _ = bench
    out = tmp_path / "pred.jsonl"
    extra = [str(tiny_sam2_dir) if e == "TRACKER" else e for e in extra]
    argv = ["eval", "run", "--benchmark", "videorefer-bench-q", "--data", str(root), "--model", str(tiny_ckpt),
            "--out", str(out), "--frames", "4", "--max-new-tokens", "2", "--no-progress", "--json", *extra]
    assert main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["new"] == 2 and list(stats["failed"]) == ["2"], stats  # item 2 fails alone
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1] and all(isinstance(r["pred"], str) for r in rows)
    assert [r["Answer"] for r in rows] == [items[0]["Answer"], items[1]["Answer"]]
    log = [json.loads(line) for line in out.with_name(out.name + ".progress.jsonl").read_text().splitlines()[1:]]
    for rec in log:
        assert len(rec["record"]["frames"]) == 4
        if "--mode" not in extra:  # single mode: the key frame is among the samples
            key = int(items[int(rec["key"])]["frame_idx"])
            assert key in rec["record"]["frames"]
    assert main(argv) == 0  # resumed: nothing new
    assert json.loads(capsys.readouterr().out)["resumed"] == 2
    assert main(["eval", "score", "--benchmark", "videorefer-bench-q", "--pred", str(out), "--allow-partial"]) == 0
    assert "average" in capsys.readouterr().out
