"""The front's stand-ins for components that live in other Ray Serve deployments.

The front deployment runs the ordinary :class:`~gar_tool.tools.GARToolkit` (so tool semantics,
texts and errors are exactly those of ``gar serve``); its components are these proxies, which
forward over deployment handles:

* :class:`ServeGAR` — a :class:`~gar_tool.gar.protocol.GARBackend`. ``request`` coerces the image
  and regions here (bad region forms fail at once, in the caller); ``answer`` sends each request to
  the ``GARModels`` deployment, where it is validated against the model's prompt rules and then
  batched with other callers' requests by ``@serve.batch`` — the same request / answer interface
  :class:`~gar_tool.gar.batching.MicroBatcher` serves in one process. One proxy per model name:
  the name is the multiplexed model id.
* :class:`ServeDetector` / :class:`ServeSegmenter` — ``detect`` / ``segment`` on the
  ``Grounding`` deployment.
* :class:`SharedStore` — a :class:`~gar_tool.tools.store.SessionStore` whose state is the one
  store of the ``SessionStore`` deployment, so image and region ids are valid on every front
  replica (see :mod:`gar_tool.integrations.ray.serve_app`).

Handles are used with blocking ``.result()``, so these objects must be called from worker
threads, never on an event loop — the HTTP server runs tool calls in worker threads. Remote
failures come back as :class:`~gar_tool.integrations.ray.wire.Outcome` values and are re-raised
here unchanged; a deployment that cannot be reached raises :class:`RemoteUnavailable` (a
``ToolFailure``: the tool failed, arguments cannot fix it).
"""

from __future__ import annotations

from typing import Any, Sequence

from gar_tool.errors import InputError
from gar_tool.gar.protocol import Compat, DecodeOptions, GARAnswer, GARFrontMixin, GARRequest, check_mode
from gar_tool.integrations.ray.wire import Outcome, image_to_wire, regions_from_wire, regions_to_wire
from gar_tool.media.images import load_image
from gar_tool.regions.forms import coerce_regions
from gar_tool.regions.region import Region, Regions
from gar_tool.tools.errors import ToolFailure
from gar_tool.tools.store import SessionStore, StoredImage


#: Public SessionStore methods the front may call on the shared store (and SharedStore forwards).
STORE_METHODS = frozenset({"put_image", "get_image", "put_region", "get_region", "regions_of", "image_of",
                           "stats", "image_ids", "region_ids", "forget", "clear"})


class RemoteUnavailable(ToolFailure):
    """A deployment could not be reached or died while answering (after Ray Serve's retries)."""


def _result(response: Any, what: str) -> Any:
    """Wait for a deployment response and unwrap its :class:`Outcome`."""
    try:
        out = response.result()
    except Exception as exc:  # replica died, deployment unavailable, back-pressure, ...
        raise RemoteUnavailable(f"the {what} deployment did not answer ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else 'no message'})") from None
    if not isinstance(out, Outcome):
        raise RemoteUnavailable(f"the {what} deployment answered {type(out).__name__}, expected an Outcome")
    return out.unwrap()


