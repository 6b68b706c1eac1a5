"""The HTTP API (FastAPI) over one :class:`~gar_tool.tools.GARToolkit`: ``gar serve``.

::

    from gar_tool.integrations.http.server import create_app
    app = create_app(toolkit)            # then: uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (OpenAPI docs at ``/docs``, schema at ``/openapi.json``):

=========================  =================================================================
``GET  /health``           status, available tools, model names, store stats, limits, batching
``POST /v1/describe``      ``gar_describe``; JSON body = its input (``DescribeInput``)
``POST /v1/relate``        ``gar_relate`` (``RelateInput``)
``POST /v1/ground``        ``gar_ground`` (``GroundInput``)
``POST /v1/measure``       ``gar_measure`` (``MeasureInput``)
``POST /v1/images``        upload an image (multipart ``file``, raw bytes, or JSON
                           ``{"image": data-URI | base64}``) → ``{"image_id", "width", "height"}``
=========================  =================================================================

The web page (``GET /``) and the routes it needs beyond the tools — ``GET /v1/images/{id}``,
``POST /v1/segment``, ``GET /v1/planner``, ``POST /v1/ask`` (server-sent events) — are added by
:mod:`gar_tool.integrations.http.web` and :mod:`gar_tool.integrations.http.ask`.

A tool call answers ``ToolResult.to_dict()``: ``{"tool", "content", "output"}``, plus
``"overlay_png_base64"`` with ``?overlay=true``. The body is validated by the toolkit itself (the
same messages as the MCP and LangChain adapters), not by FastAPI.

Errors are JSON ``{"error": {"type", "message", "retryable", "tool"}}`` — never a traceback:

====  =========================  ==========================================================
400   ``bad_request``            body is not a JSON object / malformed Content-Length
403   ``forbidden_origin``       a browser request from a web origin not in ``allowed_origins``
404   ``not_found``              no such endpoint
405   ``method_not_allowed``     e.g. GET on a tool endpoint
408   ``request_timeout``        the body did not arrive within ``body_timeout`` seconds
413   ``payload_too_large``      body over ``max_request_bytes`` (Content-Length or streamed)
415   ``unsupported_media_type`` a tool endpoint given something other than JSON
421   ``invalid_host``           the ``Host`` header names a host not in ``allowed_hosts``
                                 (DNS-rebinding protection; default: the loopback names)
422   ``invalid_input``          ToolInputError: bad arguments, unknown / expired image or
                                 region id, image not allowed or unreadable (``retryable``)
429   ``busy``                   ``max_concurrency`` requests already running (``Retry-After``)
500   ``tool_failure``           ToolFailure: the model failed
500   ``internal_error``         anything unexpected (logged server-side)
501   ``tool_unavailable``       the tool's component was not loaded (e.g. no ``--detector``)
====  =========================  ==========================================================

Unknown ids are 422 rather than 404: they are bad *arguments* of an existing endpoint, and the
message says how to get a valid id. A request takes one of the ``max_concurrency`` slots only once
its body has been received (so stalled uploads never block other clients); a client that goes
away mid-request is not logged as an error. Host / Origin checks and body reading:
:mod:`gar_tool.integrations.http.guards`. Model calls run in worker threads (never on the event loop);
when the toolkit has a :class:`~gar_tool.gar.batching.MicroBatcher` (``gar serve`` always sets one),
concurrent GAR calls run as one batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from typing import Any, AsyncIterator, Callable, Mapping, Sequence

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from gar_tool import __version__
from gar_tool.limits import limit
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import ToolError, as_tool_error
from gar_tool.tools.specs import TOOL_SPECS, ToolSpec, input_schema
from gar_tool.integrations.serving import batcher_of, component_names
from gar_tool.integrations.http.guards import (BodyLimitMiddleware, ClientGone, HostOriginGuard, default_hosts,
                                               read_body)
from gar_tool.integrations.http.models import (APIError, ErrorInfo, ErrorResponse, ErrorType, HealthResponse, UploadJSON, UploadResponse,
                          _from_tool_error, _response_model)

log = logging.getLogger(__name__)

#: Default most bytes of one request body (a 25 MiB image as base64 is ~34 MiB).
DEFAULT_MAX_REQUEST_BYTES = limit("request_bytes")
#: Default seconds to receive one request body (408 after it).
DEFAULT_BODY_TIMEOUT = float(limit("body_read_seconds"))
#: Default most requests running at once (above it: 429). Above ``max_batch`` so batches can fill.
DEFAULT_MAX_CONCURRENCY = 16

class _Slots:
    """A non-blocking counting semaphore: ``try_acquire()`` is False when all slots are taken."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1


