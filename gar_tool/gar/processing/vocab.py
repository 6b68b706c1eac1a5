"""Token ids GAR needs, resolved once from the tokenizer and the checkpoint config (no literals).

The crop token of ``<Prompt{k}>`` is ``crop_tokens_ids[k]`` from ``config.json``; for prompts beyond
the model's slots (``compat="original"`` only) the original code names the token by the same
pattern (``<|reserved_special_token_{k+2}|>`` for the released checkpoints), which is inferred here
from the names of the configured crop tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gar_tool.errors import ModelError, PromptError
from gar_tool.regions.refs import is_prompt_token, prompt_token


@dataclass(frozen=True)
class GARVocab:
    """Resolved special tokens.

    Attributes:
        image_token / image_token_id: the ``<|image|>`` placeholder (one per image feature row).
        bos_id, eos_id, pad_id: begin-of-text, end-of-turn (generation stops there), padding.
        crop_token_ids: crop token id of ``<Prompt{k}>`` for each prompt slot ``k``.
        prompt_slots: number of visual prompt slots (``prompt_numbers``); also the label-map
            value of ``<NO_Prompt>`` (background).
        reserved: special-token strings a user question must not contain.
    """

    image_token: str
    image_token_id: int
    bos_id: int
    eos_id: int
    pad_id: int
    crop_token_ids: tuple[int, ...]
    crop_tokens: tuple[str, ...]
    prompt_slots: int
    reserved: frozenset[str]
    _crop_pattern: tuple[str, int, str] | None

    @classmethod
    def resolve(cls, tokenizer: Any, gar_config: dict) -> "GARVocab":
        """Build from a transformers tokenizer and the parsed GAR ``config.json``."""
        try:
            slots = int(gar_config["prompt_numbers"])
            crop_ids = tuple(int(i) for i in gar_config["crop_tokens_ids"])
            image_id = int(gar_config["mllm_config"]["image_token_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"config.json lacks a GAR field: {exc}") from None
        if len(crop_ids) != slots:
            raise ModelError(f"config.json: crop_tokens_ids has {len(crop_ids)} ids, "
                             f"expected prompt_numbers = {slots}")
        image_token = tokenizer.convert_ids_to_tokens(image_id)
        crop_tokens = tuple(tokenizer.convert_ids_to_tokens(list(crop_ids)))
        if image_token is None or any(t is None for t in crop_tokens):
            raise ModelError("tokenizer does not know the image / crop token ids from config.json")
        for k in range(slots):
            tid = tokenizer.convert_tokens_to_ids(prompt_token(k))
            if tid is None or tid == tokenizer.unk_token_id:
                raise ModelError(f"tokenizer lacks the GAR token {prompt_token(k)}")
        if tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
            raise ModelError("tokenizer defines no bos/eos token")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        reserved = frozenset(t for t in tokenizer.all_special_tokens) | frozenset(
            str(t) for t in tokenizer.added_tokens_decoder.values())
        reserved = frozenset(t for t in reserved if not is_prompt_token(t))
        return cls(image_token, image_id, tokenizer.bos_token_id, tokenizer.eos_token_id, pad,
                   crop_ids, crop_tokens, slots, reserved, _infer_pattern(crop_tokens))

    def crop_token(self, k: int) -> str:
        """Crop-token string of ``<Prompt{k}>`` (also for ``k >= prompt_slots``, by name pattern)."""
        if k < self.prompt_slots:
            return self.crop_tokens[k]
        if self._crop_pattern is None:
            raise PromptError(f"{prompt_token(k)} is beyond the model's {self.prompt_slots} prompt "
                              "slots and its crop token cannot be named for this tokenizer")
        prefix, offset, suffix = self._crop_pattern
        return f"{prefix}{k + offset}{suffix}"

    def label_value(self, k: int) -> int:
        """Label-map value of ``<Prompt{k}>``: ``k`` inside the slots, background beyond them."""
        return k if k < self.prompt_slots else self.prompt_slots

    def check_text(self, text: str, what: str = "question") -> None:
        """Reject user text that smuggles in special tokens (they would corrupt the layout)."""
        found = sorted(t for t in self.reserved if t and t in text)
        if found:
            raise PromptError(f"{what} must not contain special tokens; found {', '.join(found[:3])}")


def _infer_pattern(names: tuple[str, ...]) -> tuple[str, int, str] | None:
    m = re.fullmatch(r"(.*?)(\d+)(\D*)", names[0]) if names else None
    if m is None:
        return None
    prefix, start, suffix = m.group(1), int(m.group(2)), m.group(3)
    if all(n == f"{prefix}{start + k}{suffix}" for k, n in enumerate(names)):
        return prefix, start, suffix
    return None


__all__ = ["GARVocab"]
