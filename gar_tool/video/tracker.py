"""SAM 2 video (transformers ``Sam2VideoModel``): a prompt on one frame → a mask on every frame.

:class:`Sam2VideoTracker` runs transformers' SAM 2 video predictor over the *sampled* frames of a
:class:`~gar_tool.video.clip.Clip` (its memory bridges the gaps between them; sample more frames
for fast motion). A prompt — a mask, a box or click points — is added on sampled frame ``k``;
SAM 2 segments that frame, then propagates forward to the last frame and backward to the first.
A frame where SAM 2's object score is not positive (its own "object appears" rule) or whose mask
comes out empty is reported ``"absent"``, never filled in.

On the prompt frame the track keeps the caller's own mask when the prompt is a mask (exact, not
SAM 2's low-resolution copy), and SAM 2's mask for a box / points prompt; when SAM 2 finds nothing
at a box / points prompt, the box rectangle / point discs are used there (``source`` says so,
as :class:`~gar_tool.grounding.sam.SamSegmenter` does). :meth:`propagate` returns SAM 2's raw
per-frame output for prompts on any frames (a mask prompt on every frame reproduces those masks,
which is how the plumbing is tested without trained weights).

:meth:`track_phrase` grounds a phrase on the key frame first (Grounding DINO, + SAM when the
detector has a segmenter) and propagates the best detection.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from gar_tool.errors import InputError, RegionError
from gar_tool.grounding.checkpoints import WEIGHT_FILES, load_model_and_processor
from gar_tool.regions.forms import coerce_region
from gar_tool.regions.region import Region, Regions
from gar_tool.video.clip import Clip
from gar_tool.video.track import FrameState, RegionTrack

#: The tracker used when ``--tracker sam2`` / ``tracker=True`` asks for the default.
DEFAULT_TRACKER = "facebook/sam2.1-hiera-tiny"
_FILES = (("config.json",), WEIGHT_FILES, ("processor_config.json", "preprocessor_config.json"))
_EXTRA = ("model-*.safetensors", "video_preprocessor_config.json", "preprocessor_config.json")
_OBJ = 1  # SAM 2 object id of the (single) object of a session


@dataclass(frozen=True)
class FramePrompt:
    """A prompt on sampled frame ``frame``: exactly one of ``mask`` (``H×W`` bool), ``box``
    (``x1, y1, x2, y2`` pixels) or ``points`` (``[[x, y], ...]`` with ``labels`` 1 / 0)."""

    frame: int
    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] | None = None
    labels: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Propagation:
    """SAM 2's output per sampled frame: ``masks[i]`` ``(H, W)`` bool (at the frame size) and
    ``scores[i]`` the object score logit (``> 0``: the object appears)."""

    masks: tuple[np.ndarray, ...]
    scores: tuple[float, ...]

    def appears(self, i: int) -> bool:
        return self.scores[i] > 0 and bool(self.masks[i].any())


class Sam2VideoTracker:
    """Prompt → per-frame masks with a transformers SAM 2 video checkpoint (see the module doc)."""

    def __init__(self, model: Any, processor: Any, *, device: torch.device, dtype: torch.dtype,
                 name: str = "SAM 2") -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.name = name

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = DEFAULT_TRACKER, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None) -> "Sam2VideoTracker":
        """Load a SAM 2 video checkpoint (``facebook/sam2.1-hiera-tiny`` ... or a local directory;
        safetensors only). Raises :class:`~gar_tool.errors.ModelNotFoundError` when the files
        cannot be found, :class:`~gar_tool.errors.ModelError` when they are not SAM 2."""
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        net, processor, dev, dt = load_model_and_processor(
            Sam2VideoModel.from_pretrained, Sam2VideoProcessor.from_pretrained, model, device, dtype,
            what="SAM 2 video tracker", option="tracker=DIR / --tracker DIR", model_type="sam2_video",
            files=_FILES, extra=_EXTRA)
        return cls(net, processor, device=dev, dtype=dt, name=str(model))

    # ------------------------------------------------------------------ raw propagation
    def propagate(self, clip: Clip, prompts: Sequence[FramePrompt]) -> Propagation:
        """Add ``prompts`` (one object; frames may repeat only across kinds SAM 2 allows), segment
        their frames, and propagate forward from the first prompted frame and backward from it."""
        if not prompts:
            raise InputError("propagate needs at least one prompt")
        h, w = clip.size
        session = self.processor.init_video_session(
            video=[np.asarray(f) for f in clip.frames], inference_device=self.device,
            inference_state_device=self.device, video_storage_device=self.device, dtype=self.dtype)
        for p in sorted(prompts, key=lambda q: q.frame):
            self._add(session, clip.frame_index(p.frame, "prompt frame"), p)
            with torch.inference_mode():
                self.model(inference_session=session, frame_idx=p.frame)
        start = min(p.frame for p in prompts)
        logits: dict[int, torch.Tensor] = {}
        scores: dict[int, float] = {}
        with torch.inference_mode():
            for reverse in (False, True):
                for out in self.model.propagate_in_video_iterator(session, start_frame_idx=start, reverse=reverse):
                    logits[int(out.frame_idx)] = out.pred_masks
                    scores[int(out.frame_idx)] = float(out.object_score_logits.reshape(-1)[0])
        missing = [i for i in range(len(clip)) if i not in logits]
        if missing:  # cannot happen with transformers' iterator; guard the frame bookkeeping anyway
            raise RuntimeError(f"SAM 2 returned no mask for frames {missing}")
        masks = []
        for i in range(len(clip)):
            up = self.processor.post_process_masks([logits[i].float().cpu()], original_sizes=[[h, w]],
                                                   binarize=True)[0]
            masks.append(up.reshape(-1, h, w)[0].numpy().astype(bool))
        return Propagation(tuple(masks), tuple(scores[i] for i in range(len(clip))))

    def _add(self, session: Any, frame: int, p: FramePrompt) -> None:
        kinds = [x is not None for x in (p.mask, p.box, p.points)]
        if sum(kinds) != 1:
            raise InputError("a frame prompt needs exactly one of mask, box or points")
        if p.mask is not None:
            self.processor.add_inputs_to_inference_session(session, frame_idx=frame, obj_ids=_OBJ,
                                                           input_masks=np.asarray(p.mask, dtype=bool))
        elif p.box is not None:
            self.processor.add_inputs_to_inference_session(session, frame_idx=frame, obj_ids=_OBJ,
                                                           input_boxes=[[list(p.box)]])
        else:
            labels = list(p.labels) if p.labels is not None else [1] * len(p.points or ())
            self.processor.add_inputs_to_inference_session(
                session, frame_idx=frame, obj_ids=_OBJ, input_points=[[[list(q) for q in p.points or ()]]],
                input_labels=[[labels]])

    # ------------------------------------------------------------------ tracks
    def track(self, clip: Clip, prompt: Any, frame: int, *, label: str | None = None) -> RegionTrack:
        """Track the object that ``prompt`` marks on sampled frame ``frame`` through ``clip``.

        Args:
            clip: the sampled frames.
            prompt: a region form on that frame: a mask (array, COCO RLE, ``Region`` with a
                mask), ``{"box": [x1, y1, x2, y2]}``, ``{"points": [[x, y], ...], "labels": ...}``,
                or a CLI spec (``box:...``, ``points:...``, ``mask:PNG``, ``rle:...``).
            frame: index of the sampled frame the prompt is on.
            label: name stored on the track.
        """
        k = clip.frame_index(frame, "the prompt frame")
        fp, given = _frame_prompt(prompt, clip, k)
        prop = self.propagate(clip, [fp])
        regions: list[Region | None] = []
        states: list[FrameState] = []
        scores: list[float | None] = []
        for i in range(len(clip)):
            prob = _sigmoid(prop.scores[i])
            if i == k and fp.mask is not None:
                regions.append(given)
                states.append("given")
            elif prop.appears(i):
                regions.append(Region(prop.masks[i], score=prob, source="sam2", label=label))
                states.append("tracked")
            elif i == k:  # SAM 2 found nothing at the user's box / points: keep the prompt itself
                regions.append(given)
                states.append("given")
            else:
                regions.append(None)
                states.append("absent")
            scores.append(prob)
        return RegionTrack(tuple(regions), tuple(states), label=label, scores=tuple(scores))

    def track_phrase(self, clip: Clip, phrase: str, frame: int, detector: Any, *,
                     box_threshold: float = 0.35) -> RegionTrack:
        """Ground ``phrase`` on sampled frame ``frame`` (``detector.detect``; the best-scoring
        region) and track it. RegionError when the detector finds nothing there."""
        k = clip.frame_index(frame, "the key frame")
        found = detector.detect(clip.frames[k], phrase, box_threshold=box_threshold, max_regions=1)
        if not len(found):
            raise RegionError(f"no region found for {phrase!r} on frame {k} (box_threshold {box_threshold}); "
                              "try a lower threshold, another key frame or a box prompt")
        best = found[0]
        return self.track(clip, best, k, label=best.label or phrase)


class _PromptRecorder:
    """A :class:`~gar_tool.regions.region.Segmenter` that remembers the box / points it is asked
    to segment and answers with the unrefined region (box rectangle, point discs): so that a CLI
    spec or wire dict is parsed and validated by :mod:`gar_tool.regions.forms`, and its prompt is
    then handed to SAM 2 as a prompt rather than as a mask."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.prompt: tuple[str, Any, Any] | None = None

    def segment(self, image: Any, boxes: Any = None, points: Any = None, point_labels: Any = None) -> Regions:
        if boxes is not None:
            self.prompt = ("box", tuple(float(v) for v in boxes[0]), None)
            return Regions([Region.from_box(boxes[0], self.size)])
        labels = point_labels[0] if point_labels is not None else None
        self.prompt = ("points", tuple((float(x), float(y)) for x, y in points[0]),
                       tuple(int(v) for v in labels) if labels is not None else None)
        return Regions([Region.from_points(points[0], self.size, labels)])


