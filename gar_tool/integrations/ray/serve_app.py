"""The Ray Serve application: GAR, grounding, the session store and the HTTP front as separate
deployments, each with its own replicas, CPU / GPU share and autoscaling.

::

    serve run examples/ray_serve_config.yaml           # Ray's CLI, the config file's args + overrides
    gar serve --ray [--ray-config FILE] [--ray-address ADDR]   # the same app from gar's CLI

Request path (``POST /v1/relate`` …): Ray's HTTP proxy → a ``Front`` replica, which runs the
``create_app`` FastAPI app of ``gar serve`` over an ordinary :class:`~gar_tool.tools.GARToolkit`
(same routes, validation, texts, status codes and error bodies). The toolkit's components are
proxies (:mod:`.proxies`): GAR requests go to ``GARModels``, grounding and SAM to ``Grounding``,
store reads and writes to ``SessionStore``.

* **Batching**: ``GARModels.answer`` validates one request against the model's prompt rules (a
  bad request fails alone), then awaits the ``@serve.batch`` method, which runs the batch through
  :func:`gar_tool.gar.batching.answer_each` — one ``GAR.answer`` call, failures isolated exactly
  as the in-process :class:`~gar_tool.gar.batching.MicroBatcher` does. Requests with other decoding
  options go to separate ``answer`` calls of the same batch.
* **Multiplexing**: ``models`` names several checkpoints (1B, 8B, fine-tunes); a request picks one
  with the ``X-GAR-Model`` header (or Ray's ``serve_multiplexed_model_id``); Serve routes it to a
  replica that has that model loaded where it can, and a replica keeps at most
  ``models_per_replica`` loaded. ``@serve.batch`` never mixes models in one batch.
* **Ids across replicas**: image ids are content hashes, region ids ``rN`` come from one
  :class:`~gar_tool.tools.store.SessionStore` living in the single-replica ``SessionStore``
  deployment, so an id returned by one front replica is valid on every other (and unknown /
  expired ids give the same messages as ``gar serve``). Images and masks are copied from the
  store to the front on use (a 1 MP image is 3 MB on the object store). If the store's replica
  dies, Serve restarts it empty: earlier ids then report as unknown, as after a restart of
  ``gar serve``.

Costs on the wire: see :mod:`.wire` (images as uint8 arrays, masks as RLE).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping, cast

from ray import serve

from gar_tool.errors import InputError
from gar_tool.gar.protocol import DecodeOptions, GARAnswer, GARRequest
from gar_tool.integrations.ray.config import ServeAppConfig, app_config
from gar_tool.integrations.ray.proxies import STORE_METHODS, ServeDetector, ServeGAR, ServeSegmenter, SharedStore
from gar_tool.integrations.ray.wire import Outcome, answer_groups, capture, portable, regions_from_wire, regions_to_wire
from gar_tool.tools.errors import ToolFailure, ToolInputError
from gar_tool.tools.store import SessionStore

log = logging.getLogger(__name__)

#: Request headers that choose the GAR model (lower case, as Starlette gives them).
MODEL_HEADERS = ("x-gar-model", "serve_multiplexed_model_id")


# --------------------------------------------------------------------------- GAR
@serve.deployment(name="GARModels", ray_actor_options={"num_cpus": 1})
class GARModels:
    """GAR checkpoints of ``config.models``, multiplexed; ``answer`` calls batched."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = app_config(config)
        batched: Any = self._batched  # @serve.batch adds the setters to the method
        batched.set_max_batch_size(self.cfg.max_batch)
        batched.set_batch_wait_timeout_s(self.cfg.batch_wait_ms / 1000.0)
        cfg = self.cfg

        async def load(model_id: str) -> Any:
            source = cfg.models.get(model_id)
            if source is None:  # the front checks names; this guards direct handle calls
                raise ToolInputError(f"model {model_id!r} is not served here; served: {', '.join(cfg.models)}")
            from gar_tool.gar.predictor import GAR

            log.info("loading GAR model %s from %s", model_id, source)
            return await asyncio.to_thread(GAR.from_pretrained, source, device=cfg.device, dtype=cfg.dtype,
                                           compat=cfg.compat)

        self._model = serve.multiplexed(max_num_models_per_replica=cfg.models_per_replica)(load)
        self.requests = 0  # answered requests and the batched GAR calls they took (stats())
        self.batches = 0

    def _model_id(self) -> str:
        return serve.get_multiplexed_model_id() or self.cfg.default

    async def info(self) -> Outcome[dict[str, Any]]:
        """``{"model", "prompt_slots"}`` of the request's model (loading it if needed)."""
        try:
            gar = await self._model(self._model_id())
        except Exception as exc:
            return Outcome(error=portable(exc))
        return Outcome(value={"model": self._model_id(), "prompt_slots": int(gar.prompt_slots)})

    def stats(self) -> dict[str, int]:
        """``{"requests", "batches"}`` this replica answered / ran (batching at work: fewer batches)."""
        return {"requests": self.requests, "batches": self.batches}

    async def answer(self, wire: dict[str, Any], options: DecodeOptions) -> Outcome[GARAnswer]:
        """Validate one request (:func:`~gar_tool.integrations.ray.proxies.request_to_wire`
        form), then answer it in a batch with other callers' requests."""
        try:
            gar = await self._model(self._model_id())
            req = await asyncio.to_thread(
                gar.request, wire["image"], regions_from_wire(wire["regions"]), wire["question"],
                instruction=wire["instruction"], compat=wire["compat"])
        except Exception as exc:
            return Outcome(error=portable(exc))
        return await self._batched((req, options))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(self, items: list[tuple[GARRequest, DecodeOptions]]) -> list[Outcome[GARAnswer]]:
        try:
            gar = await self._model(self._model_id())  # one model per batch (Serve splits by model id)
        except Exception as exc:
            return [Outcome(error=portable(exc))] * len(items)
        out, calls = await asyncio.to_thread(answer_groups, gar, items)
        self.requests += len(items)
        self.batches += calls
        return out


