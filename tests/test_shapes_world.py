"""The shapes world: rendering with exact masks, answers computed from the scene, balanced data,
benchmarks that gar eval reads, the tokenizer."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from gar_tool.shapes.questions import pair_items, single_items
from gar_tool.shapes.world import COLOURS, SIZE_BANDS, SMALL_FRACTION, Scene, Shape, render, sample_scene


def _scene(*shapes, w=200, h=100):
    return render(Scene(w, h, (220, 220, 220), tuple(shapes), 0))


def test_masks_are_the_visible_pixels_in_drawing_order():
    a = Shape("square", "red", "large", (10, 10, 60, 60), COLOURS["red"])
    b = Shape("square", "blue", "large", (40, 40, 90, 90), COLOURS["blue"])  # drawn over a
    r = _scene(a, b)
    assert not (r.masks[0] & r.masks[1]).any()
    assert r.masks[1][45:85, 45:85].all() and not r.masks[0][45:85, 45:85].any()
    for m, s in zip(r.masks, (a, b)):
        np.testing.assert_array_equal(r.image[m], np.broadcast_to(np.array(s.rgb, np.uint8), (int(m.sum()), 3)))
    assert r.areas[1] == pytest.approx(r.masks[1].sum() / (200 * 100))
    x, y = r.centroids[1]
    assert 60 < x < 70 and 60 < y < 70


@pytest.mark.parametrize("kind", ["circle", "square", "triangle", "star"])
def test_each_kind_fills_its_box_as_expected(kind):
    r = _scene(Shape(kind, "green", "large", (20, 0, 120, 100), COLOURS["green"]), w=140, h=100)
    fill = r.masks[0].sum() / (100 * 100)
    # star: ten triangles centre-outer-inner, inner radius 0.45 of the outer: 5·R·r·sin 36° / (2R)²
    want = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5, "star": 5 * 0.45 * np.sin(np.pi / 5) / 4}[kind]
    assert fill == pytest.approx(want, rel=0.08)


def test_sampled_scenes_keep_clear_size_classes_and_are_reproducible():
    rng = np.random.default_rng(7)
    scenes = [sample_scene(rng) for _ in range(30)]
    for r in scenes:
        assert 112 <= r.scene.width <= 336 and 112 <= r.scene.height <= 336
        for s, area in zip(r.scene.shapes, r.areas):
            lo, hi = SIZE_BANDS[s.size]
            assert lo <= area <= hi
            assert (area < SMALL_FRACTION) == (s.size == "small")
    again = sample_scene(np.random.default_rng(7))
    np.testing.assert_array_equal(again.image, scenes[0].image)
    assert Counter(len(r.scene.shapes) for r in scenes).keys() <= {2, 3, 4, 5}


def test_answers_follow_the_geometry():
    big = Shape("circle", "red", "large", (110, 10, 190, 90), COLOURS["red"])
    small = Shape("square", "red", "small", (10, 60, 30, 80), COLOURS["red"])
    r = _scene(big, small)
    rng = np.random.default_rng(0)
    by_kind = {it.kind: it for it in pair_items(r, 1, 0, rng)}  # <Prompt0> = the small square
    assert by_kind["left"].open_answer == "yes"
    assert by_kind["above"].open_answer == "no"  # the small square is lower
    assert by_kind["bigger"].open_answer == "no"
    assert by_kind["same-colour"].open_answer == "yes" and by_kind["same-shape"].open_answer == "no"
    left = by_kind["left"]
    assert left.question == "Which is further to the left, <Prompt0> or <Prompt1>?"
    assert left.choices[ord(left.answer) - ord("A")].endswith("<Prompt0>")
    singles = {it.kind: it for it in single_items(r, 0, rng)}
    assert singles["colour"].open_answer == "red" and singles["shape"].open_answer == "circle"
    assert singles["size"].choices == ("A. small", "B. medium", "C. large") and singles["size"].answer == "C"
    assert sorted(c[3:] for c in singles["shape"].choices) == ["circle", "square", "star", "triangle"]


def test_close_shapes_get_no_left_right_question():
    a = Shape("circle", "red", "medium", (50, 10, 80, 40), COLOURS["red"])
    b = Shape("circle", "blue", "medium", (52, 60, 82, 90), COLOURS["blue"])
    kinds = {it.kind for it in pair_items(_scene(a, b), 0, 1, np.random.default_rng(0))}
    assert "left" not in kinds and "above" in kinds


def test_training_records_balance_answers_within_each_kind(tmp_path):
    from gar_tool.shapes.dataset import write_jsonl

    manifest = write_jsonl(tmp_path, 200, seed=3)
    recs = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(recs) == 200
    answers = Counter()
    for rec in recs:
        human, gpt = rec["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        n_prompts = len({p for p in ("<Prompt0>", "<Prompt1>") if p in human["value"]})
        assert len(rec["regions"]) == max(n_prompts, 1)
        if "Are <Prompt0> and <Prompt1> the same colour?" in human["value"]:
            answer = gpt["value"]
            if human["value"].startswith("Question: "):  # multiple choice: the chosen option's text
                answer = dict(line.split(". ", 1) for line in human["value"].splitlines()
                              if line[:3] in ("A. ", "B. "))[answer]
            answers[answer] += 1
        assert (tmp_path / rec["image"]).is_file()
    assert answers["yes"] == answers["no"] > 0


def test_benchmark_is_read_and_scored_by_gar_eval(tmp_path, capsys):
    from gar_tool.cli import main
    from gar_tool.shapes.dataset import write_bench

    ann = write_bench(tmp_path / "bench", 40, seed=4, arity=2)
    items = json.loads(ann.read_text())
    assert len(items) == 40 and len({it["image"] for it in items}) == 40
    assert all(len(it["mask_rles"]) == 2 and it["size_split"] in ("small", "large") for it in items)
    assert Counter(it["type"] for it in items).most_common(1)[0][1] <= 7  # kinds are balanced
    preds = [dict(it, model_output=it["answer"] if k % 4 else "Z") for k, it in enumerate(items)]
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    code = main(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", str(tmp_path / "pred.json"),
                 "--data", str(tmp_path / "bench"), "--json"])
    assert code == 0
    score = json.loads(capsys.readouterr().out)
    assert score["overall"]["correct"] == 30 and score["overall"]["total"] == 40


def test_tokenizer_resolves_gar_tokens_and_keeps_answers_short():
    from gar_tool.gar.processing import GARVocab
    from gar_tool.shapes.checkpoint import PROMPT_SLOTS, build_tokenizer, corpus

    tok = build_tokenizer(corpus(n_scenes=10))
    crop_ids = [tok.convert_tokens_to_ids(f"<|reserved_special_token_{k + 2}|>") for k in range(PROMPT_SLOTS)]
    vocab = GARVocab.resolve(tok, {"prompt_numbers": PROMPT_SLOTS, "crop_tokens_ids": crop_ids,
                                   "mllm_config": {"image_token_id": tok.convert_tokens_to_ids("<|image|>")}})
    assert vocab.eos_id == tok.convert_tokens_to_ids("<|eot_id|>")
    for answer in ("red", "circle", "yes", "A", "a small red circle"):
        ids = tok(answer, add_special_tokens=False)["input_ids"]
        assert len(ids) <= len(answer.split()) and tok.decode(ids) == answer
    text = "any text, even unseen words like zebra: 42"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok("x")["input_ids"][0] == tok.bos_token_id  # BOS prepended with special tokens


def test_multi_turn_conversations_ask_different_kinds_about_the_same_regions():
    from gar_tool.shapes.dataset import examples

    exs = list(examples(300, seed=6, turns=3))
    assert sum(len(e.questions) for e in exs) == 300
    assert max(len(e.questions) for e in exs) == 3
    for e in exs:
        kinds = [it.kind if it is not None else "describe" for it, _ in e.questions]
        assert len(set(kinds)) == len(kinds)
        assert "describe" not in kinds or len(kinds) == 1  # a caption would give the answers away
        assert all(it is None or it.shapes == e.shapes for it, _ in e.questions)
        conv = e.conversation()
        assert [t["from"] for t in conv] == ["human", "gpt"] * len(e.questions)


def test_data_command_mix_selects_question_kinds(tmp_path, capsys):
    from gar_tool.shapes.__main__ import main

    assert main(["data", "--out", str(tmp_path / "d"), "--records", "12", "--mix", "colour:1,shape:2",
                 "--multiple-choice", "0"]) == 0
    questions = [c["value"] for line in (tmp_path / "d" / "train.jsonl").read_text().splitlines()
                 for c in json.loads(line)["conversations"] if c["from"] == "human"]
    kinds = Counter(q.split(" is ")[0] for q in questions)
    assert kinds == {"What colour": 4, "What shape": 8}, kinds
    for mix, words in (("hue:1", "unknown question kind 'hue'"), ("colour:inf", "must be a positive number"),
                       ("colour:x", "the share must be a number")):
        with pytest.raises(SystemExit) as stop:
            main(["data", "--out", str(tmp_path / "e"), "--mix", mix])
        assert stop.value.code == 2 and words in capsys.readouterr().err


def test_commands_report_bad_input_in_one_line(tmp_path, capsys):
    from gar_tool.shapes.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["grow", "--model", str(tmp_path), "--out", str(tmp_path / "g"), "--add-layers", "1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "is not a GAR checkpoint folder" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as stop:
        main(["data", "--out", str(tmp_path / "d"), "--multiple-choice", "1.5"])
    assert stop.value.code == 2 and "expected a number in [0, 1]" in capsys.readouterr().err
