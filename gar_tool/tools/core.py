"""``GARToolkit``: the one implementation of the tools every adapter calls.

::

    from gar_tool import GAR
    from gar_tool.tools import GARToolkit

    kit = GARToolkit(gar=GAR.from_pretrained("HaochenWang/GAR-1B"))
    res = kit.describe({"image": "photo.jpg", "region": {"box": [10, 20, 200, 240]}})
    res.content, res.artifact.region.id, res.overlay_png     # text, pydantic output, PNG bytes
    kit.relate({"image": res.artifact.image_id, "regions": ["r1", {"box": [300, 40, 380, 200]}],
                "question": "Is <Prompt0> looking at <Prompt1>?"})

Each method takes the tool's input model (or a dict validated into it), returns a
:class:`~gar_tool.tools.results.ToolResult`, and raises only
:class:`~gar_tool.tools.errors.ToolInputError` (bad arguments: retry with others) or
:class:`~gar_tool.tools.errors.ToolFailure` (final). Images and every region used are put in the
:class:`~gar_tool.tools.store.SessionStore`, and their ids are returned, so calls chain.

``relate`` with more regions than ``gar.prompt_slots`` asks the question in chunks, in one batched
GAR call: the strategy is documented in :mod:`gar_tool.tools.relate_chunks`.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gar_tool.gar.protocol import DecodeOptions
from gar_tool.regions.forms import coerce_region
from gar_tool.regions.refs import prompt_token
from gar_tool.regions.region import Region
from gar_tool.shapes import SHAPES_DETECTOR
from gar_tool.tools.errors import ToolFailure, ToolInputError, as_tool_error
from gar_tool.tools.inputs import ImageInputConfig, ImageResolver
from gar_tool.tools.measure import measure as measure_masks
from gar_tool.tools.relate_chunks import check_references, plan_chunks, to_global, to_ids
from gar_tool.tools.results import ToolResult, fmt_box, fmt_num, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import (DescribeInput, DescribeOutput, GroundInput, GroundOutput, ImageSize, MeasureInput,
                      MeasureOutput, PairGeometry, PromptBinding, RegionGeometry, RelateChunk, RelateInput,
                      RelateOutput, region_wire)
from gar_tool.tools.specs import TOOL_SPECS, get_spec
from gar_tool.tools.store import SessionStore, StoredImage

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.protocol import GARBackend

#: Most pair lines in gar_measure's text (36 = every pair of 9 regions); the artifact has all pairs.
MAX_PAIR_LINES = 36


def _tool(name: str) -> Callable:
    """Validate the argument into the tool's input model and map every error onto ToolError."""
    spec = get_spec(name)

    def wrap(fn: Callable[[Any, Any], ToolResult]) -> Callable[[Any, Any], ToolResult]:
        @functools.wraps(fn)
        def run(self: "GARToolkit", args: Any) -> ToolResult:
            try:
                inp = args if isinstance(args, spec.input_model) else spec.input_model.model_validate(args)
                return fn(self, inp)
            except Exception as exc:  # every failure reaches the agent as one of the two ToolErrors
                err = as_tool_error(exc, name)
                raise err from err.__cause__
        return run
    return wrap