# --------------------------------------------------------------------------- grounding
@serve.deployment(name="Grounding", ray_actor_options={"num_cpus": 1})
class Grounding:
    """Grounding DINO (``detect``) and SAM (``segment``), loaded as ``gar serve`` loads them."""

    def __init__(self, config: dict[str, Any]) -> None:
        from gar_tool.tools.core import GARToolkit

        cfg = app_config(config)
        kit = GARToolkit.load(model=None, detector=cfg.detector, segmenter=cfg.segmenter, device=cfg.device,
                              dtype=cfg.dtype)
        self.detector, self.segmenter = kit.detector, kit.segmenter

    def info(self) -> Outcome[dict[str, bool]]:
        return Outcome(value={"detector": self.detector is not None, "segmenter": self.segmenter is not None})

    def detect(self, image: Any, phrases: Any, box_threshold: float, text_threshold: float,
               max_regions: int | None) -> Outcome[list[dict[str, Any]]]:
        detector = self.detector
        if detector is None:
            return Outcome(error=ToolFailure("this application has no grounding detector"))
        return capture(lambda: regions_to_wire(list(detector.detect(
            image, phrases, box_threshold=box_threshold, text_threshold=text_threshold, max_regions=max_regions))))

    def segment(self, image: Any, boxes: Any, points: Any, point_labels: Any) -> Outcome[list[dict[str, Any]]]:
        seg = self.segmenter
        if seg is None:
            return Outcome(error=ToolFailure("this application has no segmenter"))
        return capture(lambda: regions_to_wire(list(seg.segment(image, boxes=boxes, points=points,
                                                                point_labels=point_labels))))


