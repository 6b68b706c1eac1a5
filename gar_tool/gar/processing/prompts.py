"""GAR's prompt texts: which ``<PromptN>`` slots a question uses, and the user text around them.

Two modes (``compat``):

* ``"original"`` reproduces the released inference code: a single-region description always uses
  ``<Prompt1>`` and the text ``"...: <Prompt1>;\\n<Prompt1>: "``; several regions use the prompts
  found in the question in ascending order; ``<Prompt5>`` and above (beyond the model's prompt
  slots) stay plain text, are background in the label map and are never replayed.
* ``"default"`` follows the *training* pipeline where the original inference deviates from it: a
  single region is ``<Prompt0>`` with the training layout ``"...: <Prompt0>; \\n<Prompt0>: "``,
  prompts are ordered as the regions are given (``regions[i]`` is ``<Prompt{i}>``), and more regions
  than prompt slots is an error.

Everything here is text; token ids are resolved by :class:`~gar_tool.gar.processing.vocab.GARVocab`.
"""

from __future__ import annotations

from dataclasses import dataclass
from gar_tool.errors import PromptError
from gar_tool.gar.protocol import COMPAT_MODES, Compat, check_mode
from gar_tool.regions.refs import DESCRIBE_INSTRUCTION, prompt_refs, prompt_token


#: Opening of every GAR region prompt.
OBJECTS_INTRO = "There are some objects I am curious about: "

@dataclass(frozen=True)
class PromptSlot:
    """One visual prompt in a GAR input.

    Attributes:
        prompt: the prompt number ``k`` of ``<Prompt{k}>``.
        region: index of the region (in the caller's list) this prompt stands for.
        replayed: whether the model has a slot for it (``k < prompt_slots``); unreplayed prompts
            (``compat="original"`` only) are background in the label map and keep their crop
            tokens' embeddings.
    """

    prompt: int
    region: int
    replayed: bool


@dataclass(frozen=True)
class PromptPlan:
    """The prompts of a GAR turn, in text order, and the question or instruction that ends it.

    ``single_region_layout`` selects the describe layout; :func:`render_user_text` turns the plan
    and the crop-token runs into the user message.
    """

    slots: tuple[PromptSlot, ...]
    question: str
    single_region_layout: bool


def plan_describe(compat: Compat, instruction: str | None = None) -> PromptPlan:
    """Plan for describing one region (``regions[0]``)."""
    k = 1 if check_mode(compat) == "original" else 0
    text = DESCRIBE_INSTRUCTION if instruction is None else instruction
    if not text.strip():
        raise PromptError("instruction must not be empty")
    return PromptPlan((PromptSlot(prompt=k, region=0, replayed=True),), text, True)


def plan_relate(question: str, n_regions: int, prompt_slots: int, compat: Compat) -> PromptPlan:
    """Plan for a question naming regions as ``<Prompt0>`` … ``<Prompt{n-1}>``.

    Raises ``PromptError`` when the question names no region, names a region that was not given,
    leaves a given region unnamed, or (default mode) uses more regions than the model's slots.
    """
    check_mode(compat)
    if not isinstance(question, str) or not question.strip():
        raise PromptError("question must be a non-empty string")
    if n_regions < 1:
        raise PromptError("relate needs at least one region")
    refs = prompt_refs(question)
    if not refs:
        raise PromptError("the question names no region: refer to regions as <Prompt0>, <Prompt1>, ...")
    missing = [k for k in refs if k >= n_regions]
    if missing:
        names = ", ".join(prompt_token(k) for k in missing)
        raise PromptError(f"the question names {names} but only {n_regions} region(s) were given "
                          f"(<Prompt0>..<Prompt{n_regions - 1}>)")
    unused = [i for i in range(n_regions) if i not in refs]
    if unused:
        names = ", ".join(prompt_token(i) for i in unused)
        raise PromptError(f"region(s) {names} are given but never named in the question")
    if compat == "default" and n_regions > prompt_slots:
        raise PromptError(f"GAR has {prompt_slots} region slots per question, got {n_regions} regions; "
                          "split the question (the tools layer chunks automatically) or use "
                          "compat='original' to reproduce the original model's handling")
    slots = tuple(PromptSlot(prompt=k, region=k, replayed=k < prompt_slots) for k in refs)
    return PromptPlan(slots, question, False)


def render_user_text(plan: PromptPlan, crop_runs: dict[int, str], compat: Compat) -> str:
    """The user message text. ``crop_runs[k]`` is the crop-token string of ``<Prompt{k}>`` already
    repeated once per replayed feature (256 for a 16×16 RoI)."""
    if plan.single_region_layout:
        k = plan.slots[0].prompt
        p = prompt_token(k)
        sep = ";\n" if compat == "original" else "; \n"
        return f"{OBJECTS_INTRO}{p}{sep}{p}: {crop_runs[k]}{plan.question}"
    head = OBJECTS_INTRO + "".join(f"{prompt_token(s.prompt)}; " for s in plan.slots)
    body = "".join(f"{prompt_token(s.prompt)}: {crop_runs[s.prompt]}\n" for s in plan.slots)
    return f"{head}\n{body}\n{plan.question}"


__all__ = ["Compat", "COMPAT_MODES", "DESCRIBE_INSTRUCTION", "OBJECTS_INTRO", "PromptSlot",
           "PromptPlan", "prompt_token", "prompt_refs", "check_mode", "plan_describe",
           "plan_relate", "render_user_text"]
