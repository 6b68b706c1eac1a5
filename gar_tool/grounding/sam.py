"""SAM (transformers ``SamModel``): box / point prompts → object masks, one image embedding per image.

:class:`SamSegmenter` follows the *load once, query many* shape: the heavy image encoder runs once
per image (``set_image``, called implicitly by ``segment``) and its embedding is cached under a
hash of the image's pixels, so further prompts on the same image only run the light prompt
encoder and mask decoder. It implements the :class:`gar_tool.regions.region.Segmenter` protocol, so
``Region.from_box(box, size, image=img, segmenter=sam)`` gives a real object mask.

Coordinates are image pixels, origin top-left, x right, y down. Boxes are ``(x1, y1, x2, y2)``
(as ``Region.box``) and points ``(x, y)``; both are passed to SAM as they are (SAM's prompt encoder
adds its own half-pixel shift), rescaled to the resolution SAM's processor resized the image to.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gar_tool.cache import LRUCache, image_key, nbytes
from gar_tool.errors import RegionError
from gar_tool.limits import limit
from gar_tool.media.images import ImageLike, load_image
from gar_tool.regions.region import Region, Regions, validate_box
from gar_tool.grounding.defaults import DEFAULT_SEGMENTER
from gar_tool.grounding.checkpoints import WEIGHT_FILES, load_model_and_processor

#: Spellings of "no segmenter" / "the default segmenter" accepted by :func:`load_segmenter`.
NO_SEGMENTER = ("", "none", "off", "no", "false")
DEFAULT_SEGMENTER_ALIASES = ("sam", "default", "true", "yes", "on")
#: Upper bound on float elements per mask-upsampling call (256 MB of float32), to bound memory on
#: large images with many prompts.
_UPSAMPLE_BUDGET = 1 << 26

_FILES = (("config.json",), WEIGHT_FILES, ("preprocessor_config.json", "processor_config.json"))
_EXTRA = ("model-*.safetensors",)


@dataclass(frozen=True)
class _Prompt:
    """One region's prompt: a box and/or points with labels (1 inside, 0 outside)."""

    box: tuple[float, float, float, float] | None
    points: list[tuple[float, float]] | None
    labels: list[int] | None


@dataclass(frozen=True)
class _ImageState:
    embeddings: torch.Tensor  # (1, C, h', w') SAM image embedding, on the model's device
    original_size: tuple[int, int]  # (H, W) of the image
    reshaped_size: tuple[int, int]  # (h, w) the processor resized it to (before padding)