# --------------------------------------------------------------------------- the app
def create_app(toolkit: GARToolkit, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_concurrency: int = DEFAULT_MAX_CONCURRENCY, retry_after: int = 1,
               model_names: dict[str, str | None] | None = None, title: str = "gar-agent",
               allowed_hosts: Sequence[str] | None = None, allowed_origins: Sequence[str] = (),
               body_timeout: float = DEFAULT_BODY_TIMEOUT,
               toolkit_for: Callable[[Mapping[str, str]], GARToolkit] | None = None,
               planner: Callable[[GARToolkit], Any] | None = None) -> FastAPI:
    """The FastAPI app serving ``toolkit`` (see the module docstring).

    Args:
        toolkit: the loaded toolkit (its GAR a ``MicroBatcher`` so concurrent GAR calls are batched;
            :func:`gar_tool.integrations.serving.load_toolkit` does).
        max_request_bytes: most bytes of a request body (413 above).
        max_concurrency: most tool / upload requests running at once; the next one gets 429 at
            once, with ``Retry-After: retry_after`` seconds.
        model_names: names shown by ``/health`` (default: the components' ``name`` attributes).
        title: the OpenAPI title.
        allowed_hosts: ``Host`` names served (421 for others); default the loopback names
            (:func:`~gar_tool.integrations.http.guards.default_hosts`); ``["*"]`` = any.
        allowed_origins: web origins (``"https://app.example"``) allowed to call the API from a
            browser, with CORS headers; requests from other origins get 403. ``["*"]`` = any.
        body_timeout: seconds to receive a request body (408 after it). The body is read before a
            concurrency slot is taken.
        toolkit_for: picks the toolkit of one tool call from its request headers (lower-case
            names), e.g. a GAR model chosen per request; raising ``ToolInputError`` answers 422.
            ``None``: every call uses ``toolkit``. The toolkits must share ``toolkit``'s store.
        planner: a factory ``planner(toolkit) -> planner`` (called once, here) of the planner agent
            behind ``POST /v1/ask``; its ``stream(image, question)`` yields the planner's events.
            None: ``/v1/ask`` answers 501. Its name for ``/v1/planner`` is ``model_names["planner"]``.

    The web page (``GET /``), ``/v1/segment``, ``/v1/images/{id}`` and the planner routes are added by
    :func:`gar_tool.integrations.http.web.add_web_routes`.
    """
    if not body_timeout > 0:
        raise ValueError(f"body_timeout must be > 0 seconds, got {body_timeout!r}")
    for name, value in (("max_request_bytes", max_request_bytes), ("max_concurrency", max_concurrency),
                        ("retry_after", retry_after)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    slots = _Slots(max_concurrency)
    names = component_names(toolkit, model_names)
    app = FastAPI(title=title, version=__version__, description=(
        "GAR (Grasp Any Region) region-level vision-language tools over HTTP. Images are strings (path "
        "on the server, data: URI, base64, or an image_id from POST /v1/images or any result); regions "
        "are ids ('r2') or box / points / rle / polygon dicts in pixels. Errors are "
        '{"error": {"type", "message", "retryable", "tool"}}.'))
    origins = list(allowed_origins)
    if origins:  # CORS answers for the allowed origins (the guard has already refused the others)
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["content-type", "authorization"], max_age=600)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_request_bytes)
    app.add_middleware(HostOriginGuard, allowed_hosts=default_hosts("127.0.0.1") if allowed_hosts is None
                       else list(allowed_hosts), allowed_origins=origins)  # outermost: refuses first
    app.state.toolkit = toolkit
    app.state.slots = slots

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, exc: ClientGone) -> Response:
        log.debug("client disconnected before its request body was read: %s %s", request.method, request.url.path)
        return Response(status_code=400)  # nobody reads it; answered quietly (no traceback in the log)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds: dict[int, ErrorType] = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                                       415: "unsupported_media_type"}
        kind: ErrorType = kinds.get(exc.status_code, "bad_request")
        if exc.status_code >= 500:
            kind = "internal_error"
        if exc.status_code == 404:
            message = f"no endpoint {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        else:
            message = str(exc.detail)
        retryable = exc.status_code < 500 and exc.status_code not in (404, 405)
        return APIError(exc.status_code, kind, message, retryable=retryable,
                        headers=dict(exc.headers or {})).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid value')}"
                 for e in exc.errors()[:5]]
        return APIError(422, "invalid_input", "invalid request: " + "; ".join(parts), retryable=True).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # logged by the server too
        return APIError(500, "internal_error", f"internal server error ({type(exc).__name__}); see the server log",
                        retryable=False).response()

    @contextlib.asynccontextmanager
    async def slot(tool: str | None) -> AsyncIterator[None]:
        """Hold one of the ``max_concurrency`` slots, or answer 429 at once (taken after the body is read)."""
        if not slots.try_acquire():
            raise APIError(429, "busy", f"the server is busy ({slots.limit} requests running, the limit); "
                           f"retry after {retry_after} s", retryable=True, tool=tool,
                           headers={"Retry-After": str(retry_after)})
        try:
            yield
        finally:
            slots.release()

    # ------------------------------------------------------------------ health
    @app.get("/health", response_model=HealthResponse, tags=["status"], summary="Server status")
    async def health() -> dict[str, Any]:
        """Status, the tools this server can run, model names, store statistics, limits."""
        gar = toolkit.gar
        batcher = batcher_of(toolkit)
        cfg = toolkit.images.config
        return {
            "status": "ok", "version": __version__, "tools": toolkit.available_tools(), "models": names,
            "prompt_slots": None if gar is None else int(gar.prompt_slots),
            "store": await anyio.to_thread.run_sync(toolkit.store.stats),  # a remote store may block
            "limits": {"max_request_bytes": max_request_bytes, "max_concurrency": slots.limit,
                       "in_flight": slots.in_flight, "max_image_bytes": cfg.max_bytes, "max_pixels": cfg.max_pixels},
            "batching": None if batcher is None else {"max_batch": batcher.max_batch, "max_wait_s": batcher.max_wait,
                                                      "batches_run": batcher.batches_run},
        }

    # ------------------------------------------------------------------ tools
    for spec in TOOL_SPECS:
        _add_tool_route(app, toolkit, spec, slot, body_timeout, toolkit_for)

    # ------------------------------------------------------------------ uploads
    @app.post("/v1/images", response_model=UploadResponse, tags=["images"], summary="Upload an image",
              responses=_error_responses(413, 415, 422, 429), openapi_extra={"requestBody": {
                  "required": True, "content": {
                      "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                          "file": {"type": "string", "format": "binary"}}}},
                      "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                      "image/*": {"schema": {"type": "string", "format": "binary"}},
                      "application/json": {"schema": input_schema_of(UploadJSON)}}}})
    async def upload(request: Request) -> JSONResponse:
        """Store an image in the session store and return its ``image_id`` (pass it as ``image``
        to the tools). Send it as a multipart form field ``file``, as the raw request body
        (``image/png``, ``application/octet-stream``, ...), or as JSON ``{"image": "data:..."}``."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data = await read_body(request, body_timeout)
        async with slot(None):
            if kind == "multipart/form-data":
                data = await _form_file(request)
                stored = await anyio.to_thread.run_sync(_store_bytes, toolkit, data, "uploaded file")
            elif kind == "application/json":
                body = _json_object(data)
                try:
                    payload = UploadJSON.model_validate(body)
                except ValueError as exc:
                    raise _from_tool_error(as_tool_error(exc), None) from None
                stored = await anyio.to_thread.run_sync(_resolve, toolkit, payload.image)
            else:
                if not data:
                    raise APIError(422, "invalid_input", "the request body is empty; send the image file's "
                                   "bytes, a multipart form with a 'file' field, or JSON {\"image\": \"data:...\"}",
                                   retryable=True)
                stored = await anyio.to_thread.run_sync(_store_bytes, toolkit, data, "uploaded image")
        return JSONResponse({"image_id": stored.image_id, "width": stored.image.width,
                             "height": stored.image.height})

    # ------------------------------------------------------------------ the web page, segment, ask
    from gar_tool.integrations.http.web import add_web_routes

    async def read_json(request: Request, tool: str | None) -> dict[str, Any]:
        """A JSON object body, read within ``body_timeout`` (before any slot is taken)."""
        return _json_object(await read_body(request, body_timeout, tool=tool), tool=tool)

    add_web_routes(app, toolkit, slot, read_json,
                   planner=None if planner is None else planner(toolkit),
                   planner_name=(model_names or {}).get("planner"))
    return app


def input_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A small model's JSON schema without titles (for hand-written OpenAPI request bodies)."""
    from gar_tool.tools.specs import clean_schema

    return clean_schema(model.model_json_schema(), inputs=True)


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Body is not a JSON object", 413: "Request body too large", 415: "Not JSON",
            422: "Invalid input (ToolInputError), including unknown / expired ids", 429: "Busy: retry after "
            "Retry-After seconds", 500: "Tool failure (ToolFailure) or internal error",
            501: "Tool not available on this server"}
    return {c: {"model": ErrorResponse, "description": text[c]} for c in codes}


def _add_tool_route(app: FastAPI, toolkit: GARToolkit, spec: ToolSpec, slot: Any, body_timeout: float,
                    toolkit_for: Callable[[Mapping[str, str]], GARToolkit] | None = None) -> None:
    name = spec.name
    path = "/v1/" + spec.method  # gar_describe -> /v1/describe

    async def endpoint(request: Request, overlay: bool = Query(False, description=(
            "Also return the overlay image (regions drawn, legend) as overlay_png_base64.")),
            max_new_tokens: int | None = Query(None, description=(
                "GAR's token limit for this call's answers, at most the server's own limit "
                "(--max-new-tokens); for programmatic clients, not part of the tool's arguments."))) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and kind != "application/json" and not kind.endswith("+json"):
            raise APIError(415, "unsupported_media_type", f"send the arguments as JSON (Content-Type: "
                           f"application/json), got {kind!r}", retryable=True, tool=name)
        if name not in toolkit.available_tools():
            needs = {"gar": "a GAR model (--model)", "detector": "a grounding detector (--detector)",
                     "tracker": "a video tracker (--tracker)"}[spec.needs or ""]
            raise APIError(501, "tool_unavailable", f"{name} is not available on this server: it was started "
                           f"without {needs}", retryable=False, tool=name)
        kit = toolkit
        if toolkit_for is not None:
            try:
                kit = toolkit_for(request.headers)
            except ToolError as err:
                raise _from_tool_error(err, name) from None
        if max_new_tokens is not None:
            kit = _with_token_limit(kit, max_new_tokens, name)
        raw = await read_body(request, body_timeout, tool=name)  # a stalled body holds no slot
        args = _json_object(raw, tool=name)
        async with slot(name):
            body = await anyio.to_thread.run_sync(_run_tool, kit, name, args, overlay)
            return Response(body, media_type="application/json")

    endpoint.__name__ = name
    app.add_api_route(
        path, endpoint, methods=["POST"], response_model=_response_model(spec), tags=["tools"],
        summary=spec.title, description=spec.description, name=name, operation_id=name,
        responses=_error_responses(400, 413, 415, 422, 429, 500, 501),
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": input_schema(name)}}}})


def _with_token_limit(kit: GARToolkit, n: int, tool: str) -> GARToolkit:
    """``kit`` answering with at most ``n`` new tokens (422 unless ``1 <= n <= kit.max_new_tokens``)."""
    if not 1 <= n <= kit.max_new_tokens:
        raise APIError(422, "invalid_input", f"max_new_tokens must be between 1 and this server's limit of "
                       f"{kit.max_new_tokens}, got {n}", retryable=True, tool=tool)
    return kit.with_decode(dataclasses.replace(kit.decode, max_new_tokens=n))


def _json_object(raw: bytes, tool: str | None = None) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise APIError(400, "bad_request", f"the body must be a JSON object; it is not valid JSON ({exc})",
                       retryable=True, tool=tool) from None
    if not isinstance(data, dict):
        raise APIError(400, "bad_request", f"the body must be a JSON object, got a JSON {type(data).__name__}",
                       retryable=True, tool=tool)
    return data


async def _form_file(request: Request) -> bytes:
    form = await request.form()
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            upload = next((v for v in form.values() if not isinstance(v, str)), None)
        if upload is None:
            raise APIError(422, "invalid_input", "the multipart form has no file; send the image as a form "
                           "field named 'file'", retryable=True)
        return await upload.read()
    finally:
        await form.close()


def _run_tool(toolkit: GARToolkit, name: str, args: dict[str, Any], overlay: bool) -> bytes:
    """Worker thread: run the tool, render the overlay and the JSON; every error becomes an APIError."""
    try:
        data = toolkit.call(name, args).to_dict(include_overlay=overlay)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except ToolError as err:
        raise _from_tool_error(err, name) from None
    except Exception as exc:  # the toolkit raises only ToolErrors; rendering the overlay might not
        log.exception("%s failed", name)
        raise APIError(500, "internal_error", f"{name} failed unexpectedly ({type(exc).__name__})",
                       retryable=False, tool=name) from None


def _store_bytes(toolkit: GARToolkit, data: bytes, what: str) -> Any:
    """Worker thread: check and decode image bytes into the store (same limits as tool inputs)."""
    try:
        return toolkit.images.store_bytes(data, what)
    except ToolError as err:
        raise _from_tool_error(err, None) from None
    except Exception as exc:
        raise _from_tool_error(as_tool_error(exc), None) from None


def _resolve(toolkit: GARToolkit, ref: str) -> Any:
    try:
        return toolkit.images.resolve(ref)
    except ToolError as err:
        raise _from_tool_error(err, None) from None
    except Exception as exc:
        raise _from_tool_error(as_tool_error(exc), None) from None


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run ``app`` with uvicorn until interrupted (one process: the models are in this process)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


__all__ = ["create_app", "serve", "APIError", "BodyLimitMiddleware", "HostOriginGuard", "ErrorResponse", "ErrorInfo",
           "UploadResponse", "HealthResponse", "DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_CONCURRENCY",
           "DEFAULT_BODY_TIMEOUT"]
