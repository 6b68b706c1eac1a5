"""``GARToolkit``: the components the tools run on, and the way every adapter calls a tool.

::

    from gar_tool import GAR
    from gar_tool.tools import GARToolkit

    kit = GARToolkit(gar=GAR.from_pretrained("HaochenWang/GAR-1B"))
    res = kit.describe({"image": "photo.jpg", "region": {"box": [10, 20, 200, 240]}})
    res.content, res.artifact.region.id, res.overlay_png     # text, pydantic output, PNG bytes
    kit.relate({"image": res.artifact.image_id, "regions": ["r1", {"box": [300, 40, 380, 200]}],
                "question": "Is <Prompt0> looking at <Prompt1>?"})
    kit.call_many([("gar_describe", {...}), ("gar_relate", {...})])   # together, same results

The toolkit only holds components (GAR, detector, segmenter, session store, image input rules,
decoding options); each tool is a unit of :mod:`gar_tool.tools.registry`. A call takes the tool's
input model (or a dict validated into it), returns a :class:`~gar_tool.tools.results.ToolResult`,
and raises only :class:`~gar_tool.tools.errors.ToolInputError` (bad arguments: retry with others)
or :class:`~gar_tool.tools.errors.ToolFailure` (final). Images and every region used are put in the
:class:`~gar_tool.tools.store.SessionStore`, and their ids are returned, so calls chain.
"""

from __future__ import annotations

import copy
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gar_tool.gar.protocol import DecodeOptions
from gar_tool.tools.errors import ToolError
from gar_tool.tools.inputs import ImageInputConfig, ImageResolver
from gar_tool.tools.registry import TOOLS, get_tool
from gar_tool.tools.results import ToolResult
from gar_tool.tools.store import SessionStore
from gar_tool.tools.unit import Staged
from gar_tool.tools.video import VideoInputs, VideoStore

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.protocol import GARBackend
    from gar_tool.tools.components import Detector, Segmenter

#: What :meth:`GARToolkit.call_many` gives for each call: its result or its error.
Outcome = ToolResult | ToolError