class GARToolkit:
    """The tools over optional components.

    Args:
        gar: a loaded :class:`gar_tool.GAR` (``gar_describe`` / ``gar_relate`` need it).
        detector: a grounding detector with ``detect(image, phrases, box_threshold=,
            text_threshold=, max_regions=) -> Regions`` (``gar_ground`` needs it), e.g.
            :class:`gar_tool.grounding.GroundingDetector`.
        segmenter: turns box / points region prompts into object masks (``segment(image, boxes=,
            points=, point_labels=) -> Regions``). ``None`` (default) uses ``detector.segmenter``
            when the detector has one; ``False`` disables it (boxes stay rectangles).
        store: the session store (a new :class:`SessionStore` by default).
        inputs: where images may come from (:class:`ImageInputConfig`; default: paths under the
            current directory, data: URIs, base64, image ids; no URLs).
        max_new_tokens: GAR generation limit per answer.
        text_threshold: the detector's phrase-token threshold (not exposed to agents).

    ``gar`` is any :class:`~gar_tool.gar.protocol.GARBackend`: a :class:`gar_tool.GAR`, a
    :class:`~gar_tool.gar.batching.MicroBatcher` over one (servers: concurrent tool calls share
    batches), a remote GAR over HTTP, or a fake. The chunks of one ``gar_relate`` are always
    passed to it in one ``answer`` call.
    """

    def __init__(self, gar: "GARBackend | None" = None, detector: Any = None, segmenter: Any = None, *,
                 store: SessionStore | None = None, inputs: ImageInputConfig | None = None,
                 max_new_tokens: int = 256, text_threshold: float = 0.25) -> None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        self.gar = gar
        self.detector = detector
        if segmenter is None:
            segmenter = getattr(detector, "segmenter", None)
        self.segmenter = segmenter or None
        self.store = store if store is not None else SessionStore()
        self.images = ImageResolver(self.store, inputs)
        self.max_new_tokens = max_new_tokens
        self.text_threshold = text_threshold

    @classmethod
    def load(cls, model: str | None = None, detector: str | None = None, segmenter: Any = None, *,
             device: str | None = None, dtype: str | None = None, compat: str = "default",
             **kwargs: Any) -> "GARToolkit":
        """Load the components from directories / hub ids (``None`` = leave that component out).

        ``segmenter``: a SAM directory / hub id, ``True`` / ``"sam"`` for the default SAM, or
        None; with a ``detector`` it also refines the detector's boxes. ``kwargs`` go to
        :class:`GARToolkit` (``store``, ``inputs``, ``max_new_tokens``).
        """
        gar = det = seg = None
        if model is not None:
            from gar_tool.gar.predictor import GAR

            gar = GAR.from_pretrained(model, device=device, dtype=dtype, compat=compat)  # type: ignore[arg-type]
        if detector is not None and str(detector) == SHAPES_DETECTOR:  # shapes-world images, no model
            from gar_tool.shapes.detector import ShapesDetector

            det, detector = ShapesDetector(), None  # a segmenter, if given, is loaded on its own below
        if detector is not None:
            from gar_tool.grounding import GroundingDetector

            det = GroundingDetector.from_pretrained(detector, segmenter=segmenter, device=device, dtype=dtype)
            seg = det.segmenter
        elif segmenter is not None:
            from gar_tool.grounding import load_segmenter

            seg = load_segmenter(segmenter, device=device, dtype=dtype)
        return cls(gar, det, seg if seg is not None else False, **kwargs)

    # ------------------------------------------------------------------ discovery
    def available_tools(self) -> list[str]:
        """Names of the tools whose components are present (``gar_measure`` always is)."""
        have = {"gar": self.gar is not None, "detector": self.detector is not None, None: True}
        return [s.name for s in TOOL_SPECS if have[s.needs]]

    def call(self, name: str, args: Any) -> ToolResult:
        """Run tool ``name`` (e.g. ``"gar_describe"``) on ``args`` (a dict or its input model)."""
        try:
            spec = get_spec(name)
        except ToolInputError as exc:
            exc.tool = name
            raise
        return getattr(self, spec.method)(args)

    # ------------------------------------------------------------------ tools
    @_tool("gar_describe")
    def describe(self, inp: DescribeInput) -> ToolResult:
        """``gar_describe``: GAR's description of one region."""
        gar = self._need_gar("gar_describe")
        img = self.images.resolve(inp.image)
        region = self._region(img, inp.region, "region")
        ans = self._model_call("gar_describe", lambda: self._describe_call(gar, img, region, inp.instruction))
        out = DescribeOutput(image_id=img.image_id, region=region_out(region), description=ans.text,
                             finish_reason=ans.finish_reason)
        content = f"{region_phrase(region)} in {img.image_id}: {ans.text or '(empty answer)'}"
        if ans.finish_reason == "length":
            content += " [cut at the token limit]"
        legend = [f"{region.id}  {region.label or region.source}"]
        return ToolResult("gar_describe", content, out, self._overlay(img, [region], legend))

    @_tool("gar_relate")
    def relate(self, inp: RelateInput) -> ToolResult:
        """``gar_relate``: GAR's answer to a question about regions (chunked beyond the prompt slots)."""
        gar = self._need_gar("gar_relate")
        img = self.images.resolve(inp.image)
        check_references(inp.question, len(inp.regions))
        regions = [self._region(img, r, f"regions[{i}]") for i, r in enumerate(inp.regions)]
        ids = [r.id for r in regions]
        plans = plan_chunks(inp.question, len(regions), gar.prompt_slots,
                            lambda i: regions[i].label or "another region")
        answers = self._model_call("gar_relate", lambda: self._relate_call(
            gar, img, [[regions[g] for g in p.members] for p in plans], [p.question for p in plans]))
        chunks = []
        for plan, ans in zip(plans, answers):
            local_ids = [ids[g] for g in plan.members]
            chunks.append(RelateChunk(
                regions=[PromptBinding(prompt=prompt_token(k), region_id=rid) for k, rid in enumerate(local_ids)],
                question=plan.question, answer=ans.text, answer_with_ids=to_ids(ans.text, local_ids),
                finish_reason=ans.finish_reason))
        chunked = len(plans) > 1
        if chunked:
            lines = [f"Part {n} of {len(plans)} ({', '.join(prompt_token(g) for g in p.members)}): "
                     f"{to_global(c.answer, p.members)}" for n, (p, c) in enumerate(zip(plans, chunks), 1)]
            id_lines = [f"Part {n} of {len(plans)} ({', '.join(b.region_id for b in c.regions)}): "
                        f"{c.answer_with_ids}" for n, c in enumerate(chunks, 1)]
            answer, answer_ids = "\n".join(lines), "\n".join(id_lines)
        else:
            answer, answer_ids = chunks[0].answer, chunks[0].answer_with_ids
        out = RelateOutput(image_id=img.image_id, question=inp.question, regions=[region_out(r) for r in regions],
                           answer=answer, answer_with_ids=answer_ids, chunked=chunked, chunks=chunks)
        binding = ", ".join(f"{prompt_token(i)} = {region_phrase(r)}" for i, r in enumerate(regions))
        if chunked:
            content = (f"Regions in {img.image_id}: {binding}.\nGAR sees at most {gar.prompt_slots} regions per "
                       f"question, so the question was asked in {len(plans)} parts of consecutive regions; each "
                       f"part saw only its own regions (others were named in words). Answers per part:\n"
                       f"{answer_ids}")
        else:
            content = f"Regions in {img.image_id}: {binding}.\nAnswer: {answer_ids or '(empty answer)'}"
        if any(c.finish_reason == "length" for c in chunks):
            content += " [cut at the token limit]"
        legend = [f"{r.id} = {prompt_token(i)}  {r.label or r.source}" for i, r in enumerate(regions)]
        return ToolResult("gar_relate", content, out, self._overlay(img, regions, legend))

    @_tool("gar_ground")
    def ground(self, inp: GroundInput) -> ToolResult:
        """``gar_ground``: regions matching phrases, stored with fresh ids."""
        if self.detector is None:
            raise ToolFailure("gar_ground is not available: this toolkit has no grounding detector "
                              "(start it with a detector, e.g. --detector IDEA-Research/grounding-dino-tiny)")
        from gar_tool.grounding.phrases import parse_phrases

        phrases = parse_phrases(inp.phrases)
        img = self.images.resolve(inp.image)
        found = self._model_call("gar_ground", lambda: self.detector.detect(
            img.image, phrases, box_threshold=inp.box_threshold, text_threshold=self.text_threshold,
            max_regions=inp.max_regions))
        regions = [self.store.put_region(img.image_id, r) for r in found]
        out = GroundOutput(image_id=img.image_id, phrases=phrases, regions=[region_out(r) for r in regions])
        wanted = ", ".join(repr(p) for p in phrases)
        if regions:
            listed = "; ".join(region_phrase(r) for r in regions)
            content = f"Found {len(regions)} region(s) for {wanted} in {img.image_id}: {listed}."
        else:
            content = (f"No region found for {wanted} in {img.image_id} (box_threshold {fmt_num(inp.box_threshold)}). "
                       "Try a lower box_threshold or simpler phrases.")
        legend = [f"{r.id}  {r.label or r.source}" + ("" if r.score is None else f"  {r.score:.2f}") for r in regions]
        return ToolResult("gar_ground", content, out, self._overlay(img, regions, legend))

    @_tool("gar_measure")
    def measure(self, inp: MeasureInput) -> ToolResult:
        """``gar_measure``: exact mask geometry (no model)."""
        img = self.images.resolve(inp.image)
        regions = [self._region(img, r, f"regions[{i}]") for i, r in enumerate(inp.regions)]
        m = measure_masks([r.mask for r in regions])
        ids = [r.id or "" for r in regions]
        h, w = m.image_size
        geometry = [RegionGeometry(id=ids[i], label=r.label, area_px=s.area, area_fraction=round(s.area_fraction, 6),
                                   box=[round(v, 2) for v in s.box], centroid=[round(v, 2) for v in s.centroid])
                    for i, (r, s) in enumerate(zip(regions, m.regions))]
        pairs = [PairGeometry(a=ids[p.a], b=ids[p.b], horizontal=p.horizontal, vertical=p.vertical,
                              dx=round(p.dx, 2), dy=round(p.dy, 2), distance=round(p.distance, 2),
                              intersection_px=p.intersection, iou=round(p.iou, 4),
                              overlap_fraction=round(p.overlap_fraction, 4), a_inside_b=round(p.a_inside_b, 4),
                              b_inside_a=round(p.b_inside_a, 4)) for p in m.pairs]
        out = MeasureOutput(image_id=img.image_id, image_size=ImageSize(width=w, height=h),
                            regions=[region_out(r) for r in regions], geometry=geometry, pairs=pairs,
                            left_to_right=[ids[i] for i in m.left_to_right],
                            top_to_bottom=[ids[i] for i in m.top_to_bottom])
        content = _measure_text(img.image_id, w, h, geometry, pairs, out)
        legend = [f"{r.id}  {r.label or r.source}" for r in regions]
        return ToolResult("gar_measure", content, out, self._overlay(img, regions, legend))

    # ------------------------------------------------------------------ helpers
    def _need_gar(self, tool: str) -> "GARBackend":
        if self.gar is None:
            raise ToolFailure(f"{tool} is not available: this toolkit has no GAR model "
                              "(start it with a model, e.g. --model HaochenWang/GAR-1B)")
        return self.gar

    def with_gar(self, gar: "GARBackend | None") -> "GARToolkit":
        """A toolkit over ``gar`` sharing this one's detector, segmenter, store and input rules
        (e.g. the same components behind a :class:`~gar_tool.gar.batching.MicroBatcher`)."""
        clone = copy.copy(self)
        clone.gar = gar
        return clone

    def _describe_call(self, gar: "GARBackend", img: StoredImage, region: Region, instruction: str | None) -> Any:
        req = gar.request(img.image, [region], None, instruction=instruction)
        return gar.answer([req], DecodeOptions(max_new_tokens=self.max_new_tokens))[0]

    def _relate_call(self, gar: "GARBackend", img: StoredImage, groups: list[list[Region]],
                     questions: list[str]) -> list:
        """All chunk questions at once: one ``answer`` call (one batch, or shared batches)."""
        reqs = [gar.request(img.image, regs, q) for regs, q in zip(groups, questions)]
        return gar.answer(reqs, DecodeOptions(max_new_tokens=self.max_new_tokens))

    def _region(self, img: StoredImage, spec: Any, where: str) -> Region:
        """A region argument (id or prompt) → a stored region of ``img`` (inline prompts deduped).
        ``where`` names the argument in error messages (``"regions[2]"``)."""
        if isinstance(spec, str):
            return self.store.get_region(spec, img.image_id)
        try:
            region = coerce_region(region_wire(spec), img.size, image=img.image, segmenter=self.segmenter)
        except ToolInputError:
            raise
        except Exception as exc:
            err = as_tool_error(exc)
            if isinstance(err, ToolInputError):
                raise ToolInputError(f"{where}: {err}") from None
            raise err from exc
        return self.store.put_region(img.image_id, region.with_meta(id=None), dedupe=True)

    @staticmethod
    def _model_call(tool: str, fn: Callable[[], Any]) -> Any:
        """Run a model; InputError stays an input error, anything else is a ToolFailure."""
        try:
            return fn()
        except Exception as exc:
            err = as_tool_error(exc, tool)
            if isinstance(err, ToolFailure):
                raise ToolFailure(f"{tool}: the model failed ({type(exc).__name__}: {exc})", tool=tool) from exc
            raise err from None

    @staticmethod
    def _overlay(img: StoredImage, regions: Sequence[Region], legend: Sequence[str]) -> Callable[[], bytes]:
        image, regs, lines = img.image, list(regions), list(legend)
        return lambda: render_overlay_png(image, regs, lines)


