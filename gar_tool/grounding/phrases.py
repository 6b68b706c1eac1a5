"""Text prompts for Grounding DINO: phrase parsing, prompt building, chunking, token → phrase map.

Grounding DINO reads one caption of phrases separated by ``.`` (``"a dog. a ball."``); its text
encoder treats ``.`` and ``?`` as phrase boundaries and sees at most ``config.max_text_len``
tokens. Everything here is pure Python (no torch, no tokenizer object): the tokenizer enters only
as a callable or as the character offsets it returned, so every rule is unit-tested on its own.

Terms:
    phrase      one object description, as the user wrote it (stripped): ``"a dog"``. It is the
                ``label`` of the regions it matches.
    prompt      the caption sent to the model: lower-cased phrases joined by ``". "`` and ended by
                ``"."``.
    span        ``(start, end)`` character range of a phrase inside the prompt, ``end`` exclusive.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from gar_tool.errors import InputError
from gar_tool.limits import limit

#: Characters Grounding DINO's text encoder treats as phrase boundaries (its special tokens, besides
#: [CLS] / [SEP], are the tokens of "." and "?"). A phrase therefore cannot contain them.
PHRASE_DELIMITERS = ".?"

_SPLIT = re.compile("[" + re.escape(PHRASE_DELIMITERS) + "]")


def parse_phrases(phrases: str | Sequence[str]) -> list[str]:
    """Normalise a phrase prompt to a list of distinct, non-empty phrases (input order kept).

    ``phrases`` is one string whose phrases are separated by ``.`` (``"a dog. a ball."``; ``?``
    also separates) or a list of phrases (``["a dog", "a ball"]``), whose items must not contain
    ``.`` or ``?``. Whitespace is stripped and runs of spaces collapsed; duplicates (compared
    case-insensitively, as the model lower-cases its text) are dropped.

    Bounds (:mod:`gar_tool.limits`, checked before any other work): at most ``phrases_per_call``
    phrases of at most ``phrase_chars`` characters each (a string longer than both together allow
    is refused before it is split).

    Raises ``InputError`` when no phrase remains, an item is not a string or a bound is passed.
    """
    max_phrases, max_chars = limit("phrases_per_call"), limit("phrase_chars")
    if isinstance(phrases, str):
        if len(phrases) > max_phrases * (max_chars + 2):
            raise InputError(f"the phrase text is {len(phrases)} characters long, more than {max_phrases} phrases "
                             f"of {max_chars} characters (the phrases_per_call and phrase_chars limits) can be")
        pieces = _SPLIT.split(phrases)
    elif isinstance(phrases, Sequence) and not isinstance(phrases, (bytes, bytearray)):
        if len(phrases) > max_phrases:
            raise InputError(f"{len(phrases)} phrases given, more than the phrases_per_call limit of {max_phrases}")
        pieces = []
        for i, item in enumerate(phrases):
            if not isinstance(item, str):
                raise InputError(f"phrases[{i}] must be a string, got {type(item).__name__}")
            if _SPLIT.search(item):
                raise InputError(
                    f"phrases[{i}] = {item!r} contains one of {PHRASE_DELIMITERS!r}, which Grounding DINO "
                    "reads as a phrase separator; give one phrase per list item without them")
            pieces.append(item)
    else:
        raise InputError(f"phrases must be a string like 'a dog. a ball.' or a list of strings, "
                         f"got {type(phrases).__name__}")
    out: list[str] = []
    seen: set[str] = set()
    for piece in pieces:
        phrase = " ".join(piece.split())
        if len(phrase) > max_chars:
            raise InputError(f"phrase {phrase[:40]!r}... is {len(phrase)} characters long, more than the "
                             f"phrase_chars limit of {max_chars}")
        if phrase and phrase.lower() not in seen:
            seen.add(phrase.lower())
            out.append(phrase)
    if len(out) > max_phrases:
        raise InputError(f"{len(out)} phrases given, more than the phrases_per_call limit of {max_phrases}")
    if not out:
        raise InputError(f"no phrase to ground in {phrases!r}: expected text like 'a dog. a ball.' "
                         "or a list such as ['a dog', 'a ball']")
    return out


def build_prompt(phrases: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Caption for the model and the character span of each phrase in it.

    ``["A dog", "a ball"]`` → ``("a dog. a ball.", [(0, 5), (7, 13)])``. Phrases are lower-cased
    (Grounding DINO was trained on lower-case captions); spans index the returned text.
    """
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for phrase in phrases:
        low = phrase.lower()
        spans.append((pos, pos + len(low)))
        parts.append(low)
        pos += len(low) + 2  # ". "
    return ". ".join(parts) + ".", spans


def chunk_phrases(phrases: Sequence[str], count_tokens: Callable[[str], int],
                  max_tokens: int) -> list[list[str]]:
    """Split ``phrases`` into consecutive groups whose prompts fit in ``max_tokens`` tokens.

    ``count_tokens(prompt)`` returns the number of tokens the model sees for a prompt built by
    :func:`build_prompt` (special tokens included). Phrases are never cut: a phrase that does not
    fit on its own raises ``InputError`` saying how long it is and what the limit is.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    chunks: list[list[str]] = []
    current: list[str] = []
    for phrase in phrases:
        if count_tokens(build_prompt(current + [phrase])[0]) <= max_tokens:
            current.append(phrase)
            continue
        alone = count_tokens(build_prompt([phrase])[0])
        if alone > max_tokens:
            raise InputError(
                f"phrase {phrase!r} is {alone} tokens long with the separators, more than the "
                f"detector's text limit of {max_tokens} tokens; shorten it")
        if current:
            chunks.append(current)
        current = [phrase]
    if current:
        chunks.append(current)
    return chunks


def token_phrase_index(offsets: Sequence[Sequence[int]], spans: Sequence[tuple[int, int]],
                       first_phrase: int = 0) -> list[int]:
    """For each token, the index of the phrase it belongs to, or ``-1``.

    ``offsets`` are the tokenizer's ``(start, end)`` character offsets of each token in the
    prompt (``(0, 0)`` for special tokens such as [CLS] / [SEP]); ``spans`` come from
    :func:`build_prompt`. Separator tokens (``.``) and special tokens map to ``-1``. Indices are
    shifted by ``first_phrase`` so that chunks of a longer phrase list share one numbering.
    """
    out: list[int] = []
    for start, end in offsets:
        index = -1
        if end > start:
            for j, (s, e) in enumerate(spans):
                if s <= start and end <= e:
                    index = first_phrase + j
                    break
        out.append(index)
    return out


__all__ = ["PHRASE_DELIMITERS", "parse_phrases", "build_prompt", "chunk_phrases", "token_phrase_index"]
