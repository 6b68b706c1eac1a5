"""Answer letters of multiple-choice questions: the paper's strict rule and a lenient parser.

The strict rule is the one GAR's ``evaluation/GAR-Bench/inference.py`` scores with:
``model_output.lower() == answer.lower()`` — no stripping, nothing else. The lenient parser also
accepts the usual ways a model (or a differently decoded output) writes a letter — ``"C."``,
``"(C)"``, ``"Answer: C"``, ``"c"``, ``"C. <Prompt2>"`` — and is only ever reported *beside* the
strict number, never instead of it.
"""

from __future__ import annotations

import re
from typing import Sequence

_CHOICE_RE = re.compile(r"^\s*\(?([A-Za-z])\)?[.)]\s*(.*)$", re.DOTALL)
# The whole output is one letter, optionally bracketed and/or followed by '.' or ':'.
_BARE_RE = re.compile(r"^\(?([A-Za-z])\)?[.:]?$")
# "Answer: C", "The answer is (C).", "Correct option: c", "Option C"
_LEADIN_RE = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*\(?([A-Za-z])\)?"
    r"(?=$|[\s.,:;)])", re.IGNORECASE)
# "C. <Prompt2>", "C) blue": an upper-case letter with '.' or ')' and more text.
_LABELLED_RE = re.compile(r"^\(?([A-Z])[.)]\s+\S")


def strict_match(model_output: str, answer: str) -> bool:
    """The paper's exact-match rule: case-insensitive equality, no stripping."""
    return model_output.lower() == answer.lower()


def choice_letter(choice: str) -> tuple[str, str] | None:
    """``"A. <Prompt0>"`` → ``("A", "<Prompt0>")``; ``None`` when the option has no letter label."""
    m = _CHOICE_RE.match(choice)
    return (m.group(1).upper(), m.group(2).strip()) if m else None


def parse_letter(output: str, choices: Sequence[str] = ()) -> str | None:
    """Lenient letter parser: the option letter ``output`` names, upper-case, or ``None``.

    Args:
        output: the model's answer text.
        choices: the item's options (``"A. ..."``); when given, the letter must be one of theirs and
            an output equal to an option's text (with or without its label) names that option.
    """
    text = output.strip()
    if not text:
        return None
    labelled = [(ch, parsed) for ch in choices if (parsed := choice_letter(ch)) is not None]
    valid = {letter for _, (letter, _) in labelled}
    for rx in (_BARE_RE, _LEADIN_RE, _LABELLED_RE):
        m = rx.match(text)
        if m:
            letter = m.group(1).upper()
            if not valid or letter in valid:
                return letter
    low = text.lower().rstrip(".")
    for ch, (letter, body) in labelled:
        if low in (ch.strip().lower().rstrip("."), body.lower().rstrip(".")):
            return letter
    return None


__all__ = ["strict_match", "choice_letter", "parse_letter"]