# --------------------------------------------------------------------------- session store
@serve.deployment(name="SessionStore", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
class SessionStoreDeployment:
    """The one :class:`SessionStore` of the application (thread-safe; keep one replica)."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.store = SessionStore(**limits)

    def call(self, method: str, args: tuple, kwargs: dict[str, Any]) -> Outcome[Any]:
        if method not in STORE_METHODS:
            return Outcome(error=ToolFailure(f"session store method {method!r} is not available"))
        return capture(getattr(self.store, method), *args, **kwargs)


# --------------------------------------------------------------------------- HTTP front
@serve.deployment(name="Front", ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class Front:
    """The HTTP API of ``gar serve`` over proxies of the other deployments."""

    # Serve awaits an async constructor; it awaits the other deployments' start-up answers.
    async def __init__(self, config: dict[str, Any], gar: Any, grounding: Any, store: Any) -> None:  # type: ignore[misc]
        from gar_tool.integrations.serving import image_inputs
        from gar_tool.tools.core import GARToolkit

        cfg = self.cfg = app_config(config)
        det = seg = None
        if grounding is not None:
            have = (await grounding.info.remote()).unwrap()
            seg = ServeSegmenter(grounding, cfg.segmenter) if have["segmenter"] else None
            det = ServeDetector(grounding, cfg.detector, seg) if have["detector"] else None
        gars = {name: ServeGAR(gar, name, cfg.compat) for name in cfg.models}
        info = (await gar.options(multiplexed_model_id=cfg.default).info.remote()).unwrap()  # loads it once
        gars[cfg.default].set_prompt_slots(info["prompt_slots"])
        base = GARToolkit(gars[cfg.default], det, seg if seg is not None else False, store=SharedStore(store),
                          inputs=image_inputs(cfg.allow_dirs, cfg.allow_urls), max_new_tokens=cfg.max_new_tokens)
        self.kits = {name: (base if name == cfg.default else base.with_gar(g)) for name, g in gars.items()}
        self.names = {"gar": cfg.default, "detector": cfg.detector if det else None,
                      "segmenter": cfg.segmenter if seg else None}

    def select(self, headers: Mapping[str, str]) -> Any:
        """The toolkit of the model a request names (default model when it names none)."""
        name = next((headers[h] for h in MODEL_HEADERS if headers.get(h)), self.cfg.default).strip()
        kit = self.kits.get(name)
        if kit is None:
            raise ToolInputError(f"model {name!r} is not served here; choose one of {', '.join(self.kits)} "
                                 "with the X-GAR-Model header (or send none for the default)")
        return kit

    def __serve_build_asgi_app__(self) -> Any:
        from gar_tool.integrations.http.server import create_app

        cfg = self.cfg
        return create_app(self.kits[cfg.default], max_request_bytes=int(cfg.max_request_mb * (1 << 20)),
                          max_concurrency=cfg.max_concurrency, retry_after=cfg.retry_after, model_names=self.names,
                          toolkit_for=self.select, allowed_hosts=cfg.allow_hosts, allowed_origins=cfg.allow_origins,
                          body_timeout=cfg.body_timeout)


# --------------------------------------------------------------------------- building
def build_app(config: ServeAppConfig | dict[str, Any],
              overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """The bound application (``serve.run(build_app(cfg))``). ``overrides``: per deployment name,
    ``Deployment.options`` (replicas, ``ray_actor_options`` with GPU shares, autoscaling, ...)."""
    cfg = app_config(config)
    over = {k: dict(v) for k, v in (overrides or {}).items()}
    plain = cfg.model_dump()
    # Queues deep enough for the app's own limits to be the ones that apply (Serve's default is 5).
    gar = cast(Any, GARModels).options(**{"max_ongoing_requests": 4 * cfg.max_batch, **over.get("GARModels", {})}).bind(plain)
    grounding = None
    if cfg.detector is not None or cfg.segmenter is not None:
        grounding = cast(Any, Grounding).options(**{"max_ongoing_requests": 16, **over.get("Grounding", {})}).bind(plain)
    store = cast(Any, SessionStoreDeployment).options(**over.get("SessionStore", {})).bind(cfg.store.model_dump())
    front = cast(Any, Front).options(**{"max_ongoing_requests": cfg.max_concurrency + 4, **over.get("Front", {})})
    return front.bind(plain, gar, grounding, store)


def build(args: dict[str, Any]) -> Any:
    """Application builder for Serve config files (``import_path: ...serve_app:build``); ``args``
    is a :class:`ServeAppConfig` mapping. Per-deployment settings come from the file's
    ``deployments:`` list, which Serve applies itself."""
    try:
        return build_app(args)
    except InputError as exc:  # Serve shows this message when the config is deployed
        raise ValueError(str(exc)) from None


__all__ = ["GARModels", "Grounding", "SessionStoreDeployment", "Front", "build_app", "build", "MODEL_HEADERS",
           "STORE_METHODS"]
