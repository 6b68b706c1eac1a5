"""Pure preprocessing of GAR's video path: clip + region tracks + question → model inputs.

What the original's video branch fixes (``feature_replay_video`` in its patched PerceptionLM):
every sampled frame is **one tile** through the image path (no thumbnail) with **that frame's mask
embedding**; the prompt holds one crop-token run per frame, frame ``f``'s crop token being the
token named ``<|reserved_special_token_{2+f}|>`` (the prompts' crop tokens, by name); each run is
replaced by a ``roi_align`` replay of frame ``f``'s own ``S×S`` feature map at frame ``f``'s box.

What it leaves open, and what this module chooses ("ours"):

* **frames**: the caller's clip (16 uniformly sampled frames by default, VideoRefer-Bench-Q's
  protocol); a frame is the whole frame stretched to ``tile × tile`` with the thumbnail's resize
  (bicubic, antialiased; the label map with legacy nearest), normalised like every tile;
* **prompt text**: GAR's own region prompt with each region's single crop run replaced by its
  per-frame runs, in frame order — describe: ``"There are some objects I am curious about:
  <Prompt0>; \\n<Prompt0>: {runs}{instruction}"``; questions: the multi-region layout
  (``"<PromptK>; "`` list, one ``"<PromptK>: {runs}\\n"`` line per object, blank line, question). The
  ``compat`` modes change the BOS count and the describe prompt number exactly as for images;
* **several objects**: object ``k`` (``tracks[k]``, ``<Prompt{k}>``) on frame ``f`` uses crop run
  ``j = k·F + f`` (token ``<|reserved_special_token_{2+j}|>``): object 0 keeps the original's
  frame tokens, and every (object, frame) run has its own token, so the replays never collide.
  ``K·F`` is bounded by the tokenizer's reserved tokens (249 for the released tokenizer) and ``K``
  by the prompt slots (5);
* **absent frames**: a frame where an object has no mask gets no run for it (the original replays
  only runs present in the prompt); its image features are still there, with that object out of
  the frame's mask. Every object needs a mask on at least one frame;
* **boxes**: each (object, frame) replay uses its own mask's box (max-inclusive, normalised by the
  frame size), with the checkpoint's RoI scaling (``roi_double_scale``, quirk Q1) applied by the
  model as for images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from gar_tool.errors import PromptError
from gar_tool.gar.processing.processor import GARProcessor, Geometry, normalized_box
from gar_tool.gar.processing.prompts import Compat, PromptPlan, PromptSlot, check_mode, plan_describe, plan_relate
from gar_tool.gar.processing.tiling import PIL_NEAREST, normalize_u8, resize_u8
from gar_tool.regions.region import Region, Regions

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from gar_tool.video.track import RegionTrack


@dataclass
class GARVideoInputs:
    """Model inputs of one (clip, tracks, question) sample.

    Attributes:
        input_ids: ``(L,)`` int64 (``F·S²`` image tokens, one crop run per replay).
        pixels_u8: ``(F, 3, tile, tile)`` uint8, one tile per frame (no thumbnail).
        label_tiles: ``(F, tile, tile)`` uint8 label map per frame (``prompt_slots`` = background).
        replay_token_ids: ``(R,)`` crop token of each replay; ``replay_frames``: ``(R,)`` its frame;
        replay_boxes: ``(R, 4)`` float64 normalised max-inclusive box of the object on that frame.
        prompt_text: templated prompt before image-token expansion.
        frame_size: ``(height, width)`` of the frames.
    """

    input_ids: torch.Tensor
    pixels_u8: torch.Tensor
    label_tiles: torch.Tensor
    replay_token_ids: torch.Tensor
    replay_frames: torch.Tensor
    replay_boxes: torch.Tensor
    prompt_text: str
    frame_size: tuple[int, int]
    geometry: Geometry

    @property
    def pixel_values(self) -> torch.Tensor:
        """``(F, 3, tile, tile)`` float32 normalised frame tiles."""
        g = self.geometry
        return normalize_u8(self.pixels_u8, list(g.mean), list(g.std), g.rescale_factor)

    @property
    def num_frames(self) -> int:
        return int(self.pixels_u8.shape[0])


def video_plan(processor: GARProcessor, n_objects: int, question: str | None, compat: Compat,
               instruction: str | None = None) -> PromptPlan:
    """The prompt plan of a clip question: describe (one object) or relate; raises PromptError."""
    check_mode(compat)
    slots = processor.vocab.prompt_slots
    if n_objects < 1:
        raise PromptError("a clip question needs at least one region track")
    if n_objects > slots:
        raise PromptError(f"GAR's video prompt takes at most {slots} objects (one per prompt slot), got {n_objects}")
    if question is None:
        if n_objects != 1:
            raise PromptError(f"describe takes exactly one track, got {n_objects}")
        if instruction is not None:
            processor.vocab.check_text(instruction, "instruction")
        return plan_describe(compat, instruction)
    processor.vocab.check_text(question)
    return plan_relate(question, n_objects, slots, compat)


def frame_run_token(processor: GARProcessor, obj: int, frame: int, n_frames: int) -> tuple[str, int]:
    """Name and id of the crop token of object ``obj`` on frame ``frame`` (run ``obj·F + frame``)."""
    j = obj * n_frames + frame
    try:
        name = processor.vocab.crop_token(j)
    except PromptError:
        raise PromptError("this tokenizer's crop tokens follow no naming pattern, so video frames cannot be "
                          "given crop tokens") from None
    tid = processor.tokenizer.convert_tokens_to_ids(name)
    if tid is None or tid == processor.tokenizer.unk_token_id:
        raise PromptError(f"{n_frames} frames x {obj + 1}+ objects need crop token {name}, which this tokenizer "
                          f"lacks: it has {max_frame_runs(processor)} crop tokens; use fewer frames or objects")
    return name, int(tid)


def max_frame_runs(processor: GARProcessor, limit: int = 4096) -> int:
    """How many (object, frame) crop runs the tokenizer can name (consecutive crop tokens)."""
    n = 0
    for j in range(limit):
        try:
            name = processor.vocab.crop_token(j)
        except PromptError:
            break
        tid = processor.tokenizer.convert_tokens_to_ids(name)
        if tid is None or tid == processor.tokenizer.unk_token_id:
            break
        n += 1
    return n


def check_tracks(tracks: Sequence["RegionTrack"], n_frames: int, size: tuple[int, int]) -> None:
    """Every track has ``n_frames`` entries of ``size`` masks and a mask on at least one frame."""
    for k, t in enumerate(tracks):
        if len(t) != n_frames:
            raise PromptError(f"track {k} has {len(t)} frames but the clip has {n_frames} sampled frames")
        if t.size is not None and t.size != size:
            raise PromptError(f"track {k} masks are {t.size} (HxW) but the frames are {size}")
        if not t.present:
            raise PromptError(f"track {k} (<Prompt{k}>) has no mask on any sampled frame "
                              f"({t.summary()}); GAR needs the object on at least one frame")


def tile_frame(processor: GARProcessor, frame: "Image.Image") -> torch.Tensor:
    """RGB frame → ``(3, tile, tile)`` uint8: the whole frame stretched to one tile (the
    thumbnail's resize)."""
    g = processor.geometry
    arr = torch.from_numpy(np.array(frame.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()
    return resize_u8(arr, (g.tile_size, g.tile_size), g.resample)


def frame_labels(processor: GARProcessor, plan: PromptPlan, regions: Sequence[Region | None],
                 size: tuple[int, int]) -> torch.Tensor:
    """``(tile, tile)`` uint8 label tile of one frame: the label map of the objects present there
    (``regions[k]`` for ``tracks[k]``, ``None`` when absent), resized like the label tiles."""
    present = [(s, regions[s.region]) for s in plan.slots if regions[s.region] is not None]
    if present:
        sub = PromptPlan(tuple(PromptSlot(s.prompt, i, s.replayed) for i, (s, _) in enumerate(present)),
                         plan.question, plan.single_region_layout)
        labels = processor.label_map(Regions([r for _, r in present if r is not None]), sub)
    else:
        labels = np.full(size, processor.vocab.prompt_slots, dtype=np.uint8)
    g = processor.geometry
    return resize_u8(torch.from_numpy(labels).unsqueeze(0), (g.tile_size, g.tile_size), PIL_NEAREST)[0]


def video_inputs(processor: GARProcessor, frames: Sequence["Image.Image"], tracks: Sequence["RegionTrack"],
                 question: str | None = None, compat: Compat = "default", instruction: str | None = None,
                 frame_tiles: Sequence[torch.Tensor] | None = None) -> GARVideoInputs:
    """Build the inputs (see the module docstring). ``frame_tiles`` may pass cached
    :func:`tile_frame` results, one per frame."""
    n = len(frames)
    if n < 1:
        raise PromptError("a clip needs at least one frame")
    size = (frames[0].height, frames[0].width)
    check_tracks(tracks, n, size)
    plan = video_plan(processor, len(tracks), question, compat, instruction)
    s2 = processor.geometry.tokens_per_tile
    runs: dict[int, str] = {}
    ids, frame_of, boxes = [], [], []
    for slot in plan.slots:
        track = tracks[slot.region]
        text = []
        for f in track.present:
            name, tid = frame_run_token(processor, slot.region, f, n)
            text.append(name * s2)
            ids.append(tid)
            frame_of.append(f)
            region = track.regions[f]
            boxes.append(normalized_box(region.mask))  # type: ignore[union-attr]
        runs[slot.prompt] = "".join(text)
    tiles = list(frame_tiles) if frame_tiles is not None else [tile_frame(processor, f) for f in frames]
    if len(tiles) != n:
        raise PromptError(f"{len(tiles)} frame tiles for {n} frames")
    labels = [frame_labels(processor, plan, [t.regions[f] for t in tracks], size) for f in range(n)]
    input_ids, prompt = processor.encode_text(plan, n, compat, runs=runs)
    return GARVideoInputs(
        input_ids=input_ids,
        pixels_u8=torch.stack(tiles),
        label_tiles=torch.stack(labels),
        replay_token_ids=torch.tensor(ids, dtype=torch.long),
        replay_frames=torch.tensor(frame_of, dtype=torch.long),
        replay_boxes=torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        prompt_text=prompt,
        frame_size=size,
        geometry=processor.geometry,
    )


__all__ = ["GARVideoInputs", "video_plan", "video_inputs", "tile_frame", "frame_labels", "frame_run_token",
           "max_frame_runs", "check_tracks"]