def _offset(delta: float, positive: str, negative: str, same: str) -> str:
    """``"12 px left of"`` for a centroid offset ``delta = B - A`` (> 0: A before B on that axis)."""
    if delta == 0:
        return same
    return f"{fmt_num(abs(delta))} px {positive if delta > 0 else negative}"


def _measure_text(image_id: str, w: int, h: int, geometry: list[RegionGeometry], pairs: list[PairGeometry],
                  out: MeasureOutput) -> str:
    lines = [f"Image {image_id}: {w}x{h} px (width x height); boxes [x1, y1, x2, y2], origin top-left."]
    for g in geometry:
        name = g.id + (f" ({g.label})" if g.label else "")
        lines.append(f"{name}: area {g.area_px} px ({100 * g.area_fraction:.2f}% of image), box {fmt_box(g.box)}, "
                     f"centroid ({fmt_num(g.centroid[0])}, {fmt_num(g.centroid[1])})")
    for p in pairs[:MAX_PAIR_LINES]:
        horiz = _offset(p.dx, "left of", "right of", "level in x with")
        vert = _offset(p.dy, "above", "below", "level in y with")
        lines.append(f"{p.a} vs {p.b} (centroids): {p.a} is {horiz} and {vert} {p.b}; IoU {p.iou:.3f}; "
                     f"{100 * p.a_inside_b:.1f}% of {p.a} inside {p.b}, "
                     f"{100 * p.b_inside_a:.1f}% of {p.b} inside {p.a}")
    if len(pairs) > MAX_PAIR_LINES:
        lines.append(f"(first {MAX_PAIR_LINES} of {len(pairs)} pairs shown; all are in the structured output, "
                     "or measure fewer regions at a time)")
    if len(geometry) > 1:
        lines.append(f"Left to right: {', '.join(out.left_to_right)}. Top to bottom: {', '.join(out.top_to_bottom)}.")
    return "\n".join(lines)


__all__ = ["GARToolkit"]
