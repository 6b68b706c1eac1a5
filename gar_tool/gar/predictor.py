"""``GAR``: load a checkpoint once, then describe regions and answer questions about them.

::

    gar = GAR.from_pretrained("HaochenWang/GAR-1B")            # or a local directory
    gar.describe("street.jpg", {"box": [40, 60, 200, 380]}).text
    gar.relate("street.jpg", [mask_a, mask_b], "Is <Prompt0> taller than <Prompt1>?").text

``regions[i]`` is ``<Prompt{i}>`` in the question. Batch forms: pass a *list* of images (and
lists of regions / questions of the same length) to get a list of answers, computed together;
or build requests with :meth:`GAR.request` and run them with :meth:`GAR.answer`.

Video clips (GAR's video path, see :mod:`gar_tool.gar.processing.video`)::

    clip = gar_tool.video.load_clip("dog.mp4", num_frames=16)
    gar.describe_clip(clip, track).text          # track: a RegionTrack or per-frame masks / None
    gar.relate_clip(clip, [track_a, track_b], "Does <Prompt0> chase <Prompt1>?").text
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from gar_tool.errors import InputError
from gar_tool.gar.engine import CacheConfig, InferenceEngine
from gar_tool.gar.processing import GARInputs, GARProcessor
from gar_tool.gar.processing.video import GARVideoInputs
from gar_tool.gar.protocol import (Compat, DecodeOptions, GARAnswer, GARFrontMixin, GARRequest, check_mode,
                                   decode_options)
from gar_tool.gar.video import VideoEngine
from gar_tool.gar.video_protocol import GARVideoRequest
from gar_tool.media.images import load_image
from gar_tool.regions.forms import coerce_regions

DEFAULT_MODEL = "HaochenWang/GAR-1B"


@dataclass(frozen=True)
class Generation:
    """:meth:`GAR.generate`'s result: the answers, and per decoding step the ``(B, V)`` float32
    logits of every request (empty unless ``keep_logits``)."""

    answers: list[GARAnswer]
    step_logits: list[torch.Tensor]


class GAR(GARFrontMixin):
    """A loaded GAR model with its processor; a :class:`~gar_tool.gar.protocol.GARBackend` and a
    :class:`~gar_tool.gar.video_protocol.GARVideoBackend` (clips: :meth:`describe_clip`,
    :meth:`relate_clip`). Thread-safe (one model call at a time)."""

    def __init__(self, model: Any, processor: GARProcessor, *, compat: Compat = "default",
                 name: str = "GAR", cache: CacheConfig | None = None, vision_batch: int = 32) -> None:
        self.model = model.eval()
        self.processor = processor
        self.compat: Compat = check_mode(compat)
        self.name = name
        self.engine = InferenceEngine(self.model, processor, cache, vision_batch)
        self.video_engine = VideoEngine(self.model, processor, cache, vision_batch)
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
                missing files (never with ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``).
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
        model_obj, processor, _ = load_gar_model(
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

    # ------------------------------------------------------------------ GARBackend
    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Compat | None = None) -> GARRequest:
        """Coerce one request's image and region forms (see the module doc) and validate it
        against this model's prompt rules; raises :class:`~gar_tool.errors.InputError`."""
        pil = load_image(image)
        if question is not None and not isinstance(question, str):
            raise InputError(f"question must be a string, got {type(question).__name__}")
        if instruction is not None and not isinstance(instruction, str):
            raise InputError(f"instruction must be a string, got {type(instruction).__name__}")
        mode = self.compat if compat is None else check_mode(compat)
        req = GARRequest(pil, coerce_regions(regions, (pil.height, pil.width)), question, instruction, mode)
        self.processor.plan(req.regions, question, mode, instruction)  # raises PromptError
        return req

    def answer(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        """Answers to ``requests``, decoded as one batch."""
        return self.generate(requests, options).answers

    # ------------------------------------------------------------------ more
    def generate(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None, *,
                 keep_logits: bool = False) -> Generation:
        """:meth:`answer` plus, with ``keep_logits``, the logits of every decoding step."""
        if not requests:
            raise InputError("empty batch: pass at least one request")
        opts = options if options is not None else DecodeOptions()
        vocab = self.processor.vocab
        with self._lock:
            res, lengths = self.engine.generate(list(requests), opts, {vocab.eos_id}, keep_logits)
        return Generation(self._answers(res, lengths), res.step_logits)

    # ------------------------------------------------------------------ video clips (GARVideoBackend)
    def video_request(self, video: Any, tracks: Sequence[Any], question: str | None = None, *,
                      instruction: str | None = None, compat: Compat | None = None,
                      frames: int | None = None) -> GARVideoRequest:
        """Coerce and validate a question about a clip.

        Args:
            video: a :class:`~gar_tool.video.clip.Clip`, or what :func:`~gar_tool.video.load_clip`
                reads (video file, frame folder, list of frames); ``frames`` are sampled from it
                (default 16; ignored for a Clip).
            tracks: one track per object (``tracks[k]`` is ``<Prompt{k}>``): a
                :class:`~gar_tool.video.track.RegionTrack`, or per-frame region forms
                (:func:`~gar_tool.video.track.coerce_track`: masks / RLE / None per sampled frame).
            question: the question naming ``<Prompt0>``..., or ``None`` to describe one object.
        """
        from gar_tool.gar.processing.video import check_tracks, frame_run_token, video_plan
        from gar_tool.video.clip import DEFAULT_FRAMES
        from gar_tool.video.decode import load_clip
        from gar_tool.video.track import coerce_track

        if question is not None and not isinstance(question, str):
            raise InputError(f"question must be a string, got {type(question).__name__}")
        if instruction is not None and not isinstance(instruction, str):
            raise InputError(f"instruction must be a string, got {type(instruction).__name__}")
        if not isinstance(tracks, (list, tuple)):
            raise InputError(f"tracks must be a list with one region track per object, got {type(tracks).__name__}")
        mode = self.compat if compat is None else check_mode(compat)
        clip = load_clip(video, DEFAULT_FRAMES if frames is None else frames)
        coerced = tuple(coerce_track(t, clip, what=f"track {k}") for k, t in enumerate(tracks))
        video_plan(self.processor, len(coerced), question, mode, instruction)  # raises PromptError
        check_tracks(coerced, len(clip), clip.size)
        frame_run_token(self.processor, len(coerced) - 1, len(clip) - 1, len(clip))  # the last run exists
        return GARVideoRequest(clip, coerced, question, instruction, mode)

    def answer_video(self, requests: Sequence[GARVideoRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        """Answers to clip requests, decoded as one batch."""
        return self.generate_video(requests, options).answers

    def generate_video(self, requests: Sequence[GARVideoRequest], options: DecodeOptions | None = None, *,
                       keep_logits: bool = False) -> Generation:
        """:meth:`answer_video` plus, with ``keep_logits``, the logits of every decoding step."""
        if not requests:
            raise InputError("empty batch: pass at least one request")
        opts = options if options is not None else DecodeOptions()
        with self._lock:
            res, lengths = self.video_engine.generate(list(requests), opts, {self.processor.vocab.eos_id},
                                                      keep_logits)
        return Generation(self._answers(res, lengths), res.step_logits)

    def describe_clip(self, video: Any, track: Any, *, instruction: str | None = None, compat: Compat | None = None,
                      frames: int | None = None, **decode: Any) -> GARAnswer:
        """Describe the object of one track through a clip (see :meth:`video_request`)."""
        opts = decode_options(decode)
        return self.answer_video([self.video_request(video, [track], None, instruction=instruction, compat=compat,
                                                     frames=frames)], opts)[0]

    def relate_clip(self, video: Any, tracks: Sequence[Any], question: str, *, compat: Compat | None = None,
                    frames: int | None = None, **decode: Any) -> GARAnswer:
        """Answer a question about tracked objects (``tracks[k]`` = ``<Prompt{k}>``) in a clip."""
        opts = decode_options(decode)
        return self.answer_video([self.video_request(video, tracks, question, compat=compat, frames=frames)], opts)[0]

    def clip_inputs(self, video: Any, tracks: Sequence[Any], question: str | None = None, *,
                    instruction: str | None = None, compat: Compat | None = None,
                    frames: int | None = None) -> GARVideoInputs:
        """The preprocessed inputs of one clip request (for inspection and tests)."""
        from gar_tool.gar.processing.video import video_inputs

        req = self.video_request(video, tracks, question, instruction=instruction, compat=compat, frames=frames)
        return video_inputs(self.processor, req.clip.frames, req.tracks, req.question, req.compat, req.instruction)

    def _answers(self, res: Any, lengths: list[int]) -> list[GARAnswer]:
        return [GARAnswer(self._decode_text(ids), ids, reason, n)
                for ids, reason, n in zip(res.token_ids, res.finish_reasons, lengths)]

    def next_token_logits(self, image: Any, regions: Any, question: str | None = None, *,
                          compat: Compat | None = None) -> torch.Tensor:
        """``(V,)`` float32 logits of the first answer token (``question=None``: describe prompt)."""
        gen = self.generate([self.request(image, regions, question, compat=compat)],
                            DecodeOptions(max_new_tokens=1), keep_logits=True)
        return gen.step_logits[0][0]

    def inputs(self, image: Any, regions: Any, question: str | None = None, *,
               compat: Compat | None = None) -> GARInputs:
        """The preprocessed inputs of one request (for inspection, tests and training)."""
        req = self.request(image, regions, question, compat=compat)
        return self.processor(req.image, req.regions, question, req.compat)

    def _decode_text(self, ids: list[int]) -> str:
        v = self.processor.vocab
        keep = [i for i in ids if i not in (v.bos_id, v.eos_id, v.pad_id)]
        return self.processor.tokenizer.decode(keep, skip_special_tokens=False,
                                              clean_up_tokenization_spaces=False).strip()


__all__ = ["GAR", "GARAnswer", "GARRequest", "GARVideoRequest", "Generation", "DEFAULT_MODEL"]
