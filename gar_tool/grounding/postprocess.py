"""Grounding DINO raw outputs → scored, labelled pixel boxes (pure tensor functions).

The detector's head gives, for each of ``Q`` queries, a box and one logit per text token:

    logits      ``(Q, T)`` float, ``-inf`` at padding (``T`` = ``config.max_text_len``)
    pred_boxes  ``(Q, 4)`` float in ``[0, 1]``, ``(cx, cy, w, h)`` relative to the image size

Rules (:func:`decode_detections`), the same as Grounding DINO's reference post-processing for
boxes and scores:

* ``score`` = max over all tokens of ``sigmoid(logit)``; a query is kept when
  ``score > box_threshold`` (strict: a threshold of 1.0 keeps nothing).
* its ``label`` is the phrase holding its most probable *phrase token* (separators and [CLS] /
  [SEP] excluded), provided that token's probability is ``> text_threshold``; queries with no
  phrase token above ``text_threshold`` are dropped. (transformers' own post-processing instead
  returns the decoded text of every token above ``text_threshold``, which can mix phrases —
  ``"dog ball"`` — and is not a phrase of the prompt.)
* boxes become ``(x1, y1, x2, y2)`` pixels (origin top-left, x right, y down), clipped to
  ``[0, W] × [0, H]``; boxes narrower or lower than ``min_box_size`` pixels after clipping are
  dropped.

:func:`nms_per_label` then removes duplicates among boxes of the same phrase only
(``torchvision.ops.batched_nms``) and sorts by score. :func:`transformers_postprocess` is the one
place that calls transformers' ``post_process_grounded_object_detection``; it exists as the
reference our rules are tested against (its argument names changed across versions).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from gar_tool.errors import ModelError


@dataclass(frozen=True)
class Detections:
    """Detections of one image.

    Attributes:
        boxes: ``(N, 4)`` float32, xyxy pixels, inside the image.
        scores: ``(N,)`` float32 in ``[0, 1]``, the detector's box score.
        phrase_ids: ``(N,)`` int64, index of the matched phrase.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    phrase_ids: torch.Tensor

    def __post_init__(self) -> None:
        n = self.scores.shape[0]
        if self.boxes.shape != (n, 4) or self.phrase_ids.shape != (n,):
            raise ValueError(f"Detections: boxes {tuple(self.boxes.shape)}, scores {tuple(self.scores.shape)} "
                             f"and phrase_ids {tuple(self.phrase_ids.shape)} disagree (expected (N, 4), (N,), (N,))")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, index: torch.Tensor) -> "Detections":
        """Subset (and order) given by an index or bool tensor."""
        return Detections(self.boxes[index], self.scores[index], self.phrase_ids[index])

    @staticmethod
    def empty() -> "Detections":
        return Detections(torch.zeros((0, 4)), torch.zeros((0,)), torch.zeros((0,), dtype=torch.long))

    @staticmethod
    def cat(parts: Sequence["Detections"]) -> "Detections":
        """Concatenate detections of the same image (e.g. of several phrase chunks)."""
        if not parts:
            return Detections.empty()
        return Detections(torch.cat([p.boxes for p in parts]), torch.cat([p.scores for p in parts]),
                          torch.cat([p.phrase_ids for p in parts]))


