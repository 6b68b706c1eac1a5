"""DLC-Bench: loading, the judge's reply parser and per-object scores, the summary rule, judging
through a local stub server, and running a (fake) describer."""

from __future__ import annotations

import json
import re

import pytest
from eval_support import DLC_BENCH, FakePredictor, Interrupted, StubJudge, load_json, write_image

import gar_tool.cli as cli
from gar_tool.errors import InputError
from gar_tool.evaluation.dlc_bench import load_dlc, load_dlc_judged, load_dlc_predictions, summarize_dlc
from gar_tool.evaluation.dlc_judge import (judge_dlc, object_questions, parse_choice_reply, question_text,
                                           rescore, score_object)
from gar_tool.evaluation.dlc_run import run_dlc
from gar_tool.evaluation.judge import ChatJudge, load_prompt

JUDGED = DLC_BENCH / "official-outputs" / "gar_1b_eval_gpt.json"
PREDS = DLC_BENCH / "official-outputs" / "gar_1b.json"


@pytest.fixture(scope="module")
def dlc():
    return load_dlc(DLC_BENCH)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def test_loading_follows_the_original_inference_order(dlc):
    assert len(dlc.objects) == len(dlc.qa) == 100
    assert list(dlc.objects) == list(load_json(PREDS))  # published outputs are in that order
    assert dlc.image_dir is None  # the images are not distributed


def test_published_judged_file_gives_the_readme_numbers(dlc):
    """README: 0.658 / 0.876 / 0.767 (GAR's EVALUATION.md prints 0.662 / 0.880 / 0.771 from another
    judge run); Avg is the mean of Pos and Neg, not the mean of per-object scores."""
    summary = summarize_dlc(load_dlc_judged(JUDGED, list(dlc.qa)))
    assert summary.as_dict()["overall"] == {"pos": 0.658, "neg": 0.876, "avg": 0.767}
    assert summary.avg == pytest.approx((summary.pos + summary.neg) / 2)
    assert round(summary.mean_object_score, 3) != round(summary.avg, 3)
    assert summary.objects == 100


def test_rescoring_the_stored_replies_reproduces_every_object(dlc):
    judged = load_dlc_judged(JUDGED, list(dlc.qa))
    again = rescore(judged, dlc)
    for key, entry in judged.items():
        for field in ("score", "score_pos", "score_neg", "recognition_result", "details_positives",
                      "details_negatives", "details_recognition"):
            assert again[key][field] == entry[field], (key, field)


def test_prompts_reproduce_the_published_judge_prompts(dlc):
    """The stored prompts in the judged file were built by the original script: ours are identical."""
    judged = load_dlc_judged(JUDGED, list(dlc.qa))
    tpl = load_prompt("judge_dlc_bench")
    for key in list(judged)[:20]:
        ours = [tpl.render(pred_caption=judged[key]["pred"], question_text_str=question_text(q))
                for q in object_questions(dlc, key)]
        assert ours == judged[key]["prompt"]


CH = ["The wing is not mentioned.", "The wing is mentioned and is grey.", "The wing is mentioned."]


@pytest.mark.parametrize("reply, expected", [
    ("B", 1), ("b", 1), ("B. The wing is mentioned and is grey.", 1), ("C.", 2),
    ("The wing is mentioned and is grey.", 1),   # contains choices 1 and 2: the longer at the same place
    ("the wing is not mentioned", 0), ("A\nbecause", 0), ("wing is not", 0),
    ("", None), ("no idea", None),
])
def test_parse_choice_reply(reply, expected):
    assert parse_choice_reply(reply, CH) == expected


def _questions():
    return [{"question": "recognition?", "choices": [["Yes", "correct"], ["No", "incorrect"]], "type": "recognition"},
            {"question": "p1", "choices": [["not mentioned", 0], ["right", 1], ["wrong", -1]], "type": "positive"},
            {"question": "p2", "choices": [["not mentioned", 0], ["partly", 0.5], ["right", 1]], "type": "positive"},
            {"question": "n1", "choices": [["absent", 1], ["present", -1]], "type": "negative"}]


@pytest.mark.parametrize("replies, pos, neg, recognised", [
    (["A", "B", "C", "A"], 1.0, 1.0, True),
    (["A", "C", "B", "B"], -0.25, -1.0, True),
    (["B", "B", "C", "A"], 0.0, 0.0, False),       # recognition failed: scores capped at 0
    (["B", "C", "A", "B"], -0.5, -1.0, False),     # ... negative scores stay
    (["??", "B", "C", "A"], 1.0, 1.0, None),       # unparsed recognition: not capped (original raises)
])
def test_score_object(replies, pos, neg, recognised):
    r = score_object(_questions(), replies)
    assert (r["score_pos"], r["score_neg"], r["recognition_result"]) == (pos, neg, recognised)
    assert r["score"] == pytest.approx((2 * pos + neg) / 3)


