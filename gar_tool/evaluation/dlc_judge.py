"""DLC-Bench judging: ask the judge each object's questions about a description, score the replies.

Protocol of GAR's ``evaluation/DLC-Bench/eval_gpt_with_image.py`` (adapted from NVIDIA's
describe-anything): for every object, a recognition question (``prompts/
judge_dlc_bench_recognition.md``; choices Yes → ``"correct"``, No → ``"incorrect"``) followed by the
object's ``qa.json`` questions. Each question is one request: the focal crop of the object, the
focal crop of its mask, then ``prompts/judge_dlc_bench.md`` with the description and the question
(``"{question}\\nA. {choice}\\nB. ..."``, stripped); temperature 0, ``max_tokens`` 300.

A reply is mapped to a choice by :func:`parse_choice_reply` (the original's ``parse_pred`` rules);
the choice's score counts (an unmatched reply scores 0). When recognition fails, every positive and
negative score is capped at 0. Per object: ``score_pos`` = mean of positive scores, ``score_neg`` =
mean of negative scores (``None`` without negatives), ``score`` = mean of both together.

Deviation: the original raises when the recognition reply matches no choice; here the object is
scored without the cap and ``recognition_result`` is ``None`` (counted in the summary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gar_tool.errors import InputError
from gar_tool.evaluation.dlc_bench import DLCData, summarize_dlc
from gar_tool.evaluation.files import atomic_write_json, open_run_log
from gar_tool.evaluation.judge import ChatJudge, PromptTemplate, load_prompt
from gar_tool.evaluation.progress import progress_bar

#: ``max_tokens`` of the original DLC judge requests.
JUDGE_MAX_TOKENS = 300
_LETTERS = "abcde"


def recognition_question(class_name: str, template: PromptTemplate | None = None) -> dict[str, Any]:
    """The recognition question dict asked before an object's own questions."""
    tpl = template or load_prompt("judge_dlc_bench_recognition")
    return {"question": tpl.render(class_name=class_name),
            "choices": [["Yes", "correct"], ["No", "incorrect"]], "type": "recognition"}


def question_text(question: dict[str, Any]) -> str:
    """``"{question}\\nA. {choice}\\nB. {choice}..."`` (no trailing newline)."""
    lines = [question["question"]] + [f"{_LETTERS[i].upper()}. {c}" for i, (c, _) in enumerate(question["choices"])]
    return "\n".join(lines).strip()


def parse_choice_reply(reply: str, choices: Sequence[str]) -> int | None:
    """Index of the choice a judge reply names, by the original ``parse_pred`` rules, or ``None``.

    In order: exact choice text / ``"x. choice"`` / the bare letter; a single choice contained in
    the reply; a reply starting ``"x."``; of several contained choices the last-starting (then
    longest); the longest choice containing the reply; a lone letter (or letter + newline).
    """
    pred = reply.strip().lower()
    if not pred:
        return None
    contained = []
    for i, choice in enumerate(choices):
        c = choice.strip().lower()
        letter = _LETTERS[i] if i < len(_LETTERS) else None
        if c == pred or (letter and (pred == f"{letter}. {c}" or pred == letter)):
            return i
        if c in pred:
            contained.append((i, pred.index(c), len(c)))
    if len(contained) == 1:
        return contained[0][0]
    if pred[0] in _LETTERS and pred[1:2] == ".":
        return _LETTERS.index(pred[0])
    if contained:
        last = max(pos for _, pos, _ in contained)
        return max((t for t in contained if t[1] == last), key=lambda t: t[2])[0]
    longer = [(i, len(c)) for i, c in enumerate(choices) if pred in c.strip().lower()]
    if longer:
        return max(longer, key=lambda t: t[1])[0]
    if pred[0] in _LETTERS and (len(pred) == 1 or pred[1] == "\n"):
        return _LETTERS.index(pred[0])
    return None


