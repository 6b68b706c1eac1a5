"""The GAR-Bench runner driven by a fake predictor: questions, resumability, --limit, missing images,
items with more regions than prompt slots; and the progress log / chunking units."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_support import GAR_BENCH, FakePredictor, Interrupted, letter_for, load_json, write_image

from gar_tool.errors import InputError
from gar_tool.evaluation.benchmarks import get_benchmark
from gar_tool.evaluation.chunking import ask_in_chunks, plan_chunks, parse_options, referenced, sub_question
from gar_tool.evaluation.files import ProgressLog, progress_path
from gar_tool.evaluation.gar_bench import load_annotations, load_predictions
from gar_tool.regions.refs import prompt_refs, renumber
from gar_tool.evaluation.gar_bench_run import run_gar_bench
from gar_tool.regions.rle import rle_encode

VQA = get_benchmark("gar-bench-vqa")
SUBSET = load_json(GAR_BENCH / "images" / "SUBSET.json")  # the 25 items whose image is shared
OVERSIZED = [s["image"] for s in SUBSET if int(s["num_masks"]) > 5]


@pytest.fixture(scope="module")
def annotations():
    return load_annotations(GAR_BENCH, VQA)


def _expected_question(item):
    # GAR_SPEC.md 3.3 / the original evaluation/GAR-Bench/inference.py, written out literally.
    q = f"Question: {item['question']}\nOptions:"
    for c in item["choices"]:
        q += f"\n{c}"
    return q + "\nAnswer with the correct option's letter directly."


def test_full_run_on_the_shared_subset(tmp_path, annotations):
    fake = FakePredictor()
    out = tmp_path / "vqa.json"
    stats = run_gar_bench(fake, VQA, GAR_BENCH, out, max_new_tokens=7, show_progress=False)
    preds = load_predictions(out, VQA, annotations=annotations, allow_partial=True)
    assert [p["image"] for p in preds] == [a["image"] for a in annotations if a["image"] in
                                          {s["image"] for s in SUBSET}]
    assert len(stats.missing_images) == len(annotations) - len(SUBSET)
    assert any(f"skipped {len(annotations) - len(SUBSET)} of the {len(annotations)} items" in l for l in stats.lines())
    direct = [p for p in preds if p["image"] not in OVERSIZED]
    for p in direct:  # answers stripped and attached to the right item
        assert p["model_output"] == letter_for(_expected_question(p))
    asked = {c.question for c in fake.calls}
    assert all(_expected_question(p) in asked for p in direct)
    assert all(c.max_new_tokens == 7 and c.n_regions <= fake.prompt_slots for c in fake.calls)
    by_image = {a["image"]: a for a in annotations}
    first = next(c for c in fake.calls if c.question == _expected_question(direct[0]))
    h, w = by_image[direct[0]["image"]]["mask_rles"][0]["size"]
    assert first.image_shape == (h, w, 3) and first.n_regions == len(by_image[direct[0]["image"]]["mask_rles"])


def test_resume_after_interruption(tmp_path, annotations):
    out = tmp_path / "vqa.json"
    with pytest.raises(Interrupted):
        run_gar_bench(FakePredictor(fail_after=5), VQA, GAR_BENCH, out, show_progress=False)
    partial = load_json(out)
    assert len(partial) == 5  # valid JSON with the finished items
    log_lines = progress_path(out).read_text().splitlines()
    assert len(log_lines) == 1 + 5
    with progress_path(out).open("a") as fh:
        fh.write('{"key": "images/vqa_9')  # a line torn by the crash
    second = FakePredictor()
    stats = run_gar_bench(second, VQA, GAR_BENCH, out, show_progress=False)
    assert stats.resumed == 5 and stats.done == len(SUBSET)
    final = load_predictions(out, VQA, annotations=annotations, allow_partial=True)
    images = [p["image"] for p in final]
    assert len(images) == len(set(images)) == len(SUBSET)
    assert final[:5] == partial
    done_first = {p["image"] for p in partial}
    asked_again = {c.question for c in second.calls}
    assert not any(_expected_question(a) in asked_again for a in annotations if a["image"] in done_first)
    uninterrupted = FakePredictor()
    run_gar_bench(uninterrupted, VQA, GAR_BENCH, tmp_path / "ref.json", show_progress=False)
    assert load_json(tmp_path / "ref.json") == load_json(out)


def test_limit_counts_items_with_predictions(tmp_path, annotations):
    out = tmp_path / "vqa.json"
    stats = run_gar_bench(FakePredictor(), VQA, GAR_BENCH, out, limit=3, show_progress=False)
    ordered = [a["image"] for a in annotations if a["image"] in {s["image"] for s in SUBSET}]
    assert [p["image"] for p in load_json(out)] == ordered[:3]
    assert stats.new == 3
    assert stats.visited == [a["image"] for a in annotations].index(ordered[2]) + 1
    stats = run_gar_bench(FakePredictor(), VQA, GAR_BENCH, out, limit=5, show_progress=False)
    assert (stats.resumed, stats.new) == (3, 2) and len(load_json(out)) == 5
    with pytest.raises(InputError, match="--limit"):
        run_gar_bench(FakePredictor(), VQA, GAR_BENCH, out, limit=0, show_progress=False)


def test_oversized_items_original_compat_pass_all_regions(tmp_path):
    fake = FakePredictor()
    stats = run_gar_bench(fake, VQA, GAR_BENCH, tmp_path / "vqa.json", oversized="pass", show_progress=False)
    big = [c for c in fake.calls if c.n_regions > fake.prompt_slots]
    assert len(big) == len(OVERSIZED) == stats.counters["passed_through"] == stats.counters["oversized"]
    assert any("passed through as the original code did" in line for line in stats.lines())


def test_oversized_items_default_compat_are_chunked(tmp_path):
    fake = FakePredictor()
    stats = run_gar_bench(fake, VQA, GAR_BENCH, tmp_path / "vqa.json", oversized="chunk", show_progress=False)
    assert all(c.n_regions <= fake.prompt_slots for c in fake.calls)
    for c in fake.calls:  # every question only mentions regions it was given
        assert set(prompt_refs(c.question)) <= set(range(c.n_regions))
    c = stats.counters
    assert c["oversized"] == len(OVERSIZED) == c["chunked"] + c["unresolved"]
    assert any(f"{c['chunked']} answered in chunks, {c['unresolved']} unresolved" in l for l in stats.lines())


def _oversized_folder(tmp_path):
    """One synthetic 6-region item: the stem names <Prompt2>; the truth is option C."""
    h, w = 60, 90
    masks = []
    for k in range(6):
        m = np.zeros((h, w), dtype=bool)
        m[5:15, 5 + 14 * k:15 + 14 * k] = True  # region k: its own square, left to right
        masks.append(rle_encode(m))
    item = {"image": "images/synthetic.png", "mask_rles": masks, "type": "relation", "answer": "C",
            "question": "Which statement describes <Prompt2>?",
            "choices": ["A. <Prompt2> is holding <Prompt4> and standing on <Prompt0>.",
                        "B. <Prompt2> is standing on <Prompt0> and holding <Prompt5>.",
                        "C. <Prompt2> is looking at <Prompt3> while standing on <Prompt0>.",
                        "D. <Prompt2> is holding <Prompt1> and looking at <Prompt4>."]}
    root = tmp_path / "bench"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "GAR-Bench-VQA.json").write_text(json.dumps([item]))
    write_image(root / item["image"], h, w)
    return root, item


def _truthful(item):
    """A fake GAR that finds option C among the options it is shown, by region identity (box)."""
    from gar_tool.regions.region import Region

    boxes = [Region.from_rle(r).box for r in item["mask_rles"]]
    truth = item["choices"][2][3:]

    def answer(question, regions):
        to_original = {j: boxes.index(r.box) for j, r in enumerate(regions)}
        for line in question.splitlines():
            if line[:3] in ("A. ", "B. ", "C. ", "D. "):
                text = renumber(line[3:], to_original)
                if text == truth:
                    return f"{line[0]}."
        return "A"

    return answer


def test_chunked_question_renumbers_regions_consistently(tmp_path):
    root, item = _oversized_folder(tmp_path)
    fake = FakePredictor(answer=_truthful(item))
    stats = run_gar_bench(fake, VQA, root, tmp_path / "out.json", oversized="chunk", show_progress=False)
    assert load_json(tmp_path / "out.json")[0]["model_output"] == "C"
    assert stats.counters["chunked"] == 1 and len(fake.calls) >= 2
    assert all(c.n_regions <= 5 for c in fake.calls)


def test_chunk_planning_units():
    opts = parse_options(["A. <Prompt0> and <Prompt1>", "B. <Prompt2>", "C. <Prompt3> <Prompt4> <Prompt5>"])
    assert referenced("x <Prompt3> <Prompt10> <Prompt3>") == {3, 10}
    chunks, unaskable = plan_chunks(frozenset({6}), opts, 4)
    assert [[o.letter for o in c] for c in chunks] == [["A", "B"], ["C"]] and not unaskable
    chunks, unaskable = plan_chunks(frozenset({6}), opts, 3)
    assert [o.letter for o in unaskable] == ["C"]
    q, ids, choices = sub_question("Is <Prompt6> near?", [opts[1], opts[0]])
    assert ids == [0, 1, 2, 6]
    assert choices == ["A. <Prompt2>", "B. <Prompt0> and <Prompt1>"]
    assert q.startswith("Question: Is <Prompt3> near?\nOptions:\nA. <Prompt2>\nB. <Prompt0> and <Prompt1>\n")


@pytest.mark.parametrize("choices, slots, replies, expected, resolved", [
    (["A. <Prompt0> <Prompt1>", "B. <Prompt2> <Prompt3>", "C. <Prompt4> <Prompt5>"], 4, ["B", "B"], "C", True),
    (["A. <Prompt0> <Prompt1>", "B. <Prompt2> <Prompt3>", "C. <Prompt4> <Prompt5>"], 4, ["A", "A"], "A", True),
    (["A. <Prompt0> <Prompt1>", "B. <Prompt2> <Prompt3>", "C. <Prompt4> <Prompt5>"], 4, ["zzz"], "", False),
    (["A. <Prompt0> <Prompt1> <Prompt2>", "B. <Prompt3> <Prompt4> <Prompt5>"], 4, [], "", False),
])
def test_tournament(choices, slots, replies, expected, resolved):
    it = iter(replies)
    asked = []

    def ask(question, ids):
        asked.append(ids)
        return next(it)

    res = ask_in_chunks("Which?", choices, slots, ask)
    assert (res.model_output, res.resolved) == (expected, resolved)
    assert res.calls == len(asked) <= len(choices) and all(len(ids) <= slots for ids in asked)


def test_progress_log_refuses_another_run(tmp_path):
    path = tmp_path / "x.progress.jsonl"
    log = ProgressLog(path, {"model": "a"})
    log.append("k1", {"model_output": "A"})
    assert ProgressLog(path, {"model": "a"}).records == {"k1": {"model_output": "A"}}
    with pytest.raises(InputError, match="belongs to another run"):
        ProgressLog(path, {"model": "b"})


def test_existing_outputs_are_never_overwritten(tmp_path):
    out = tmp_path / "published.json"
    out.write_text("[]")
    with pytest.raises(InputError, match="never overwritten"):
        run_gar_bench(FakePredictor(), VQA, GAR_BENCH, out, show_progress=False)
    assert out.read_text() == "[]"


def test_caption_tasks_use_the_original_questions(tmp_path):
    """Caption-detailed asks the fixed question; caption-simple the item's own question."""
    bench = get_benchmark("gar-bench-caption-detailed")
    items = load_json(GAR_BENCH / bench.annotation_file)[:2]
    root = tmp_path / "bench"
    (root / "annotations").mkdir(parents=True)
    (root / bench.annotation_file).write_text(json.dumps(items))
    for i, item in enumerate(items):
        h, w = item["mask_rles"][0]["size"]
        write_image(root / item["image"], h, w, seed=i)
    fake = FakePredictor(answer=lambda q, regions: "<Prompt0> is beside <Prompt1>.")
    run_gar_bench(fake, bench, root, tmp_path / "out.json", show_progress=False)
    assert [c.question for c in fake.calls] == [
        "Describe <Prompt0> in detail, including the relationship with <Prompt1>."] * 2
    out = load_predictions(tmp_path / "out.json", bench, annotations=items)
    assert [p["model_output"] for p in out] == ["<Prompt0> is beside <Prompt1>."] * 2


def test_an_item_whose_masks_do_not_fit_its_image_fails_alone(tmp_path):
    root, item = _oversized_folder(tmp_path)
    write_image(root / item["image"], 30, 40)  # masks are 60x90
    stats = run_gar_bench(FakePredictor(), VQA, root, tmp_path / "out.json", show_progress=False)
    assert list(stats.failed) == [item["image"]] and "does not match the image" in stats.failed[item["image"]]
    assert stats.done == 0 and any(line.startswith("failed images/synthetic.png") for line in stats.lines())


def test_simple_progress_bar_writes_to_its_stream():
    import io

    from gar_tool.evaluation.progress import SimpleBar

    buf = io.StringIO()
    bar = SimpleBar(3, "items", buf, initial=1)
    bar.update()
    bar.set_postfix_str("note")
    bar.close()
    assert "items: 1/3" in buf.getvalue() and buf.getvalue().rstrip().endswith("note")
    assert "items: 2/3" in buf.getvalue()