def test_validation_of_dlc_files(tmp_path, dlc):
    with pytest.raises(InputError, match="prediction file; judge it"):
        load_dlc_judged(PREDS, list(dlc.qa))
    with pytest.raises(InputError, match="a judged file"):
        load_dlc_predictions(JUDGED, list(dlc.qa))
    partial = tmp_path / "p.json"
    partial.write_text(json.dumps(dict(list(load_json(PREDS).items())[:5])))
    with pytest.raises(InputError, match="expected 100 DLC-Bench objects, got 5"):
        load_dlc_predictions(partial, list(dlc.qa))
    assert len(load_dlc_predictions(partial, list(dlc.qa), allow_partial=True)) == 5
    unknown = tmp_path / "u.json"
    unknown.write_text(json.dumps({"123": "x"}))
    with pytest.raises(InputError, match="not in DLC-Bench qa.json"):
        load_dlc_predictions(unknown, list(dlc.qa), allow_partial=True)


# ----------------------------------------------------------------------- folder with images
def _dlc_folder(tmp_path, dlc, n_objects: int):
    """A DLC-Bench folder: the shared annotations (linked) and synthetic images for the images of
    the first ``n_objects`` objects."""
    root = tmp_path / "dlc"
    (root / "annotations").mkdir(parents=True)
    for name in ("annotations.json", "qa.json", "class_names.json"):
        (root / "annotations" / name).symlink_to(DLC_BENCH / "annotations" / name)
    keys = list(dlc.objects)[:n_objects]
    for key in keys:
        im = dlc.images[dlc.objects[key]["image_id"]]
        path = root / "images" / im["file_name"]
        if not path.exists():
            write_image(path, im["height"], im["width"], seed=len(key))
    return root, keys


def _oracle_judge(data, keys):
    """Scripted judge: recognises objects described as GOOD and always picks the best-scored choice
    (looked up in qa.json), so GOOD objects score 1 / 1 and the others, capped, 0 / 0."""
    score = {c: s for k in keys for q in data.qa[k] for c, s in q["choices"]}

    def reply(req) -> str:
        options = re.findall(r"^([A-E])\. (.*)$", req.text, flags=re.MULTILINE)
        if [t for _, t in options] == ["Yes", "No"]:  # the recognition question
            return "A. Yes" if "The description is:\nGOOD" in req.text else "B. No"
        letter, text = max(options, key=lambda o: score[o[1]])
        return f"{letter}. {text}"

    return reply


def test_judge_dlc_through_the_stub(tmp_path, dlc):
    root, keys = _dlc_folder(tmp_path, dlc, 2)
    data = load_dlc(root)
    preds = {keys[0]: "GOOD description", keys[1]: "BAD description"}
    out = tmp_path / "judged.json"
    with StubJudge(_oracle_judge(data, keys)) as stub:
        with ChatJudge("stub", stub.base_url) as judge:
            results = judge_dlc(preds, data, judge, out=out, show_progress=False)
    assert len(stub.requests) == sum(1 + len(data.qa[k]) for k in keys)
    req = stub.requests[0]
    assert [p["type"] for p in req.parts] == ["text", "image_url", "text", "image_url", "text"]
    assert req.parts[0]["text"] == "The image:\n" and req.parts[2]["text"] == "\nThe mask of the image:\n"
    assert req.body["max_tokens"] == 300 and req.body["temperature"] == 0
    good, bad = results[keys[0]], results[keys[1]]
    assert (good["recognition_result"], good["score_pos"], good["score_neg"]) == (True, 1.0, 1.0)
    assert (bad["recognition_result"], bad["score_pos"], bad["score_neg"]) == (False, 0.0, 0.0)
    written = load_json(out)
    assert set(written) == {*keys, "avg_pos", "avg_neg"}
    assert (written["avg_pos"], written["avg_neg"]) == (0.5, 0.5)


def test_run_dlc_with_a_fake_describer(tmp_path, dlc):
    root, keys = _dlc_folder(tmp_path, dlc, 3)
    out = tmp_path / "gar.json"
    fake = FakePredictor(fail_after=2)
    with pytest.raises(Interrupted):
        run_dlc(fake, root, out, show_progress=False)
    assert list(load_json(out)) == keys[:2]
    fake = FakePredictor()
    stats = run_dlc(fake, root, out, show_progress=False)
    described = load_json(out)
    n_ready = len([k for k in dlc.objects if (root / "images" / dlc.images[dlc.objects[k]["image_id"]]["file_name"]).exists()])
    assert list(described) == [k for k in dlc.objects if k in described]  # original order
    assert len(described) == n_ready and stats.new == n_ready - 2 and stats.resumed == 2
    assert len(stats.missing_images) == 100 - n_ready
    assert all(v == v.strip() and v.startswith("an object of") for v in described.values())


def test_dlc_cli_scores_the_published_file(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("eval_cmd",))
    assert cli.main(["eval", "score", "--benchmark", "dlc-bench", "--pred", str(JUDGED), "--data", str(DLC_BENCH)]) == 0
    out = capsys.readouterr().out
    assert "Summary (Pos\tNeg\tAvg(Pos, Neg)):\t0.658,\t0.876,\t0.767" in out
    assert "identical to the stored scores" in out
    assert cli.main(["eval", "score", "--benchmark", "dlc-bench", "--pred", str(PREDS), "--judge", "openai:m",
                     "--judge-base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "needs its folder" in capsys.readouterr().err
