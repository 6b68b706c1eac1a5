"""``GAR``: load a checkpoint once, then describe regions and answer questions about them.

::

    gar = GAR.from_pretrained("HaochenWang/GAR-1B")            # or a local directory
    gar.describe("street.jpg", {"box": [40, 60, 200, 380]}).text
    gar.relate("street.jpg", [mask_a, mask_b], "Is <Prompt0> taller than <Prompt1>?").text

``regions[i]`` is ``<Prompt{i}>`` in the question. Batch forms: pass a *list* of images (and
lists of regions / questions of the same length) to get a list of answers, computed together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from gar_tool.errors import InputError
from gar_tool.gar.engine import CacheConfig, InferenceEngine, Sample
from gar_tool.gar.generation import DecodeOptions
from gar_tool.media.images import load_image
from gar_tool.gar.processing import GARInputs, GARProcessor
from gar_tool.gar.processing.prompts import Compat, check_mode
from gar_tool.regions.forms import coerce_regions

DEFAULT_MODEL = "HaochenWang/GAR-1B"


@dataclass(frozen=True)
class GARAnswer:
    """One answer.

    Attributes:
        text: decoded answer (the end-of-turn token removed; ``<PromptN>`` mentions kept).
        token_ids: generated token ids, the stop token excluded.
        finish_reason: ``"stop"`` (the model ended its turn) or ``"length"`` (max_new_tokens hit).
        prompt_tokens: length of the model input in tokens.
    """

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int


class GAR:
    """A loaded GAR model with its processor. Thread-safe (one model call at a time)."""

    def __init__(self, model: Any, processor: GARProcessor, *, compat: Compat = "default",
                 name: str = "GAR", cache: CacheConfig | None = None, vision_batch: int = 32) -> None:
        self.model = model.eval()
        self.processor = processor
        self.compat: Compat = check_mode(compat)
        self.name = name
        self.engine = InferenceEngine(self.model, processor, cache, vision_batch)
        self.last_step_logits: list[torch.Tensor] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, compat: Compat = "default", *,
                        attn_implementation: str | None = None,
                        roi_double_scale: bool | None = None,
                        cache: CacheConfig | None = None) -> "GAR":
        """Load a GAR checkpoint (local directory or hub id) in the released layout.

        Args:
            model: directory or hub id; hub ids come from the local cache, downloading only
                missing files (never with ``HF_HUB_OFFLINE=1``).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` picks the best.
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``; ``None`` = fp32 on CPU, bf16 on CUDA.
            compat: ``"original"`` reproduces the released inference code exactly, quirks
                included; ``"default"`` follows the training pipeline (see README).
            attn_implementation: LLM attention (``"sdpa"`` default, ``"eager"``, ``"flash_attention_2"``).
            roi_double_scale: override the checkpoint's RoI box scaling (``config.json`` key
                ``roi_double_scale``, default ``True`` = as the released weights were trained).
            cache: byte budgets of the tile / vision-feature / context-KV caches
                (``CacheConfig.disabled()`` runs every request from scratch, as the original).
        """
        from gar_tool.gar.checkpoint import load_gar_model

        check_mode(compat)
        model_obj, processor, directory = load_gar_model(
            model, device=device, dtype=dtype, attn_implementation=attn_implementation,
            roi_double_scale=roi_double_scale)
        return cls(model_obj, processor, compat=compat, name=str(model), cache=cache)

    @property
    def prompt_slots(self) -> int:
        """How many regions one question can use (``prompt_numbers`` of the checkpoint, 5)."""
        return self.processor.vocab.prompt_slots

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ------------------------------------------------------------------ public API
    def describe(self, image: Any, region: Any, *, instruction: str | None = None,
                 max_new_tokens: int = 256, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, seed: int | None = None, compat: Compat | None = None):
        """Describe one region. ``image`` a list → batch (``region`` a list of the same length)."""
        opts = DecodeOptions(max_new_tokens, do_sample, temperature, top_p, seed)
        images, batched = self._listify(image)
        regions = self._broadcast(region, len(images), batched, "region")
        samples = [self._sample(img, [reg], None, instruction) for img, reg in zip(images, regions)]
        out = self._generate(samples, compat, opts)
        return out if batched else out[0]

    def relate(self, image: Any, regions: Any, question: Any, *, max_new_tokens: int = 256,
               do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
               seed: int | None = None, compat: Compat | None = None):
        """Answer ``question`` about ``regions`` (``regions[i]`` = ``<Prompt{i}>``).

        ``image`` a list → batch: ``regions`` and ``question`` lists of the same length (a single
        question string is used for every image).
        """
        opts = DecodeOptions(max_new_tokens, do_sample, temperature, top_p, seed)
        images, batched = self._listify(image)
        regs = self._broadcast(regions, len(images), batched, "regions")
        questions = self._broadcast(question, len(images), batched and not isinstance(question, str),
                                    "question")
        samples = [self._sample(img, reg, q) for img, reg, q in zip(images, regs, questions)]
        out = self._generate(samples, compat, opts)
        return out if batched else out[0]

    @torch.no_grad()
    def next_token_logits(self, image: Any, regions: Any, question: str | None = None, *,
                          compat: Compat | None = None) -> torch.Tensor:
        """``(V,)`` float32 logits of the first answer token (``question=None``: describe prompt)."""
        _, step_logits = self._run([self._sample(image, regions, question)], compat,
                                   DecodeOptions(max_new_tokens=1), keep_logits=True)
        return step_logits[0][0]

    def inputs(self, image: Any, regions: Any, question: str | None = None, *,
               compat: Compat | None = None) -> GARInputs:
        """The preprocessed inputs of one sample (for inspection and tests)."""
        sample = self._sample(image, regions, question)
        return self.processor(sample.image, sample.regions, question, self._mode(compat))

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _sample(image: Any, regions: Any, question: str | None, instruction: str | None = None) -> Sample:
        """Coerce one request's image and region forms (see the module doc) into a Sample."""
        pil = load_image(image)
        if question is not None and not isinstance(question, str):
            raise InputError(f"question must be a string, got {type(question).__name__}")
        return Sample(pil, coerce_regions(regions, (pil.height, pil.width)), question, instruction)

    def _mode(self, compat: Compat | None) -> Compat:
        return self.compat if compat is None else check_mode(compat)

    @staticmethod
    def _listify(image: Any) -> tuple[list, bool]:
        if isinstance(image, (list, tuple)):
            if not image:
                raise InputError("empty batch: pass at least one image")
            return list(image), True
        return [image], False

    @staticmethod
    def _broadcast(value: Any, n: int, as_list: bool, what: str) -> list:
        if not as_list:
            return [value] * n
        if not isinstance(value, (list, tuple)) or len(value) != n:
            got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
            raise InputError(f"batch of {n} images needs {n} {what}, got {got}")
        return list(value)

    def _run(self, samples: list[Sample], compat: Compat | None, opts: DecodeOptions,
             keep_logits: bool = False) -> tuple[list[GARAnswer], list[torch.Tensor]]:
        """Answers, and the per-step ``(B, V)`` logits when ``keep_logits`` (else an empty list)."""
        vocab = self.processor.vocab
        with self._lock, torch.no_grad():
            res, lengths = self.engine.generate(samples, self._mode(compat), opts, {vocab.eos_id}, keep_logits)
            if keep_logits:  # set under the lock: concurrent calls never see another call's logits
                self.last_step_logits = res.step_logits
        answers = [GARAnswer(self._decode_text(ids), ids, reason, n)
                   for ids, reason, n in zip(res.token_ids, res.finish_reasons, lengths)]
        return answers, res.step_logits

    def _generate(self, samples: list[Sample], compat: Compat | None, opts: DecodeOptions,
                  keep_logits: bool = False) -> list[GARAnswer]:
        """Answers for a batch (``keep_logits`` also stores the step logits in ``last_step_logits``)."""
        return self._run(samples, compat, opts, keep_logits)[0]

    def _decode_text(self, ids: list[int]) -> str:
        v = self.processor.vocab
        keep = [i for i in ids if i not in (v.bos_id, v.eos_id, v.pad_id)]
        return self.processor.tokenizer.decode(keep, skip_special_tokens=False,
                                              clean_up_tokenization_spaces=False).strip()


__all__ = ["GAR", "GARAnswer", "DEFAULT_MODEL"]