class SamSegmenter:
    """Box / point prompts → masks with a transformers SAM checkpoint.

    Build with :meth:`from_pretrained`. ``segment`` returns one :class:`Region` per prompt, in
    prompt order, ``source="sam"`` and ``score=None``: a region's ``score`` is a *detector's*
    confidence, which SAM is not; SAM's own predicted IoU of each chosen mask (clipped to
    ``[0, 1]``) comes from :meth:`segment_with_scores`. A prompt whose mask comes out empty falls
    back to the box's rectangle (``source="box-rect"``) or to discs around the positive points
    (``source="points-disc"``).

    Thread-safe: concurrent ``segment`` calls (``gar serve`` runs tool calls in worker threads)
    share one image-embedding cache (:class:`gar_tool.cache.LRUCache`, keyed by
    :func:`gar_tool.cache.image_key`); an image being embedded by one thread is waited for, not
    embedded again, by the others.
    """

    def __init__(self, model: Any, processor: Any, *, device: torch.device, dtype: torch.dtype,
                 cache_size: int = 4, prompt_batch_size: int = 64) -> None:
        if cache_size < 1 or prompt_batch_size < 1:
            raise ValueError(f"cache_size and prompt_batch_size must be >= 1, got {cache_size}, {prompt_batch_size}")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.cache_size = cache_size
        self.prompt_batch_size = prompt_batch_size
        self._cache = LRUCache(max_bytes=1 << 62, max_items=cache_size,
                               size_of=lambda state: nbytes(state.embeddings))
        self._pending: dict[str, threading.Lock] = {}  # image key -> lock held while it is embedded
        self._pending_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = DEFAULT_SEGMENTER, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, **kwargs: Any) -> "SamSegmenter":
        """Load a SAM checkpoint (local directory or hub id; safetensors only).

        Raises :class:`~gar_tool.errors.ModelNotFoundError` when the files cannot be found or
        downloaded, :class:`~gar_tool.errors.ModelError` when they are not a SAM checkpoint.
        """
        from transformers import SamModel, SamProcessor

        net, processor, dev, dt = load_model_and_processor(
            SamModel.from_pretrained, SamProcessor.from_pretrained, model, device, dtype, what="SAM segmenter",
            option="segmenter=DIR / --segmenter DIR, or --segmenter none", model_type="sam", files=_FILES,
            extra=_EXTRA)
        return cls(net, processor, device=dev, dtype=dt, **kwargs)

    # ------------------------------------------------------------------ image embedding
    def set_image(self, image: ImageLike) -> str:
        """Compute (or fetch from the cache) the embedding of ``image``; returns its cache key."""
        img = load_image(image)
        self._state(img)
        return image_key(img)

    def reset_image(self) -> None:
        """Forget every cached image embedding."""
        self._cache.clear()

    def _state(self, img: Any) -> _ImageState:
        key = image_key(img)
        state = self._cache.get(key)
        if state is not None:
            return state
        with self._pending_lock:
            lock = self._pending.setdefault(key, threading.Lock())
        with lock:  # one thread embeds an image; the others wait and read the cache
            state = self._cache.get(key)
            if state is None:
                state = self._embed(img)
                self._cache.put(key, state)
        with self._pending_lock:
            self._pending.pop(key, None)
        return state

    def _embed(self, img: Any) -> _ImageState:
        enc = self.processor(images=img, return_tensors="pt")
        pixels = enc["pixel_values"].to(self.device, self.dtype)  # (1, 3, S, S) resized + padded
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(pixels)  # (1, C, S/patch, S/patch)
        return _ImageState(emb, tuple(int(v) for v in enc["original_sizes"][0]),  # type: ignore[arg-type]
                           tuple(int(v) for v in enc["reshaped_input_sizes"][0]))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ prompts → masks
    def segment(self, image: ImageLike, boxes: Any = None, points: Any = None, point_labels: Any = None,
                *, multimask: bool | str = "auto") -> Regions:
        """Masks for ``N`` prompts on one image (see :meth:`segment_with_scores`; ``score`` is None)."""
        return self.segment_with_scores(image, boxes, points, point_labels, multimask=multimask)[0]

    def segment_with_scores(self, image: ImageLike, boxes: Any = None, points: Any = None,
                            point_labels: Any = None, *, multimask: bool | str = "auto"
                            ) -> tuple[Regions, list[float | None]]:
        """Masks for ``N`` prompts on one image.

        Args:
            image: path, PIL image, ``H×W×3`` uint8 array or encoded bytes.
            boxes: ``N`` boxes ``[[x1, y1, x2, y2], ...]`` (pixels, inside the image), or None.
            points: ``N`` lists of ``[x, y]`` clicks, one list per region, or None.
            point_labels: same nesting as ``points`` minus the coordinates: 1 = inside,
                0 = outside (default all 1). With both ``boxes`` and ``points``, region ``i``
                uses box ``i`` and points ``i`` together.
            multimask: ``"auto"`` (default) asks SAM for 3 candidate masks and keeps the one with
                the best predicted IoU when a region is prompted by a single point (ambiguous),
                and for SAM's single-mask output otherwise (box, several points), as SAM's
                authors recommend; ``True`` / ``False`` force one mode for every prompt.

        Returns:
            ``(regions, ious)``: :class:`Regions` of length ``N`` in prompt order (see the class
            docstring) and SAM's predicted IoU of each mask (None where a fallback was used).
        """
        img = load_image(image)
        size = (img.height, img.width)
        prompts = _normalize_prompts(boxes, points, point_labels, size)
        if multimask not in ("auto", True, False):
            raise ValueError(f"multimask must be 'auto', True or False, got {multimask!r}")
        state = self._state(img)
        masks: list[np.ndarray | None] = [None] * len(prompts)
        ious: list[float] = [0.0] * len(prompts)
        for flag in (True, False):
            group = [i for i, p in enumerate(prompts) if _wants_multimask(p, multimask) == flag]
            for start in range(0, len(group), self.prompt_batch_size):
                batch = group[start:start + self.prompt_batch_size]
                batch_masks, batch_ious = self._decode(state, [prompts[i] for i in batch], flag)
                for i, m, s in zip(batch, batch_masks, batch_ious):
                    masks[i], ious[i] = m, s
        regions = [_to_region(p, m, size) for p, m in zip(prompts, masks)]
        scores = [float(s) if r.source == "sam" else None for r, s in zip(regions, ious)]
        return Regions(regions), scores

    def _decode(self, state: _ImageState, prompts: list[_Prompt], multimask: bool
                ) -> tuple[list[np.ndarray], list[float]]:
        """Run the prompt encoder + mask decoder on one batch; masks at the image's size."""
        (h, w), (rh, rw) = state.original_size, state.reshaped_size
        sx, sy = rw / w, rh / h  # pixel → model-input coordinates
        inputs: dict[str, torch.Tensor] = {}
        if prompts[0].box is not None:
            boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in (p.box for p in prompts)]  # type: ignore[index]
            inputs["input_boxes"] = torch.tensor([boxes], dtype=self.dtype, device=self.device)  # (1, n, 4)
        if prompts[0].points is not None:
            pad = getattr(self.processor, "point_pad_value", -10)  # label SAM ignores
            width = max(len(p.points) for p in prompts)  # type: ignore[arg-type]
            pts = [[[x * sx, y * sy] for x, y in p.points] + [[pad, pad]] * (width - len(p.points))  # type: ignore[union-attr,arg-type]
                   for p in prompts]
            labs = [list(p.labels) + [pad] * (width - len(p.labels)) for p in prompts]  # type: ignore[arg-type]
            inputs["input_points"] = torch.tensor([pts], dtype=self.dtype, device=self.device)  # (1, n, P, 2)
            inputs["input_labels"] = torch.tensor([labs], dtype=torch.long, device=self.device)  # (1, n, P)
        with torch.inference_mode():
            out = self.model(image_embeddings=state.embeddings, multimask_output=multimask, **inputs)
        iou = out.iou_scores[0].float()  # (n, k)
        best = iou.argmax(dim=-1)  # (n,)
        rows = torch.arange(len(prompts), device=best.device)
        low_res = out.pred_masks[0][rows, best].float()  # (n, h', w') mask logits
        scores = iou[rows, best].clamp(0.0, 1.0).tolist()
        step = max(1, _UPSAMPLE_BUDGET // (h * w))
        full: list[np.ndarray] = []
        for s in range(0, len(prompts), step):
            part = low_res[s:s + step, None][None]  # (1, m, 1, h', w')
            up = self.processor.post_process_masks(part.cpu(), [[h, w]], [[rh, rw]])[0]  # (m, 1, H, W) bool
            full.extend(m[0].numpy().astype(bool, copy=False) for m in up)
        return full, scores


def _wants_multimask(prompt: _Prompt, mode: bool | str) -> bool:
    if mode != "auto":
        return bool(mode)
    return prompt.box is None and prompt.points is not None and len(prompt.points) == 1


def _to_region(prompt: _Prompt, mask: np.ndarray | None, size: tuple[int, int]) -> Region:
    if mask is not None and mask.any():
        return Region(mask, source="sam")
    if prompt.box is not None:  # empty SAM mask: keep the user's intent, flagged as unrefined
        return Region.from_box(prompt.box, size)
    return Region.from_points(prompt.points or [], size, prompt.labels)


def _numbers(value: Any, what: str) -> list[float]:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise RegionError(f"{what} must be a list of numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise RegionError(f"{what} contains a non-finite value: {value!r}")
    return out


def _as_list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _normalize_prompts(boxes: Any, points: Any, point_labels: Any, size: tuple[int, int]) -> list[_Prompt]:
    """Validate user prompts against the image ``size`` = ``(H, W)``; one :class:`_Prompt` per region."""
    h, w = size
    box_list: list[tuple[float, float, float, float]] | None = None
    if boxes is not None:
        raw = _as_list(boxes)
        if len(raw) == 4 and all(isinstance(v, (int, float)) for v in raw):
            raw = [raw]  # a single flat box
        box_list = []
        for i, b in enumerate(raw):
            box_list.append(validate_box(b, (h, w), f"boxes[{i}]"))
    pts_list: list[list[tuple[float, float]]] | None = None
    lab_list: list[list[int]] | None = None
    if points is not None:
        raw_pts = _as_list(points)
        raw_labs = _as_list(point_labels) if point_labels is not None else [None] * len(raw_pts)
        if len(raw_labs) != len(raw_pts):
            raise RegionError(f"point_labels has {len(raw_labs)} entries but points has {len(raw_pts)} (one per region)")
        pts_list, lab_list = [], []
        for i, (region_pts, region_labs) in enumerate(zip(raw_pts, raw_labs)):
            region_pts = _as_list(region_pts)
            if not region_pts or not all(hasattr(p, "__len__") and len(p) == 2 for p in region_pts):
                raise RegionError(f"points[{i}] must be a non-empty list of [x, y] points (points holds one list "
                                  f"per region: [[[x, y], ...], ...]), got {region_pts!r}")
            if len(region_pts) > limit("points_per_region"):
                raise RegionError(f"points[{i}] has {len(region_pts)} points, more than the points_per_region "
                                  f"limit of {limit('points_per_region')}")
            pts = [tuple(_numbers(p, f"points[{i}]")) for p in region_pts]
            for x, y in pts:
                if not (0 <= x < w and 0 <= y < h):
                    raise RegionError(f"point ({x}, {y}) lies outside the image (width {w}, height {h})")
            labs = [1] * len(pts) if region_labs is None else [int(v) for v in _numbers(_as_list(region_labs), f"point_labels[{i}]")]
            if len(labs) != len(pts) or any(v not in (0, 1) for v in labs):
                raise RegionError(f"point_labels[{i}] must hold one 1 (inside) or 0 (outside) per point; "
                                  f"got {region_labs!r} for {len(pts)} points")
            pts_list.append(pts)  # type: ignore[arg-type]
            lab_list.append(labs)
    if box_list is None and pts_list is None:
        raise RegionError("segment needs boxes and/or points")
    n = len(box_list) if box_list is not None else len(pts_list)  # type: ignore[arg-type]
    if box_list is not None and pts_list is not None and len(pts_list) != n:
        raise RegionError(f"{n} boxes but {len(pts_list)} point lists: give one of each per region")
    if n == 0:
        raise RegionError("segment needs at least one prompt (boxes or points are empty)")
    return [_Prompt(box_list[i] if box_list is not None else None,
                    pts_list[i] if pts_list is not None else None,
                    lab_list[i] if lab_list is not None else None) for i in range(n)]


def load_segmenter(spec: Any, device: str | torch.device | None = None,
                   dtype: str | torch.dtype | None = None) -> SamSegmenter | None:
    """Segmenter from a CLI / config value.

    ``None``, ``False`` or ``"none"`` → no segmenter; ``True``, ``"sam"`` or ``"default"`` →
    :data:`DEFAULT_SEGMENTER`; a :class:`SamSegmenter` is returned as is; any other string or
    path is a SAM checkpoint directory or hub id.
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, SamSegmenter):
        return spec
    if spec is True:
        return SamSegmenter.from_pretrained(DEFAULT_SEGMENTER, device=device, dtype=dtype)
    text = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
    if text is None:
        raise TypeError(f"segmenter must be None, a bool, a path or a hub id, got {type(spec).__name__}")
    if text.strip().lower() in NO_SEGMENTER:
        return None
    if text.strip().lower() in DEFAULT_SEGMENTER_ALIASES:
        return SamSegmenter.from_pretrained(DEFAULT_SEGMENTER, device=device, dtype=dtype)
    return SamSegmenter.from_pretrained(text, device=device, dtype=dtype)


__all__ = ["DEFAULT_SEGMENTER", "SamSegmenter", "load_segmenter"]
