"""GAR-Bench scoring: the paper's numbers from the published files, strict vs lenient, validation."""

from __future__ import annotations

import copy
import json

import pytest
from eval_support import GAR_BENCH, OFFICIAL, load_json

from gar_tool.errors import InputError
from gar_tool.evaluation.benchmarks import BENCHMARKS, get_benchmark
from gar_tool.evaluation.gar_bench import load_annotations, load_predictions, vqa_question
from gar_tool.evaluation.letters import parse_letter, strict_match
from gar_tool.evaluation.scoring import format_vqa, score_captions, score_vqa

VQA = get_benchmark("gar-bench-vqa")

# GAR-1B on GAR-Bench-VQA as printed in GAR's evaluation/EVALUATION.md (and the paper's table).
PAPER_GAR_1B_VQA = {"color": (34, 69, 49.3), "texture/pattern": (17, 29, 58.6), "mirror": (36, 61, 59.0),
                    "ordering": (13, 64, 20.3), "material": (14, 36, 38.9), "shape": (32, 64, 50.0),
                    "relation": (57, 101, 56.4)}


@pytest.fixture(scope="module")
def vqa_annotations() -> list[dict]:
    return load_annotations(GAR_BENCH, VQA)


@pytest.fixture(scope="module")
def official_vqa(vqa_annotations) -> list[dict]:
    return load_predictions(OFFICIAL / "gar_1b_vqa.json", VQA, annotations=vqa_annotations)


def test_official_vqa_reproduces_paper_table(official_vqa):
    score = score_vqa(official_vqa)
    assert (score.overall.correct, score.overall.total, score.overall.accuracy) == (203, 424, 47.9)
    got = {t: (v.correct, v.total, v.accuracy) for t, v in score.by_type.items()}
    assert got == PAPER_GAR_1B_VQA
    table = format_vqa(score)
    assert "203/424" in table and "47.9" in table and "ordering" in table


def test_vqa_json_shape(official_vqa):
    d = score_vqa(official_vqa).as_dict()
    assert set(d) == {"overall", "by_type"}
    assert {"correct", "total", "accuracy", "lenient_correct", "lenient_accuracy"} <= set(d["overall"])
    assert set(d["by_type"]) == set(PAPER_GAR_1B_VQA)
    json.dumps(d)  # serialisable


def test_lenient_is_reported_beside_strict(official_vqa):
    """Wrapping every output as "(X)." breaks the strict rule but not the lenient parser."""
    wrapped = [dict(p, model_output=f"({p['model_output']}).") for p in official_vqa]
    score = score_vqa(wrapped)
    assert score.overall.correct == 0
    assert score.overall.lenient_correct == 203
    assert score.by_type["relation"].lenient_accuracy == PAPER_GAR_1B_VQA["relation"][2]


@pytest.mark.parametrize("output, answer, expected", [
    ("C", "C", True), ("c", "C", True), ("C", "c", True),
    (" C", "C", False),  # the original does not strip
    ("C.", "C", False), ("(C)", "C", False), ("B", "C", False),
])
def test_strict_match_is_the_paper_rule(output, answer, expected):
    assert strict_match(output, answer) is expected


CHOICES = ["A. <Prompt0>", "B. <Prompt1>", "C. <Prompt2>", "D. <Prompt3>"]


@pytest.mark.parametrize("output, expected", [
    ("C", "C"), ("c", "C"), ("C.", "C"), ("(C)", "C"), ("(c).", "C"), ("Answer: C", "C"),
    ("The answer is (B).", "B"), ("answer is d", "D"), ("Option A", "A"), ("C. <Prompt2>", "C"),
    ("C) <Prompt2>", "C"), ("<Prompt2>", "C"), ("  B \n", "B"),
    ("E", None),           # not one of the options
    ("A person", None),    # an article, not a label
    ("", None), ("I cannot tell", None),
])
def test_lenient_letter_parser(output, expected):
    assert parse_letter(output, CHOICES) == expected


def test_question_string_matches_the_original_formula(vqa_annotations):
    item = vqa_annotations[7]
    q = vqa_question(item["question"], item["choices"])
    assert q.startswith(f"Question: {item['question']}\nOptions:\n{item['choices'][0]}\n")
    assert q.endswith(f"\n{item['choices'][-1]}\nAnswer with the correct option's letter directly.")
    assert q.count("\n") == 2 + len(item["choices"])


