"""GAR-Bench scores: VQA exact-match accuracy per type, caption accuracy from judge verdicts.

Rules (from GAR's ``evaluation/GAR-Bench/inference.py`` and ``eval_simple.py`` /
``eval_detailed.py``, commit e479816):

* VQA: an item is correct when ``model_output.lower() == answer.lower()``; accuracy per type and
  overall is ``round(correct / total * 100, 1)`` (percent, one decimal).
* Captions: an item is correct when the judge's reply (``eval_result``) is exactly ``"True"``;
  accuracy is ``correct / total`` over all items (printed by the original as a fraction,
  e.g. ``0.5567010309278351``).

Lenient variants (letter parsing for VQA, a case/punctuation-insensitive ``true`` for verdicts)
are reported beside the strict numbers under ``lenient_*`` keys.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from gar_tool.evaluation.letters import parse_letter, strict_match


@dataclass
class Tally:
    """Correct / total counts of one group, strict and lenient."""

    correct: int = 0
    total: int = 0
    lenient_correct: int = 0

    def add(self, strict: bool, lenient: bool) -> None:
        self.total += 1
        self.correct += int(strict)
        self.lenient_correct += int(lenient)

    @property
    def accuracy(self) -> float:
        """Percent, one decimal, rounded as the original script does."""
        return round(self.correct / self.total * 100, 1) if self.total else 0.0

    @property
    def lenient_accuracy(self) -> float:
        return round(self.lenient_correct / self.total * 100, 1) if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "total": self.total, "accuracy": self.accuracy,
                "lenient_correct": self.lenient_correct, "lenient_accuracy": self.lenient_accuracy}


@dataclass
class VQAScore:
    """VQA result: overall and per question type (types in order of first appearance)."""

    overall: Tally = field(default_factory=Tally)
    by_type: dict[str, Tally] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{"overall": {...}, "by_type": {TYPE: {...}}}`` with ``correct``, ``total``,
        ``accuracy`` (percent, 1 decimal) and the ``lenient_*`` counterparts."""
        return {"overall": self.overall.as_dict(),
                "by_type": {t: v.as_dict() for t, v in self.by_type.items()}}


def score_vqa(predictions: Sequence[dict[str, Any]]) -> VQAScore:
    """Score validated VQA predictions (items with ``model_output``, ``answer``, ``type``, ``choices``)."""
    out = VQAScore()
    for item in predictions:
        strict = strict_match(item["model_output"], item["answer"])
        letter = parse_letter(item["model_output"], item["choices"])
        lenient = letter is not None and letter == item["answer"].strip().upper()
        out.overall.add(strict, lenient)
        out.by_type.setdefault(item["type"], Tally()).add(strict, lenient)
    return out


def format_vqa(score: VQAScore, title: str = "GAR-Bench-VQA") -> str:
    """Plain-text table: one row per type and an overall row (strict, then lenient, accuracy)."""
    rows = [(t, v) for t, v in score.by_type.items()] + [("overall", score.overall)]
    width = max(len(t) for t, _ in rows)
    lines = [f"{title}: exact match (the paper's rule); lenient = letter parsed from the output",
             f"{'type':<{width}}  {'correct':>9}  {'accuracy':>8}  {'lenient':>7}"]
    for t, v in rows:
        if t == "overall":
            lines.append("-" * len(lines[1]))
        lines.append(f"{t:<{width}}  {f'{v.correct}/{v.total}':>9}  {v.accuracy:>8.1f}  "
                     f"{v.lenient_accuracy:>7.1f}")
    return "\n".join(lines)


def is_true_verdict(verdict: str) -> bool:
    """The original rule: the judge's reply is exactly ``"True"``."""
    return verdict == "True"


def is_true_verdict_lenient(verdict: str) -> bool:
    """``True`` up to case, surrounding whitespace, quotes and a final period."""
    return verdict.strip().strip("\"'`").rstrip(".").strip().lower() == "true"


@dataclass
class CaptionScore:
    """Caption result: strict / lenient counts and the raw verdict histogram."""

    tally: Tally
    verdicts: Counter

    @property
    def fraction(self) -> float:
        """``correct / total`` unrounded: the number the original script prints."""
        return self.tally.correct / self.tally.total if self.tally.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """``{"overall": {..., "accuracy_fraction"}, "verdicts": {reply: count}}``."""
        overall = self.tally.as_dict()
        overall["accuracy_fraction"] = self.fraction
        return {"overall": overall, "verdicts": dict(self.verdicts.most_common())}


def score_captions(predictions: Sequence[dict[str, Any]]) -> CaptionScore:
    """Score judged caption items (each with the judge's ``eval_result`` string)."""
    tally = Tally()
    for item in predictions:
        tally.add(is_true_verdict(item["eval_result"]), is_true_verdict_lenient(item["eval_result"]))
    return CaptionScore(tally, Counter(item["eval_result"] for item in predictions))


def format_captions(score: CaptionScore, title: str) -> str:
    """Plain-text summary in the original's style (``Accuracy:  0.5567...``) plus percentages."""
    t = score.tally
    shown = ", ".join(f"{k!r}: {v}" for k, v in score.verdicts.most_common(5))
    return (f"{title}: judge verdict exactly \"True\" (the paper's rule)\n"
            f"Accuracy:  {score.fraction:.4f}  ({t.correct}/{t.total} = {t.accuracy:.1f} %)\n"
            f"lenient:   {t.lenient_correct}/{t.total} = {t.lenient_accuracy:.1f} %\n"
            f"verdicts:  {shown}")


__all__ = [
    "Tally", "VQAScore", "score_vqa", "format_vqa", "CaptionScore", "score_captions",
    "format_captions", "is_true_verdict", "is_true_verdict_lenient",
]