class ServeGAR(GARFrontMixin):
    """GAR model ``model`` of the ``GARModels`` deployment, as a GARBackend (see module doc).

    Args:
        handle: the ``GARModels`` deployment handle.
        model: the multiplexed model id (a name of :attr:`ServeAppConfig.models`).
        compat: the mode of requests that give none (the app's ``compat``).
    """

    def __init__(self, handle: Any, model: str, compat: Compat = "default") -> None:
        self.handle = handle.options(multiplexed_model_id=model)
        self.model = model
        self.name = model
        self.compat: Compat = check_mode(compat)
        self._slots: int | None = None

    @property
    def prompt_slots(self) -> int:
        """The model's prompt slots (asked of the deployment once, then remembered)."""
        if self._slots is None:
            info = _result(self.handle.info.remote(), "GARModels")
            self._slots = int(info["prompt_slots"])
        return self._slots

    def set_prompt_slots(self, slots: int) -> None:
        """Remember ``slots`` (fetched asynchronously at start-up, where ``.result()`` may not run)."""
        self._slots = int(slots)

    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Compat | None = None) -> GARRequest:
        """Coerce the image and regions (as :meth:`gar_tool.GAR.request`); the prompt rules of the
        model are checked by the deployment, per request, before batching."""
        pil = load_image(image)
        if question is not None and not isinstance(question, str):
            raise InputError(f"question must be a string, got {type(question).__name__}")
        if instruction is not None and not isinstance(instruction, str):
            raise InputError(f"instruction must be a string, got {type(instruction).__name__}")
        mode = self.compat if compat is None else check_mode(compat)
        return GARRequest(pil, coerce_regions(regions, (pil.height, pil.width)), question, instruction, mode)

    def answer(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        """Send every request at once (they share ``@serve.batch`` batches with each other and with
        other callers'); answers in order, or the first request's error raised."""
        opts = options if options is not None else DecodeOptions()
        pending = [self.handle.answer.remote(request_to_wire(r), opts) for r in requests]
        return [_result(p, "GARModels") for p in pending]


def request_to_wire(req: GARRequest) -> dict[str, Any]:
    """A :class:`GARRequest` → the ``GARModels`` deployment's input (image array, RLE masks)."""
    return {"image": image_to_wire(req.image), "regions": regions_to_wire(list(req.regions)),
            "question": req.question, "instruction": req.instruction, "compat": req.compat}


class ServeSegmenter:
    """``segment`` on the ``Grounding`` deployment (box / point prompts → SAM masks)."""

    def __init__(self, handle: Any, name: str | None = None) -> None:
        self.handle = handle
        self.name = name or "segmenter"

    def segment(self, image: Any, boxes: Any = None, points: Any = None, point_labels: Any = None) -> Regions:
        wire = _result(self.handle.segment.remote(image_to_wire(image), _plain(boxes), _plain(points),
                                                  _plain(point_labels)), "Grounding")
        return regions_from_wire(wire)


class ServeDetector:
    """``detect`` on the ``Grounding`` deployment (phrases → labelled, scored regions)."""

    def __init__(self, handle: Any, name: str | None = None, segmenter: ServeSegmenter | None = None) -> None:
        self.handle = handle
        self.name = name or "detector"
        self.segmenter = segmenter

    def detect(self, image: Any, phrases: Any, box_threshold: float = 0.35, text_threshold: float = 0.25,
               max_regions: int | None = None) -> Regions:
        wire = _result(self.handle.detect.remote(image_to_wire(image), _plain(phrases), box_threshold,
                                                 text_threshold, max_regions), "Grounding")
        return regions_from_wire(wire)


def _plain(value: Any) -> Any:
    """Tuples / numpy arrays → lists (small prompt values, sent as plain data)."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class SharedStore(SessionStore):
    """The ``SessionStore`` deployment's store, used like a local :class:`SessionStore`.

    Every public method of :class:`SessionStore` is forwarded (a test checks that none is left
    to the base class, whose local state this object does not have). Values come back by copy:
    images as PIL images, regions as :class:`Region` objects.
    """

    def __init__(self, handle: Any) -> None:  # no local state: super().__init__ is not called
        self.handle = handle

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _result(self.handle.call.remote(method, args, kwargs), "SessionStore")

    def put_image(self, image: Any) -> StoredImage:
        return self._call("put_image", image)

    def get_image(self, image_id: str) -> StoredImage:
        return self._call("get_image", image_id)

    def put_region(self, image_id: str, region: Region, *, dedupe: bool = False) -> Region:
        return self._call("put_region", image_id, region, dedupe=dedupe)

    def get_region(self, region_id: str, image_id: str | None = None) -> Region:
        return self._call("get_region", region_id, image_id)

    def regions_of(self, image_id: str) -> list[Region]:
        return self._call("regions_of", image_id)

    def image_of(self, region_id: str) -> str:
        return self._call("image_of", region_id)

    def stats(self) -> dict[str, int]:
        return self._call("stats")

    def image_ids(self) -> list[str]:
        return self._call("image_ids")

    def region_ids(self) -> list[str]:
        return self._call("region_ids")

    def forget(self, ids: Any) -> None:
        self._call("forget", list(ids))

    def clear(self) -> None:
        self._call("clear")


__all__ = ["STORE_METHODS", "ServeGAR", "ServeDetector", "ServeSegmenter", "SharedStore", "RemoteUnavailable", "request_to_wire"]