@pytest.mark.parametrize("name, file, published", [
    ("gar-bench-caption-simple", "gar_1b_simple_eval.json", 0.5567),
    ("gar-bench-caption-detailed", "gar_1b_detailed_eval.json", 0.6636),
])
def test_caption_accuracy_from_published_verdicts(name, file, published):
    bench = get_benchmark(name)
    preds = load_predictions(OFFICIAL / file, bench, annotations=load_annotations(GAR_BENCH, bench), judged=True)
    score = score_captions(preds)
    assert round(score.fraction, 4) == published
    assert score.as_dict()["overall"]["accuracy"] == round(published * 100, 1)


def test_caption_verdict_rule_is_exact_true():
    bench = get_benchmark("gar-bench-caption-simple")
    preds = load_predictions(OFFICIAL / "gar_1b_simple_eval.json", bench, judged=True)
    sloppy = [dict(p, eval_result="true." if p["eval_result"] == "True" else p["eval_result"]) for p in preds]
    score = score_captions(sloppy)
    assert score.tally.correct == 0
    assert score.tally.lenient_correct == score_captions(preds).tally.correct


def test_registry_sizes_match_the_released_files():
    for bench in BENCHMARKS.values():
        if bench.kind not in ("dlc", "videorefer-q"):  # VideoRefer-Bench-Q is not in ../shared
            assert len(load_json(GAR_BENCH / bench.annotation_file)) == bench.size
    assert len(load_json(SHARED_DLC_QA)) == BENCHMARKS["dlc-bench"].size


SHARED_DLC_QA = GAR_BENCH.parent / "dlc-bench" / "annotations" / "qa.json"


# ------------------------------------------------------------------------------------ validation
def _write(tmp_path, data, text=None):
    p = tmp_path / "pred.json"
    p.write_text(text if text is not None else json.dumps(data), encoding="utf-8")
    return p


def _mutations():
    def drop_field(d):
        del d[3]["model_output"]
    def wrong_type(d):
        d[0]["model_output"] = 3
    def duplicate(d):
        d[1] = copy.deepcopy(d[0])
    def changed_answer(d):
        d[5]["answer"] = "Z"
    def unknown_item(d):
        d[2]["image"] = "images/elsewhere.png"
    return [
        # (label, mutation, message, checked against the annotations?)
        ("truncated", lambda d: d.__delitem__(slice(10, None)), "expected 424", True),
        ("extra item", lambda d: d.append(copy.deepcopy(d[0]) | {"image": "images/x.png"}), "expected 424", False),
        ("missing model_output", drop_field, "missing field(s) model_output", False),
        ("wrong type", wrong_type, "'model_output' must be a string", False),
        ("duplicate", duplicate, "share the image", False),
        ("answer differs", changed_answer, "field 'answer' differs", True),
        ("unknown item", unknown_item, "not in the GAR-Bench-VQA annotations", True),
    ]


@pytest.mark.parametrize("label, mutate, message, with_ann", _mutations(), ids=[m[0] for m in _mutations()])
def test_mismatching_prediction_files_are_rejected(tmp_path, vqa_annotations, label, mutate, message, with_ann):
    data = load_json(OFFICIAL / "gar_1b_vqa.json")
    mutate(data)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_predictions(_write(tmp_path, data), VQA, annotations=vqa_annotations if with_ann else None)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "expected a JSON list"),
    ("[1, 2]", "expected a JSON object"),
])
def test_malformed_prediction_files(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load_predictions(_write(tmp_path, None, text), VQA)


def test_partial_files_need_allow_partial(tmp_path, vqa_annotations):
    data = load_json(OFFICIAL / "gar_1b_vqa.json")[::-1][:30]  # a subset, out of order
    path = _write(tmp_path, data)
    with pytest.raises(InputError, match="pass --allow-partial"):
        load_predictions(path, VQA, annotations=vqa_annotations)
    preds = load_predictions(path, VQA, annotations=vqa_annotations, allow_partial=True)
    assert [p["image"] for p in preds] == [a["image"] for a in vqa_annotations[-30:]]  # benchmark order
