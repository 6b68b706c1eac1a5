"""Grounding DINO (transformers) text → boxes, optionally refined into masks by SAM.

:class:`GroundingDetector` turns phrases (``"a dog. a ball."``) into :class:`~gar_tool.regions.region.Regions`
labelled with the phrase each region matched and scored by the detector. Prompts longer than the
text encoder's ``config.max_text_len`` tokens are split into chunks of whole phrases, each chunk is
detected separately and the results are merged (per-phrase NMS); nothing is truncated.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Sequence

import torch

from gar_tool.errors import InputError
from gar_tool.media.images import ImageLike, load_image
from gar_tool.regions.region import Region, Regions
from gar_tool.grounding.defaults import DEFAULT_DETECTOR
from gar_tool.grounding.checkpoints import WEIGHT_FILES, load_model_and_processor
from gar_tool.grounding.phrases import build_prompt, chunk_phrases, parse_phrases, token_phrase_index
from gar_tool.grounding.postprocess import Detections, decode_detections, nms_per_label
from gar_tool.grounding.sam import SamSegmenter, load_segmenter

_FILES = (("config.json",), WEIGHT_FILES, ("preprocessor_config.json", "processor_config.json"),
          ("tokenizer.json", "vocab.txt"))
_EXTRA = ("model-*.safetensors", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "tokenizer.json")


def _unit_interval(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise InputError(f"{name} must be in [0, 1], got {value!r}")
    return v


class GroundingDetector:
    """Open-vocabulary detector: phrases → labelled regions.

    Build with :meth:`from_pretrained`. :meth:`detect` grounds phrases; :meth:`segment` turns
    user boxes / points into masks (the :class:`gar_tool.regions.region.Segmenter` protocol).

    Attributes:
        model: transformers ``GroundingDinoForObjectDetection`` (eval mode).
        processor: its ``GroundingDinoProcessor`` (image processor + BERT tokenizer).
        segmenter: a :class:`SamSegmenter`, or None (boxes then become box rectangles).
        nms_iou: IoU above which a lower-scored box of the same phrase is suppressed.
    """

    def __init__(self, model: Any, processor: Any, *, segmenter: SamSegmenter | None = None,
                 device: torch.device, dtype: torch.dtype, nms_iou: float = 0.5) -> None:
        self.model = model
        self.processor = processor
        self.segmenter = segmenter
        self.device = device
        self.dtype = dtype
        self.nms_iou = nms_iou
        # A fast tokenizer's Rust object is re-configured (truncation / padding) on every call and
        # fails with "Already borrowed" when two threads call it at once: calls take this lock.
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, detector: str | os.PathLike = DEFAULT_DETECTOR, segmenter: Any = None,
                        device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                        **kwargs: Any) -> "GroundingDetector":
        """Load Grounding DINO (``IDEA-Research/grounding-dino-tiny`` / ``-base``, or a local directory).

        Args:
            detector: local checkpoint directory or hub id.
            segmenter: None / False (no masks: regions are box rectangles), True (the default SAM,
                ``facebook/sam-vit-base``), a SAM directory or hub id, or a :class:`SamSegmenter`.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or None (best available).
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, a torch dtype, or None (float32 on
                CPU, bfloat16 on CUDA, float16 on MPS: :func:`gar_tool.hub.pick_dtype`).
            kwargs: passed to the constructor (``nms_iou``).

        Raises :class:`~gar_tool.errors.ModelNotFoundError` (one line: which model, which files,
        how to pass a directory) when a checkpoint cannot be found or downloaded.
        """
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        model, processor, dev, dt = load_model_and_processor(
            AutoModelForZeroShotObjectDetection.from_pretrained, AutoProcessor.from_pretrained, detector, device,
            dtype, what="Grounding DINO detector", option="detector=DIR / --detector DIR",
            model_type="grounding-dino", files=_FILES, extra=_EXTRA)
        seg = load_segmenter(segmenter, device=dev, dtype=dt)
        return cls(model, processor, segmenter=seg, device=dev, dtype=dt, **kwargs)

    @property
    def max_text_len(self) -> int:
        """Most text tokens (special tokens included) the text encoder reads at once."""
        return int(self.model.config.max_text_len)

    # ------------------------------------------------------------------ detection
    def detect(self, image: ImageLike, phrases: str | Sequence[str], box_threshold: float = 0.35,
               text_threshold: float = 0.25, max_regions: int | None = None) -> Regions:
        """Find the regions matching ``phrases``.

        Args:
            image: path, PIL image, ``H×W×3`` uint8 array or encoded bytes.
            phrases: ``"a dog. a ball."`` or ``["a dog", "a ball"]`` (see
                :func:`gar_tool.grounding.phrases.parse_phrases`).
            box_threshold: keep boxes whose detector score is ``> box_threshold``.
            text_threshold: a box is labelled with the phrase of its most probable phrase token,
                which must be ``> text_threshold`` (else the box is dropped).
            max_regions: keep at most this many regions (highest scores first).

        Returns:
            :class:`Regions` sorted by descending score, possibly empty. Each region has
            ``label`` = the phrase (as given), ``score`` = the *detector's* box score (never SAM's
            IoU estimate) and a mask: SAM's (``source="sam"``) when a segmenter is loaded, else
            the box rectangle (``source="box-rect"``); ``region.box`` is the mask's box.
        """
        words = parse_phrases(phrases)
        box_t = _unit_interval(box_threshold, "box_threshold")
        text_t = _unit_interval(text_threshold, "text_threshold")
        if max_regions is not None and (isinstance(max_regions, bool) or not isinstance(max_regions, int)
                                        or max_regions < 1):
            raise InputError(f"max_regions must be a positive integer or None, got {max_regions!r}")
        img = load_image(image)
        det = self.detect_boxes(img, words, box_t, text_t, max_regions)
        return self._regions(img, det, words)

    def detect_boxes(self, image: Any, phrases: list[str], box_threshold: float, text_threshold: float,
                     max_regions: int | None = None) -> Detections:
        """Boxes only: run every phrase chunk, merge, per-phrase NMS, sort, cap.

        ``image`` is an RGB PIL image; ``phrases`` is already parsed (``phrase_ids`` index it).
        """
        size = (image.height, image.width)
        chunks = chunk_phrases(phrases, lambda text: len(self._tokenize(text)["input_ids"]), self.max_text_len)
        pixels = self.processor.image_processor(images=image, return_tensors="pt")
        pixels = {k: v.to(self.device, self.dtype if v.is_floating_point() else v.dtype) for k, v in pixels.items()}
        parts, first = [], 0
        for chunk in chunks:
            parts.append(self._detect_chunk(pixels, chunk, first, size, box_threshold, text_threshold))
            first += len(chunk)
        return nms_per_label(Detections.cat(parts), self.nms_iou, max_regions)

    def _detect_chunk(self, pixels: dict[str, torch.Tensor], chunk: list[str], first: int,
                      size: tuple[int, int], box_threshold: float, text_threshold: float) -> Detections:
        text, spans = build_prompt(chunk)
        enc = self._tokenize(text, return_tensors="pt", return_offsets_mapping=True, return_token_type_ids=True)
        offsets = enc.pop("offset_mapping")[0].tolist()  # (L, 2) character range of each token
        owner = token_phrase_index(offsets, spans, first_phrase=first)
        with torch.inference_mode():
            out = self.model(**pixels, **{k: v.to(self.device) for k, v in enc.items()})
        # logits (1, Q, max_text_len), pred_boxes (1, Q, 4) relative cxcywh
        return decode_detections(out.logits[0], out.pred_boxes[0], owner, size, box_threshold, text_threshold)

    def _tokenize(self, text: str, **kwargs: Any) -> Any:
        with self._tokenizer_lock:
            return self.processor.tokenizer(text, **kwargs)

    def _regions(self, image: Any, det: Detections, phrases: list[str]) -> Regions:
        size = (image.height, image.width)
        boxes = det.boxes.tolist()
        labels = [phrases[i] for i in det.phrase_ids.tolist()]
        scores = det.scores.tolist()
        if not boxes:
            return Regions()
        if self.segmenter is None:
            return Regions(Region.from_box(b, size, label=lab, score=s) for b, lab, s in zip(boxes, labels, scores))
        masks = self.segmenter.segment(image, boxes=boxes)
        return Regions(r.with_meta(label=lab, score=s) for r, lab, s in zip(masks, labels, scores))

    # ------------------------------------------------------------------ user prompts
    def segment(self, image: ImageLike, boxes: Any = None, points: Any = None, point_labels: Any = None) -> Regions:
        """Masks for user box / point prompts (see :meth:`SamSegmenter.segment`).

        Without a segmenter, boxes become their rectangles (``source="box-rect"``) and points
        discs (``source="points-disc"``), as :meth:`Region.from_box` / :meth:`Region.from_points`
        do without one.
        """
        if self.segmenter is not None:
            return self.segmenter.segment(image, boxes=boxes, points=points, point_labels=point_labels)
        img = load_image(image)
        size = (img.height, img.width)
        if boxes is not None and points is None:
            return Regions(Region.from_box(b, size) for b in boxes)
        if points is not None and boxes is None:
            labels = point_labels if point_labels is not None else [None] * len(points)
            return Regions(Region.from_points(p, size, lab) for p, lab in zip(points, labels))
        raise InputError("without a segmenter, give either boxes or points (combining them needs SAM: "
                         "load the detector with segmenter=True)")


__all__ = ["DEFAULT_DETECTOR", "GroundingDetector"]