class GARToolkit:
    """The tools over optional components.

    Args:
        gar: a :class:`~gar_tool.gar.protocol.GARBackend` (``gar_describe`` / ``gar_relate`` need
            it): a :class:`gar_tool.GAR`, a :class:`~gar_tool.gar.batching.MicroBatcher` over one
            (concurrent tool calls share batches), a remote GAR, or a fake. The parts of one
            ``gar_relate`` are always passed to it in one ``answer`` call.
        detector: a :class:`~gar_tool.tools.components.Detector` (``gar_ground`` needs it), e.g.
            :class:`gar_tool.grounding.GroundingDetector`.
        segmenter: a :class:`~gar_tool.tools.components.Segmenter` turning box / points region
            prompts into object masks. ``None`` (default) uses ``detector.segmenter`` when the
            detector has one; ``False`` disables it (boxes stay rectangles).
        store: the session store (a new :class:`SessionStore` by default).
        inputs: where images may come from (:class:`ImageInputConfig`; default: paths under the
            current directory, data: URIs, base64, image ids; no URLs).
        max_new_tokens: GAR generation limit per answer.
        text_threshold: the detector's phrase-token threshold (not exposed to agents).
        decode: all GAR decoding options (overrides ``max_new_tokens``; benchmarks use
            ``ignore_eos``).
        tracker: a SAM 2 video tracker (:class:`gar_tool.video.Sam2VideoTracker`; ``gar_track``
            needs it). Videos (paths under the same allowed directories as images, or clip ids)
            and tracks live in :attr:`videos` (:class:`~gar_tool.tools.video.VideoInputs`).
    """

    def __init__(self, gar: "GARBackend | None" = None, detector: "Detector | None" = None,
                 segmenter: "Segmenter | bool | None" = None, *, store: SessionStore | None = None,
                 inputs: ImageInputConfig | None = None, max_new_tokens: int = 256, text_threshold: float = 0.25,
                 decode: DecodeOptions | None = None, tracker: Any = None,
                 videos: VideoStore | None = None) -> None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        self.gar = gar
        self.detector = detector
        if segmenter is None:
            segmenter = getattr(detector, "segmenter", None)
        self.segmenter: "Segmenter | None" = segmenter or None  # type: ignore[assignment]
        self.store = store if store is not None else SessionStore()
        self.images = ImageResolver(self.store, inputs)
        self.decode = decode if decode is not None else DecodeOptions(max_new_tokens=max_new_tokens)
        self.max_new_tokens = self.decode.max_new_tokens
        self.text_threshold = text_threshold
        self.tracker = tracker
        self.videos = VideoInputs(videos if videos is not None else VideoStore(), self.images.config.roots)

    @classmethod
    def load(cls, model: str | None = None, detector: str | None = None, segmenter: Any = None, *,
             device: str | None = None, dtype: str | None = None, compat: str = "default",
             tracker: Any = None, **kwargs: Any) -> "GARToolkit":
        """Load the components from directories / hub ids (``None`` = leave that component out).

        ``segmenter``: a SAM directory / hub id, ``True`` / ``"sam"`` for the default SAM, or
        None; with a ``detector`` it also refines the detector's boxes. ``tracker``: a SAM 2 video
        directory / hub id, or ``"sam2"`` for the default. ``kwargs`` go to :class:`GARToolkit`
        (``store``, ``inputs``, ``max_new_tokens``, ``decode``).
        """
        gar: "GARBackend | None" = None
        det: "Detector | None" = None
        seg: "Segmenter | None" = None
        if model is not None:
            from gar_tool.gar.predictor import GAR

            gar = GAR.from_pretrained(model, device=device, dtype=dtype, compat=compat)  # type: ignore[arg-type]
        if detector is not None:
            from gar_tool.tools.components import load_detector

            det = load_detector(detector, segmenter=segmenter, device=device, dtype=dtype)
            seg = getattr(det, "segmenter", None)  # Grounding DINO's; the shapes-world detector has none
        if seg is None and segmenter is not None:  # no detector, or one without a segmenter
            from gar_tool.grounding import load_segmenter

            seg = load_segmenter(segmenter, device=device, dtype=dtype)
        if tracker is not None:
            from gar_tool.video.tracker import load_tracker

            kwargs["tracker"] = load_tracker(tracker, device=device, dtype=dtype)
        return cls(gar, det, seg if seg is not None else False, **kwargs)

    def with_gar(self, gar: "GARBackend | None") -> "GARToolkit":
        """A toolkit over ``gar`` sharing this one's detector, segmenter, store and input rules
        (e.g. the same components behind a :class:`~gar_tool.gar.batching.MicroBatcher`)."""
        clone = copy.copy(self)
        clone.gar = gar
        return clone

    def with_decode(self, decode: DecodeOptions) -> "GARToolkit":
        """A toolkit like this one whose GAR answers use ``decode`` (e.g. a per-request token limit)."""
        clone = copy.copy(self)
        clone.decode = decode
        clone.max_new_tokens = decode.max_new_tokens
        return clone

    # ------------------------------------------------------------------ calling tools
    def available_tools(self) -> list[str]:
        """Names of the tools whose components are present (``gar_measure`` / ``gar_zoom`` always)."""
        return [name for name, unit in TOOLS.items() if unit.available(self)]

    def call(self, name: str, args: Any) -> ToolResult:
        """Run tool ``name`` (e.g. ``"gar_describe"``) on ``args`` (a dict or its input model)."""
        return get_tool(name)(self, args)

    def call_many(self, calls: Sequence[tuple[str, Any]], *, max_workers: int = 8,
                  on_result: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
        """Run independent calls ``[(name, args), ...]`` together; the result or error of each, in
        order — the same as calling them one at a time in that order.

        Inputs are resolved in call order; the GAR questions of all the calls are answered in one
        ``gar.answer`` call (one batch, whatever the thread timing; if it fails, call by call) while
        the other model work runs in up to ``max_workers`` threads; new regions are stored and
        results built in call order again, so region ids do not depend on timing. The calls must be
        independent: a call cannot use a region id that another call of the same batch creates
        (one at a time it could). ``on_result(i, outcome)`` is called as each outcome is ready, in
        order.
        """
        staged: list[Staged | ToolError] = []
        for name, args in calls:
            try:
                staged.append(get_tool(name).stage(self, args))
            except ToolError as err:
                staged.append(err)
        runnable = [s for s in staged if isinstance(s, Staged)]
        asks_gar = [s for s in runnable if s.gar_requests]
        together = asks_gar if len(asks_gar) > 1 else []
        futures: dict[int, Future] = {}
        pool = ThreadPoolExecutor(max(1, min(max_workers, len(runnable))), thread_name_prefix="gar-tool") \
            if len(runnable) > 1 else None
        try:
            if pool is not None and together:
                shared = pool.submit(self._answer_together, together)
                futures.update({id(s): shared for s in together})
            for s in runnable:
                if pool is not None and id(s) not in futures:
                    futures[id(s)] = pool.submit(s.execute)
            out: list[Outcome] = []
            for i, item in enumerate(staged):
                outcome: Outcome
                if isinstance(item, ToolError):
                    outcome = item
                else:
                    if pool is None:
                        item.execute()
                    else:
                        futures[id(item)].result()
                    try:
                        outcome = item.finish()
                    except ToolError as err:
                        outcome = err
                out.append(outcome)
                if on_result is not None:
                    on_result(i, outcome)
            return out
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _answer_together(self, staged: list[Staged]) -> None:
        """The GAR requests of several calls in one ``answer`` call (one batch). If it fails, each
        call is answered on its own, so a failure stays with the call that caused it."""
        requests = [r for s in staged for r in s.gar_requests]
        try:
            answers = self.gar.answer(requests, self.decode)  # type: ignore[union-attr]
        except Exception:
            for s in staged:
                s.execute()
            return
        k = 0
        for s in staged:
            n = len(s.gar_requests)
            s.answered(list(answers[k:k + n]))
            k += n

    # ------------------------------------------------------------------ one method per tool
    def describe(self, args: Any) -> ToolResult:
        """``gar_describe``: GAR's description of one region."""
        return self.call("gar_describe", args)

    def relate(self, args: Any) -> ToolResult:
        """``gar_relate``: GAR's answer to a question about regions (chunked beyond the prompt slots)."""
        return self.call("gar_relate", args)

    def ground(self, args: Any) -> ToolResult:
        """``gar_ground``: regions matching phrases, stored with fresh ids."""
        return self.call("gar_ground", args)

    def measure(self, args: Any) -> ToolResult:
        """``gar_measure``: exact mask geometry (no model)."""
        return self.call("gar_measure", args)

    def zoom(self, args: Any) -> ToolResult:
        """``gar_zoom``: the region's crop with its outline, as a picture for the model."""
        return self.call("gar_zoom", args)

    def track(self, args: Any) -> ToolResult:
        """``gar_track``: a prompt (or phrase) on one sampled frame → a track through the clip."""
        return self.call("gar_track", args)


__all__ = ["GARToolkit", "Outcome"]