def score_object(questions: Sequence[dict[str, Any]], replies: Sequence[str]) -> dict[str, Any]:
    """Per-object result from the judge's replies (``questions[0]`` is the recognition question).

    Returns the original's fields: ``details_positives``, ``details_negatives``,
    ``details_recognition``, ``response``, ``score``, ``score_pos``, ``score_neg``,
    ``recognition_result``.
    """
    if len(replies) != len(questions):
        raise InputError(f"expected {len(questions)} judge replies, got {len(replies)}")
    recognition: bool | None = None
    pos: list[float] = []
    neg: list[float] = []
    details: dict[str, list] = {"positive": [], "negative": [], "recognition": []}
    for q, reply in zip(questions, replies):
        idx = parse_choice_reply(reply, [c for c, _ in q["choices"]])
        value = q["choices"][idx][1] if idx is not None else 0
        if q["type"] == "recognition":
            recognition = {"correct": True, "incorrect": False}.get(str(value)) if isinstance(value, str) else None
        elif q["type"] in ("positive", "negative"):
            if recognition is False:
                value = min(0, value)
            (pos if q["type"] == "positive" else neg).append(value)
        else:
            raise InputError(f"unknown DLC-Bench question type {q['type']!r}")
        details[q["type"]].append({**q, "pred_answer": reply.strip(), "pred_index": idx, "eval_result": value})
    if not pos:
        raise InputError("a DLC-Bench object needs at least one positive question")
    return {"details_positives": details["positive"], "details_negatives": details["negative"],
            "details_recognition": details["recognition"], "response": list(replies),
            "score": (sum(pos) + sum(neg)) / (len(pos) + len(neg)), "score_pos": sum(pos) / len(pos),
            "score_neg": sum(neg) / len(neg) if neg else None, "recognition_result": recognition}


def object_questions(data: DLCData, key: str, template: PromptTemplate | None = None) -> list[dict[str, Any]]:
    """Recognition question + the object's ``qa.json`` questions."""
    return [recognition_question(data.class_names[key], template), *data.qa[key]]


def rescore(judged: dict[str, dict[str, Any]], data: DLCData) -> dict[str, dict[str, Any]]:
    """Recompute every object's result from its stored judge replies (``response``) and qa.json,
    as the original does when it finds an existing judged file."""
    tpl = load_prompt("judge_dlc_bench_recognition")
    out = {}
    for key, entry in judged.items():
        replies = entry.get("response")
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise InputError(f"object {key!r}: no list of judge replies ('response') to rescore from")
        out[key] = {"pred": entry.get("pred"), **score_object(object_questions(data, key, tpl), replies)}
    return out


def _content(prompt: str, crops: tuple[str, str]) -> list[dict]:
    from gar_tool.evaluation.judge_images import image_part, text_part

    return [text_part("The image:\n"), image_part(crops[0]), text_part("\nThe mask of the image:\n"),
            image_part(crops[1]), text_part(f"\n{prompt}\n")]


def _crops(data: DLCData, key: str) -> tuple[str, str]:
    from gar_tool.regions.rle import rle_decode
    from gar_tool.evaluation.judge_images import focal_crops, open_rgb

    path = data.image_path(key)
    if path is None or not path.is_file():
        raise InputError(f"DLC-Bench image of object {key} not found ({str(path) if path else 'no images/ folder'}); "
                         "the judge needs the benchmark images (see `gar eval run --help`)")
    return focal_crops(open_rgb(path), rle_decode(data.objects[key]["segmentation"]))


def judge_dlc(predictions: dict[str, str], data: DLCData, judge: ChatJudge, *,
              out: str | Path | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Judge every description; returns ``{object_id: result, ..., "avg_pos", "avg_neg"}``.

    With ``out``, finished objects are logged to ``<out>.progress.jsonl`` (a rerun continues where
    it stopped) and the judged file is written to ``out`` atomically (partial on interruption).
    """
    prompt_tpl = load_prompt("judge_dlc_bench")
    recog_tpl = load_prompt("judge_dlc_bench_recognition")
    keys = [k for k in data.qa if k in predictions]
    log = None
    if out is not None:
        log = open_run_log(out, {"task": "judge", "benchmark": "dlc-bench", "judge_model": judge.model})
    # A logged result is reused only for the same description (the log may predate an edit).
    done = {k: r for k, r in (log.records if log is not None else {}).items() if r.get("pred") == predictions.get(k)}
    bar = progress_bar(len(keys), "judging DLC-Bench", enabled=show_progress,
                       initial=sum(k in done for k in keys))
    try:
        for key in keys:
            if key in done:
                continue
            crops = _crops(data, key)
            questions = object_questions(data, key, recog_tpl)
            prompts = [prompt_tpl.render(pred_caption=predictions[key], question_text_str=question_text(q))
                       for q in questions]
            replies = [judge.complete(_content(p, crops), max_tokens=JUDGE_MAX_TOKENS) for p in prompts]
            done[key] = {"pred": predictions[key], **score_object(questions, replies), "prompt": prompts}
            if log is not None:
                log.append(key, done[key])
            bar.update()
    finally:
        bar.close()
        results: dict[str, Any] = {k: done[k] for k in keys if k in done}
        if results:
            summary = summarize_dlc(results)
            results.update(avg_pos=summary.pos, avg_neg=summary.neg)
            if out is not None:
                atomic_write_json(out, results)  # also on interruption: a valid (partial) file
    return results


__all__ = ["JUDGE_MAX_TOKENS", "recognition_question", "question_text", "parse_choice_reply",
           "score_object", "object_questions", "rescore", "judge_dlc"]