def _frame_prompt(prompt: Any, clip: Clip, k: int) -> tuple[FramePrompt, Region]:
    """The SAM 2 prompt for a region form on frame ``k``, and the region it stands for on its own
    (the mask itself, or the box rectangle / point discs)."""
    recorder = _PromptRecorder(clip.size)
    if isinstance(prompt, Region):
        region = coerce_region(prompt, clip.size)
        if region.source in ("box-rect", "points-disc"):  # an unrefined box / points prompt
            return FramePrompt(k, box=region.box), region
        return FramePrompt(k, mask=region.mask), region
    region = coerce_region(prompt, clip.size, image=clip.frames[k], segmenter=recorder)
    if recorder.prompt is None:
        return FramePrompt(k, mask=region.mask), region
    kind, data, labels = recorder.prompt
    if kind == "box":
        return FramePrompt(k, box=data), region
    return FramePrompt(k, points=data, labels=labels), region


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))


def load_tracker(spec: Any, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None) -> Sam2VideoTracker | None:
    """Tracker from a CLI / config value: ``None`` / ``False`` / ``"none"`` → None; ``True`` /
    ``"sam2"`` / ``"default"`` → :data:`DEFAULT_TRACKER`; a tracker as is; else a directory / hub id."""
    if spec is None or spec is False:
        return None
    if isinstance(spec, Sam2VideoTracker):
        return spec
    if spec is True:
        return Sam2VideoTracker.from_pretrained(DEFAULT_TRACKER, device=device, dtype=dtype)
    if not isinstance(spec, (str, os.PathLike)):
        raise InputError(f"tracker must be None, a bool, a path or a hub id, got {type(spec).__name__}")
    text = os.fspath(spec).strip()
    if text.lower() in ("", "none", "off", "no", "false"):
        return None
    if text.lower() in ("sam2", "default", "true", "yes", "on"):
        return Sam2VideoTracker.from_pretrained(DEFAULT_TRACKER, device=device, dtype=dtype)
    return Sam2VideoTracker.from_pretrained(text, device=device, dtype=dtype)


__all__ = ["Sam2VideoTracker", "FramePrompt", "Propagation", "DEFAULT_TRACKER", "load_tracker"]
