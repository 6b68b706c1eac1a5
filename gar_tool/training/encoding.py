"""A training conversation → GAR model inputs with labels, through the inference processor.

The prompt is GAR's training layout, which is also what :class:`~gar_tool.GAR` sends with
``compat="default"``: the first user turn is the image followed by the region preamble
(``"There are some objects I am curious about: <Prompt0>; …"`` and one line of crop tokens per
region) and the first human message; later turns are plain chat turns. The regions named
anywhere in the conversation (human or gpt turns, ``<PromptN>`` = ``regions[N]``) are listed in
the first turn, as the original training does. A conversation that names no region is a region
caption: exactly one region, the describe layout (``"...: <Prompt0>; \\n<Prompt0>: {crops}"`` +
the human message as the instruction).

Tiles, the visual-prompt label map and the RoI boxes come from
:class:`~gar_tool.gar.processing.GARProcessor` itself, so training and inference share one
preprocessing path. Labels are the token ids of the assistant turns (each turn's text and its
``<|eot_id|>``), ``-100`` elsewhere — as the original, which labels from after the assistant
header through the end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Literal, Sequence

import torch
from PIL import Image

from gar_tool.errors import InputError, ModelError, PromptError
from gar_tool.gar.processing import GARInputs, GARProcessor
from gar_tool.gar.processing.prompts import PromptPlan, render_user_text
from gar_tool.gar.processing.tiling import select_grid
from gar_tool.regions.refs import prompt_refs
from gar_tool.regions.region import Regions

Role = Literal["human", "gpt"]
#: Label value of positions without a target (the transformers convention).
IGNORE = -100


class LengthError(InputError):
    """An encoded conversation is longer than allowed."""


@dataclass(frozen=True)
class Turn:
    """One message: ``role`` ``"human"`` (user) or ``"gpt"`` (assistant) and its text."""

    role: Role
    text: str


@dataclass
class TrainingSample:
    """One encoded conversation.

    Attributes:
        inputs: the processor's inputs with ``input_ids`` ``(L,)`` holding the whole conversation
            (tiles, label tiles, grid, replay crop ids and boxes as for inference).
        labels: ``(L,)`` int64 target ids on the assistant tokens, :data:`IGNORE` elsewhere.
    """

    inputs: GARInputs
    labels: torch.Tensor

    @property
    def num_targets(self) -> int:
        return int((self.labels != IGNORE).sum())


def check_turns(turns: Sequence[Turn]) -> None:
    """``PromptError`` unless the turns alternate human, gpt, … and end with a gpt turn whose
    answers are non-empty."""
    if not turns:
        raise PromptError("the conversation is empty")
    for i, t in enumerate(turns):
        want = "human" if i % 2 == 0 else "gpt"
        if t.role != want:
            raise PromptError(f"turn {i} is from {t.role!r}, expected {want!r} (turns alternate "
                              "human, gpt, human, gpt, ...)")
        if t.role == "gpt" and not t.text.strip():
            raise PromptError(f"turn {i} (gpt) is empty: there is nothing to learn from it")
    if turns[-1].role != "gpt":
        raise PromptError(f"the conversation ends with a human turn (turn {len(turns) - 1}); "
                          "it must end with the gpt answer")


class ConversationEncoder:
    """Encodes conversations for one processor (tokenizer, chat template, tile geometry)."""

    def __init__(self, processor: GARProcessor) -> None:
        self.processor = processor

    # ------------------------------------------------------------------ text
    def plan(self, regions: Regions, turns: Sequence[Turn]) -> tuple[PromptPlan, str | None]:
        """The prompt plan of the first turn and the question the processor is called with
        (``None`` for a caption). Raises ``PromptError`` for bad region references."""
        check_turns(turns)
        joined = "\n".join(t.text for t in turns)
        p = self.processor
        if prompt_refs(joined):
            plan = p.plan(regions, joined, "default")  # all regions named, within the slots, no specials
            return replace(plan, question=turns[0].text), joined
        if len(regions) != 1:
            raise PromptError(f"the conversation names no region but {len(regions)} regions are given: "
                              "refer to them as <Prompt0>, <Prompt1>, ... (only a one-region caption "
                              "may leave its region unnamed)")
        for t in turns:
            p.vocab.check_text(t.text, "conversation")
        return p.plan(regions, None, "default", turns[0].text), None

    def _tokens(self, plan: PromptPlan, turns: Sequence[Turn]) -> tuple[list[int], list[int]]:
        """Token ids and labels of the conversation, with a single image placeholder token.

        The rendered conversation is cut where each assistant turn starts and ends and every piece
        is tokenised on its own, so the prompt before an answer is tokenised exactly as inference
        tokenises its generation prompt (BPE merges never straddle the boundary).
        """
        p = self.processor
        v, g = p.vocab, p.geometry
        runs = {s.prompt: v.crop_token(s.prompt) * g.tokens_per_tile for s in plan.slots}
        messages: list[dict] = [{"role": "user", "content": [
            {"type": "image"}, {"type": "text", "text": render_user_text(plan, runs, "default")}]}]
        messages += [{"role": "user" if t.role == "human" else "assistant",
                      "content": [{"type": "text", "text": t.text}]} for t in turns[1:]]
        text = self._render(messages, False)
        cuts = [0]  # character offsets: prompt | answer | prompt | answer ...
        for i, m in enumerate(messages):
            if m["role"] == "assistant":
                head, upto = self._render(messages[:i], True), self._render(messages[:i + 1], False)
                if not (text.startswith(upto) and upto.startswith(head) and len(head) > cuts[-1]
                        and len(upto) > len(head)):
                    raise ModelError("the chat template does not render a conversation as the extension "
                                     "of its prefix; cannot tell the assistant turns apart")
                cuts += [len(head), len(upto)]
        ids: list[int] = []
        labels: list[int] = []
        for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
            piece = p.tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if k % 2 == 1 else [IGNORE] * len(piece)
        if ids.count(v.image_token_id) != 1:
            raise ModelError(f"chat template produced {ids.count(v.image_token_id)} image placeholders, expected 1")
        return ids, labels

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return str(self.processor.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False))

    def length(self, image_size: tuple[int, int], regions: Regions, turns: Sequence[Turn]) -> int:
        """Sequence length of the encoded conversation for an image of ``(height, width)``,
        without touching pixels. Raises ``PromptError`` as :meth:`plan`."""
        plan, _ = self.plan(regions, turns)
        ids, _ = self._tokens(plan, turns)
        g = self.processor.geometry
        ncw, nch = select_grid(image_size[1], image_size[0], g.tile_size, g.max_num_tiles)
        return len(ids) - 1 + g.tokens_per_tile * (1 + ncw * nch)

    def validator(self, max_length: int | None = None) -> Callable[[Regions, Sequence[Turn], tuple[int, int]], int]:
        """``check(regions, turns, size) -> length`` for :func:`~gar_tool.training.records.load_records`:
        the encoded length, or ``PromptError`` / :class:`LengthError`."""

        def check(regions: Regions, turns: Sequence[Turn], size: tuple[int, int]) -> int:
            n = self.length(size, regions, turns)
            if max_length is not None and n > max_length:
                raise LengthError(f"the encoded conversation has {n} tokens, more than the maximum {max_length}")
            return n

        return check

    # ------------------------------------------------------------------ everything
    def encode(self, image: Image.Image, regions: Regions, turns: Sequence[Turn]) -> TrainingSample:
        """Encode one conversation about ``image`` (RGB) and ``regions`` (``regions[N]`` is
        ``<PromptN>``). Raises ``PromptError`` for bad references or turns."""
        plan, question = self.plan(regions, turns)
        instruction = turns[0].text if question is None else None
        inputs = self.processor(image, regions, question, "default", instruction)
        ids, labels = self._tokens(plan, turns)
        at = ids.index(self.processor.vocab.image_token_id)
        n = self.processor.geometry.tokens_per_tile * inputs.num_tiles
        ids = ids[:at] + [ids[at]] * n + ids[at + 1:]
        labels = labels[:at] + [IGNORE] * n + labels[at + 1:]
        sample = TrainingSample(replace(inputs, input_ids=torch.tensor(ids, dtype=torch.long)),
                                torch.tensor(labels, dtype=torch.long))
        if sample.num_targets == 0:
            raise PromptError("no assistant token survived tokenisation")
        return sample


__all__ = ["Role", "Turn", "LengthError", "TrainingSample", "ConversationEncoder", "check_turns", "IGNORE"]
