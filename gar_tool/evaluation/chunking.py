"""Multiple-choice questions with more regions than GAR has prompt slots, asked in chunks.

GAR has ``prompt_slots`` (5) region prompts per question; 10 GAR-Bench-VQA items reference 6–9.
The original code passes them anyway (``<Prompt5>``+ become plain text with no region behind them);
``compat="default"`` refuses that, so the harness asks such items as a knockout tournament of
smaller questions:

1. Each option names some regions (``"B. <Prompt2> and <Prompt1> are running ..."``); the question
   stem names others. Options are packed first-fit into chunks whose stem + options reference at
   most ``slots`` distinct regions.
2. Each chunk with two or more options is asked as its own question: only the chunk's options,
   relabelled ``A``, ``B``, ..., and its regions renumbered ``<Prompt0>``... in ascending original
   order; the chosen option advances. A chunk with one option advances it unasked.
3. Rounds repeat on the survivors until one option is left. Every round asks at least one chunk of
   two or more options, so the number of candidates strictly decreases (at most ``len(options)``
   rounds).

The item is *unresolved* (empty answer, scored wrong) when an option alone does not fit, when the
remaining options cannot share any question, or when a reply names none of the chunk's options
(its options are not silently dropped, which would hand the win to options never compared).
Unresolved items are counted and reported; they are not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from gar_tool.errors import InputError
from gar_tool.evaluation.gar_bench import vqa_question
from gar_tool.regions.refs import prompt_refs, renumber
from gar_tool.evaluation.letters import choice_letter, parse_letter

_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Option:
    """One option of a multiple-choice item: its letter, text after the label, regions named."""

    letter: str
    body: str
    prompts: frozenset[int]


def referenced(text: str) -> frozenset[int]:
    """Prompt numbers ``N`` of the ``<PromptN>`` tags in ``text``."""
    return frozenset(prompt_refs(text))


def parse_options(choices: Sequence[str]) -> list[Option]:
    """``["A. <Prompt0>", ...]`` → options; ``InputError`` for an option without a letter label."""
    out = []
    for c in choices:
        parsed = choice_letter(c)
        if parsed is None:
            raise InputError(f"option {c!r} has no letter label like 'A. ...'")
        out.append(Option(parsed[0], parsed[1], referenced(parsed[1])))
    return out


def plan_chunks(stem: frozenset[int], options: Sequence[Option], slots: int) -> tuple[list[list[Option]], list[Option]]:
    """First-fit packing of ``options`` into chunks of at most ``slots`` regions (stem included).

    Returns ``(chunks, unaskable)``; ``unaskable`` are options that do not fit even alone.
    """
    chunks: list[list[Option]] = []
    used: list[frozenset[int]] = []
    unaskable = []
    for opt in options:
        if len(stem | opt.prompts) > slots:
            unaskable.append(opt)
            continue
        for i, regions in enumerate(used):
            if len(regions | opt.prompts) <= slots:
                chunks[i].append(opt)
                used[i] = regions | opt.prompts
                break
        else:
            chunks.append([opt])
            used.append(stem | opt.prompts)
    return chunks, unaskable


def sub_question(stem: str, chunk: Sequence[Option]) -> tuple[str, list[int], list[str]]:
    """The VQA question for one chunk.

    Returns ``(question, prompt_ids, choices)``: ``prompt_ids[j]`` is the original prompt number
    that became ``<Prompt{j}>``; ``choices[i]`` is ``chunk[i]`` relabelled and renumbered.
    """
    ids = sorted(referenced(stem).union(*(o.prompts for o in chunk)))
    new = {old: j for j, old in enumerate(ids)}

    labels = list(_LABELS[:len(chunk)])
    choices = [f"{label}. {renumber(o.body, new)}" for label, o in zip(labels, chunk)]
    return vqa_question(renumber(stem, new), choices), ids, choices


@dataclass
class ChunkedAnswer:
    """Outcome of a chunked item: the original letter chosen (``""`` if unresolved) and a trace."""

    model_output: str
    resolved: bool
    calls: int = 0
    rounds: int = 0
    replies: list[str] = field(default_factory=list)
    reason: str = ""


def ask_in_chunks(stem: str, choices: Sequence[str], slots: int,
                  ask: Callable[[str, list[int]], str]) -> ChunkedAnswer:
    """Run the knockout tournament described in the module docstring.

    Args:
        stem: the item's question (without options).
        choices: the item's options, ``"A. ..."``.
        slots: regions per question (``predictor.prompt_slots``).
        ask: ``ask(question, prompt_ids) -> reply``: ask GAR ``question`` with the regions
            ``prompt_ids`` (original numbers, in ``<Prompt0>``... order).
    """
    fixed = referenced(stem)
    result = ChunkedAnswer("", False)
    candidates = parse_options(choices)
    chunks, unaskable = plan_chunks(fixed, candidates, slots)
    if unaskable:
        result.reason = (f"option(s) {', '.join(o.letter for o in unaskable)} need more than {slots} "
                         "regions on their own")
        return result
    while len(candidates) > 1:
        chunks, _ = plan_chunks(fixed, candidates, slots)
        if all(len(c) == 1 for c in chunks):
            result.reason = (f"options {', '.join(o.letter for o in candidates)} cannot share a question "
                             f"of {slots} regions")
            return result
        result.rounds += 1
        survivors: list[Option] = []
        for chunk in chunks:
            if len(chunk) == 1:
                survivors.extend(chunk)
                continue
            question, ids, sub_choices = sub_question(stem, chunk)
            reply = ask(question, ids)
            result.calls += 1
            result.replies.append(reply)
            labels = _LABELS[:len(chunk)]
            letter = parse_letter(reply, sub_choices)
            if letter is None or letter not in labels:
                result.reason = f"reply {reply.strip()[:40]!r} names none of the options {labels}"
                return result
            survivors.append(chunk[labels.index(letter)])
        candidates = survivors
    result.model_output, result.resolved = candidates[0].letter, True
    return result


__all__ = ["Option", "referenced", "parse_options", "plan_chunks", "sub_question", "ChunkedAnswer",
           "ask_in_chunks"]
