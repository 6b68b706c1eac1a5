"""``gar_relate`` with more regions than GAR can see at once: the chunking strategy.

GAR has ``gar.prompt_slots`` visual prompts per question (5 for the released checkpoints). A
relate call names its regions ``<Prompt0>`` … ``<Prompt{n-1}>`` in list order. When ``n`` exceeds
the slots, the question is asked in parts:

1. **Split**: the regions are cut, in list order, into ``ceil(n / slots)`` consecutive chunks whose
   sizes differ by at most one (7 regions, 5 slots → 4 + 3, not 5 + 2, so no part is a question
   about a lone region). Each chunk has at most ``slots`` regions.
2. **Rewrite**: each chunk gets its own copy of the question. Mentions of the chunk's regions are
   renumbered to ``<Prompt0>`` … ``<Prompt{k-1}>`` in chunk order; mentions of regions outside the
   chunk become plain words — the region's label when it has one (``"a dog"``), else
   ``"another region"`` — because GAR cannot see them in that part.
3. **Ask**: all chunk questions go to GAR in *one* batched call (``GAR.relate`` with lists).
4. **Report**: every chunk's question, answer and ``<PromptK>`` → region id mapping is returned;
   the combined answer has one line per part (``Part 1 of 2 (<Prompt0>, …, <Prompt3>): …``) with
   chunk-local prompts mapped back to the question's numbering, and the tool's text says the
   question was chunked and that each part saw only its own regions. Nothing is merged or voted:
   comparing across parts is left to the caller, who can ask a narrower follow-up question.

With ``n <= slots`` there is one chunk, the question is unchanged and the answer is GAR's.

Every region must be named in the question and every ``<PromptN>`` must have a region
(:func:`check_references`), as for a single GAR question.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from gar_tool.regions.refs import map_prompts, prompt_refs, prompt_token
from gar_tool.tools.errors import ToolInputError

OUTSIDE_DEFAULT = "another region"


@dataclass(frozen=True)
class ChunkPlan:
    """One GAR question: ``members[k]`` is the index (in the caller's list) of ``<Prompt{k}>``."""

    members: tuple[int, ...]
    question: str


def check_references(question: str, n_regions: int, ids: Sequence[str] | None = None) -> None:
    """Raise :class:`ToolInputError` unless the question names exactly ``<Prompt0>`` … ``<Prompt{n-1}>``."""
    refs = prompt_refs(question)
    if not refs:
        raise ToolInputError(f"the question names no region: refer to regions[0] as <Prompt0>, regions[1] as "
                             f"<Prompt1>, ... ({n_regions} region(s) given)")
    extra = [k for k in refs if k >= n_regions]
    if extra:
        names = ", ".join(prompt_token(k) for k in extra)
        raise ToolInputError(f"the question names {names} but only {n_regions} region(s) were given "
                             f"(<Prompt0>..<Prompt{n_regions - 1}>); add regions or renumber the question")
    unused = [i for i in range(n_regions) if i not in refs]
    if unused:
        names = ", ".join(prompt_token(i) + (f" ({ids[i]})" if ids else "") for i in unused)
        raise ToolInputError(f"regions {names} are never named in the question; name each region as "
                             "<PromptN> (N = its position in 'regions') or remove it from 'regions'")


def split_balanced(n: int, slots: int) -> list[list[int]]:
    """``range(n)`` in order, cut into ``ceil(n / slots)`` chunks whose sizes differ by at most one."""
    if slots < 1 or n < 1:
        raise ValueError(f"need n >= 1 and slots >= 1, got n={n}, slots={slots}")
    parts = math.ceil(n / slots)
    base, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        size = base + (1 if p < extra else 0)
        out.append(list(range(start, start + size)))
        start += size
    return out


def plan_chunks(question: str, n_regions: int, slots: int,
                outside_name: Callable[[int], str] | None = None) -> list[ChunkPlan]:
    """The GAR questions for one relate call (see the module docstring).

    ``outside_name(i)`` gives the words replacing ``<Prompt{i}>`` in chunks that do not contain
    region ``i`` (default ``"another region"``). The question must already pass
    :func:`check_references`.
    """
    if n_regions <= slots:
        return [ChunkPlan(tuple(range(n_regions)), question)]
    name = outside_name or (lambda i: OUTSIDE_DEFAULT)
    plans = []
    for members in split_balanced(n_regions, slots):
        local = {g: k for k, g in enumerate(members)}

        def rewrite(g: int, local: dict[int, int] = local) -> str:
            return prompt_token(local[g]) if g in local else name(g)

        plans.append(ChunkPlan(tuple(members), map_prompts(question, rewrite)))
    return plans


def to_global(text: str, members: Sequence[int]) -> str:
    """Chunk-local ``<PromptK>`` → the question's ``<Prompt{members[K]}>``; a ``K`` outside the
    chunk (the model invented it) becomes ``<Prompt?>``, so it cannot point at the wrong region."""
    return map_prompts(text, lambda k: prompt_token(members[k]) if k < len(members) else "<Prompt?>")


def to_ids(text: str, ids: Sequence[str]) -> str:
    """``<PromptK>`` → ``ids[K]``; unknown ``K`` → ``"an unknown region"``."""
    return map_prompts(text, lambda k: ids[k] if k < len(ids) else "an unknown region")


__all__ = ["ChunkPlan", "OUTSIDE_DEFAULT", "check_references", "split_balanced",
           "plan_chunks", "map_prompts", "to_global", "to_ids"]
