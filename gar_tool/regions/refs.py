"""How text refers to regions: the ``<PromptN>`` tokens of GAR questions, in one place.

``regions[N]`` of a request is ``<PromptN>`` in its question (and in GAR's answer). Everything
that reads, writes or renumbers such references — the processor, the tools' chunking of large
relate calls, the evaluation harness, the planner — uses these functions::

    prompt_token(2)                          # "<Prompt2>"
    prompt_refs("<Prompt2> vs <Prompt0>")    # [0, 2]  (distinct, ascending)
    map_prompts("<Prompt1> is red", lambda k: f"r{k + 7}")   # "r8 is red"
"""

from __future__ import annotations

import re
from typing import Callable

#: The instruction GAR was trained and evaluated with for region descriptions.
DESCRIBE_INSTRUCTION = "Describe this masked region in detail."

PROMPT_RE = re.compile(r"<Prompt(\d+)>")


def prompt_token(k: int) -> str:
    """The text of visual prompt ``k`` (``<Prompt{k}>``)."""
    return f"<Prompt{k}>"


def is_prompt_token(text: str) -> bool:
    """Whether ``text`` is exactly one ``<PromptN>``."""
    return PROMPT_RE.fullmatch(text) is not None


def prompt_refs(text: str) -> list[int]:
    """Distinct prompt numbers named in ``text``, ascending (``"<Prompt2> vs <Prompt0>"`` → [0, 2])."""
    return sorted({int(m) for m in PROMPT_RE.findall(text)})


def map_prompts(text: str, mapping: Callable[[int], str | None]) -> str:
    """Replace each ``<PromptK>`` in ``text`` by ``mapping(K)`` (kept as is when it returns None)."""

    def sub(m: re.Match[str]) -> str:
        out = mapping(int(m.group(1)))
        return m.group(0) if out is None else out

    return PROMPT_RE.sub(sub, text)


def renumber(text: str, new_numbers: dict[int, int]) -> str:
    """``<PromptK>`` → ``<Prompt{new_numbers[K]}>`` for the ``K`` in ``new_numbers`` (others kept)."""
    return map_prompts(text, lambda k: prompt_token(new_numbers[k]) if k in new_numbers else None)


__all__ = ["DESCRIBE_INSTRUCTION", "PROMPT_RE", "prompt_token", "is_prompt_token", "prompt_refs",
           "map_prompts", "renumber"]