def cxcywh_to_xyxy_pixels(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``(N, 4)`` relative ``(cx, cy, w, h)`` → ``(N, 4)`` pixel ``(x1, y1, x2, y2)``, clipped to
    the image (``image_size`` = ``(height, width)``)."""
    h, w = image_size
    cx, cy, bw, bh = boxes.float().unbind(-1)
    xyxy = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], dim=-1)
    xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0.0, float(w))
    xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0.0, float(h))
    return xyxy


def decode_detections(logits: torch.Tensor, pred_boxes: torch.Tensor, token_phrase: Sequence[int],
                      image_size: tuple[int, int], box_threshold: float, text_threshold: float,
                      min_box_size: float = 1.0) -> Detections:
    """Apply the rules of the module docstring to one image's raw outputs.

    Args:
        logits: ``(Q, T)`` token logits (any float dtype; ``-inf`` allowed).
        pred_boxes: ``(Q, 4)`` relative ``(cx, cy, w, h)``.
        token_phrase: length ``L <= T``: phrase index of each prompt token, ``-1`` for
            separators / special tokens (:func:`gar_tool.grounding.phrases.token_phrase_index`).
            Positions ``>= L`` (padding) belong to no phrase.
        image_size: ``(height, width)`` in pixels.
        box_threshold, text_threshold: in ``[0, 1]``.
        min_box_size: minimum width and height in pixels of a kept box.

    Returns:
        :class:`Detections` in query order (not yet deduplicated).
    """
    if logits.ndim != 2 or pred_boxes.shape != (logits.shape[0], 4):
        raise ValueError(f"expected logits (Q, T) and pred_boxes (Q, 4), got {tuple(logits.shape)} "
                         f"and {tuple(pred_boxes.shape)}")
    t = logits.shape[1]
    if len(token_phrase) > t:
        raise ValueError(f"{len(token_phrase)} prompt tokens but only {t} logits per query")
    if t == 0 or logits.shape[0] == 0:
        return Detections.empty()
    probs = torch.sigmoid(logits.detach().float().cpu())  # (Q, T); sigmoid(-inf) = 0
    scores = probs.max(dim=-1).values  # (Q,) the usual Grounding DINO box score

    owner = torch.full((t,), -1, dtype=torch.long)  # (T,) phrase of each token, -1 = none
    owner[: len(token_phrase)] = torch.as_tensor(list(token_phrase), dtype=torch.long)
    phrase_probs = probs.masked_fill(owner[None, :] < 0, -1.0)  # (Q, T) non-phrase tokens never win
    best_prob, best_token = phrase_probs.max(dim=-1)  # (Q,), (Q,)
    phrase_ids = owner[best_token]  # (Q,)

    boxes = cxcywh_to_xyxy_pixels(pred_boxes.detach().cpu(), image_size)
    wide = (boxes[:, 2] - boxes[:, 0] >= min_box_size) & (boxes[:, 3] - boxes[:, 1] >= min_box_size)
    keep = (scores > box_threshold) & (best_prob > text_threshold) & (phrase_ids >= 0) & wide
    return Detections(boxes[keep], scores[keep], phrase_ids[keep])


def nms_per_label(det: Detections, iou_threshold: float, max_regions: int | None = None) -> Detections:
    """Non-maximum suppression within each phrase, then sort by score (descending) and keep at most
    ``max_regions``. Boxes of different phrases never suppress each other."""
    from torchvision.ops import batched_nms

    if len(det) == 0:
        return det
    keep = batched_nms(det.boxes.float(), det.scores.float(), det.phrase_ids, iou_threshold)  # sorted by score
    if max_regions is not None:
        keep = keep[:max_regions]
    return det.select(keep)


def transformers_postprocess(processor: Any, outputs: Any, input_ids: torch.Tensor, box_threshold: float,
                             text_threshold: float, image_size: tuple[int, int]) -> dict[str, Any]:
    """transformers' ``post_process_grounded_object_detection`` for one image, whatever its version.

    The box-threshold argument is ``threshold`` in recent transformers and ``box_threshold`` in
    older ones; the text labels are under ``text_labels`` (newer) or ``labels``. Returns
    ``{"scores": (N,), "boxes": (N, 4) xyxy pixels (not clipped), "text_labels": list[str]}``.
    """
    fn = processor.post_process_grounded_object_detection
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {"input_ids": input_ids, "text_threshold": text_threshold,
                              "target_sizes": [tuple(image_size)]}
    for name in ("threshold", "box_threshold"):
        if name in params:
            kwargs[name] = box_threshold
            break
    else:
        raise ModelError("this transformers version's post_process_grounded_object_detection takes neither "
                         f"'threshold' nor 'box_threshold' (parameters: {', '.join(params)})")
    result = fn(outputs, **kwargs)[0]
    labels = result["text_labels"] if "text_labels" in result else result["labels"]
    return {"scores": result["scores"], "boxes": result["boxes"], "text_labels": list(labels)}


__all__ = ["Detections", "cxcywh_to_xyxy_pixels", "decode_detections", "nms_per_label",
           "transformers_postprocess"]
