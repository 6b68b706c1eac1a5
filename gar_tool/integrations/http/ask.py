"""The planner agent over HTTP: ``POST /v1/ask`` (server-sent events or JSON) and ``GET /v1/planner``.

``gar_tool`` never imports the planner package: the app gets a planner object (``gar serve
--planner SPEC`` builds one through the ``gar.planners`` entry point) whose ``stream(image,
question)`` yields the planner's events. :func:`event_json` is the one place that knows their
format (``gar_agents.events``): each has ``to_dict()`` → ``{"type": ..., ...}``:

==================  ==========================================================================
``tool_call``       ``step``, ``turn``, ``call_id``, ``tool``, ``args``: the planner called a tool
``tool_result``     ``step``, ``call_id``, ``tool``, ``ok``, ``content`` (what the planner reads),
                    ``output`` (the structured result, regions with RLE masks; null on failure)
``answer``          ``result``: the planner's result (``answer``, ``cited``, ``evidence``,
                    ``steps``, ``stopped``), plus ``overlay_png_base64`` (the cited regions drawn,
                    or null). The last event of a run.
``error``           ``message`` (and ``result``: what was gathered before): the run failed, e.g.
                    the planner model is unreachable. The last event of a run.
==================  ==========================================================================

``POST /v1/ask`` body: ``{"image": ref, "question": "..."}``. With ``Accept: text/event-stream``
the answer is a stream of those events (SSE ``event:`` = the type, ``data:`` = the JSON; comment
pings keep idle connections open); a client that goes away stops the run after its current step.
Otherwise the answer is JSON once the run ends: ``{"result", "overlay_png_base64"}`` (200), or an
error (502 ``tool_failure`` when the planner model failed). Bad bodies and images are answered
before the run starts, as JSON errors (400 / 415 / 422); no planner on this server: 501.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Protocol

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from gar_tool.errors import GARError, InputError
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import as_tool_error
from gar_tool.tools.schemas import ImageRef
from gar_tool.integrations.http.models import APIError, ErrorResponse, _from_tool_error

log = logging.getLogger(__name__)

#: Seconds between keep-alive comments on an idle event stream (a GAR step on CPU can take minutes).
PING_SECONDS = 15.0
#: Most characters of a planner question.
MAX_QUESTION_CHARS = 4000
#: The event types that end a run.
FINAL_EVENTS = ("answer", "error")


class StreamingPlanner(Protocol):
    """What ``/v1/ask`` needs of a planner (``gar_agents.Planner`` is one)."""

    def stream(self, image: Any, question: str) -> Iterator[Any]: ...


class AskInput(BaseModel):
    """Body of ``POST /v1/ask``."""

    model_config = ConfigDict(extra="forbid")
    image: ImageRef
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description=(
        "A free-form question about the image; region ids of earlier calls ('r2') may be named."))


class PlannerStatus(BaseModel):
    available: bool = Field(description="Whether POST /v1/ask can run (the server was started with --planner).")
    name: str | None = Field(default=None, description="The planner (e.g. its spec 'openai:gpt-4o-mini').")


# --------------------------------------------------------------------------- the event format
def event_json(event: Any) -> dict[str, Any]:
    """One planner event → its JSON object (``{"type": ..., ...}``; see the module docstring).

    Events are the planner's typed events (``to_dict()``) or plain dicts. An ``answer`` event gets
    ``overlay_png_base64`` from its result's ``overlay_png`` (PNG bytes or None).
    """
    data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
    kind = data.get("type")
    if not isinstance(kind, str) or not kind.isidentifier():
        raise TypeError(f"a planner event needs a 'type' name, got {kind!r}")
    if kind == "answer" and "overlay_png_base64" not in data:
        png = getattr(getattr(event, "result", None), "overlay_png", None)
        data["overlay_png_base64"] = base64.b64encode(png).decode("ascii") if png else None
    return data


def _error_event(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message, "result": None}


# --------------------------------------------------------------------------- routes
def add_ask_routes(app: FastAPI, toolkit: GARToolkit, slot: Callable[[str | None], Any],
                   read_json: Callable[[Request, str | None], Awaitable[dict[str, Any]]], *,
                   planner: StreamingPlanner | None, planner_name: str | None = None) -> None:
    """Add ``GET /v1/planner`` and ``POST /v1/ask`` (see the module docstring) to ``app``
    (``slot`` and ``read_json`` as for :func:`~gar_tool.integrations.http.web.add_web_routes`)."""
    from gar_tool.integrations.http.web import _need_json

    @app.get("/v1/planner", tags=["planner"], summary="Is a planner available", response_model=PlannerStatus)
    async def planner_status() -> dict[str, Any]:
        """Whether this server can answer ``POST /v1/ask``, and with which planner."""
        return {"available": planner is not None, "name": planner_name if planner is not None else None}

    @app.post("/v1/ask", tags=["planner"], summary="Ask the planner agent (streams its steps)",
              responses={
                  200: {"description": "text/event-stream of planner events (Accept: text/event-stream), "
                                       "else JSON {result, overlay_png_base64}",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                  **{c: {"model": ErrorResponse, "description": d} for c, d in (
                      (400, "Body is not a JSON object"), (415, "Not JSON"), (422, "Invalid input: bad image or question"),
                      (429, "Busy"), (501, "No planner on this server"),
                      (502, "The planner failed (JSON answers only; streams end with an error event)"))}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": _schema(AskInput)}}}})
    async def ask(request: Request) -> Response:
        """Answer a free-form question about an image with the planner agent: it grounds the
        things named, asks GAR about them and answers citing region ids."""
        _need_json(request, "planner")
        if planner is None:
            raise APIError(501, "tool_unavailable", "the planner is not available on this server: start it with "
                           "--planner SPEC (e.g. gar serve ... --planner openai:gpt-4o-mini)", retryable=False,
                           tool="planner")
        body = await read_json(request, "planner")
        inp, image = await anyio.to_thread.run_sync(_validate, toolkit, body)
        lease = contextlib.AsyncExitStack()
        await lease.enter_async_context(slot("planner"))  # 429 here, before anything is streamed
        accept = request.headers.get("accept", "").lower()
        if "text/event-stream" not in accept:
            try:
                return await _run_to_end(planner, image, inp.question)
            finally:
                await lease.aclose()
        # The stream releases the slot when it ends; the background task too, should it never start.
        return EventSourceResponse(_sse(planner, image, inp.question, lease), ping=PING_SECONDS, sep="\n",
                                   background=BackgroundTask(lease.aclose))


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    from gar_tool.integrations.http.web import _schema as schema

    return schema(model)


def _validate(toolkit: GARToolkit, body: dict[str, Any]) -> tuple[AskInput, Any]:
    """Worker thread: the body and its image (a PIL image from the store), or a 422."""
    try:
        inp = AskInput.model_validate(body)
        if not inp.question.strip():
            raise InputError("question must not be blank")
        return inp, toolkit.images.resolve(inp.image).image
    except Exception as exc:
        raise _from_tool_error(as_tool_error(exc, "planner"), "planner") from None


_END = object()


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """Worker thread: ``fn(*args)``; a planner that raises gives an error event instead."""
    try:
        return fn(*args)
    except GARError as exc:  # the planner's own errors (unreachable model, ...): one line for the person
        return _error_event(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:
        log.exception("the planner failed")
        return _error_event(f"the planner failed unexpectedly ({type(exc).__name__}); see the server log")


def _next(events: Iterator[Any]) -> Any:
    try:
        return event_json(next(events))
    except StopIteration:
        return _END


async def _events(planner: StreamingPlanner, image: Any, question: str) -> AsyncIterator[dict[str, Any]]:
    """The run's events, each computed in a worker thread; always ends with a final event. Closing
    this generator (the client went away) closes the planner's after its current step."""
    stream = await anyio.to_thread.run_sync(_guarded, lambda: iter(planner.stream(image, question)))
    if isinstance(stream, dict):  # it failed to start
        yield stream
        return
    try:
        while True:
            data = await anyio.to_thread.run_sync(_guarded, _next, stream)
            if data is _END:
                yield _error_event("the planner stopped without an answer")
                return
            yield data
            if data["type"] in FINAL_EVENTS:
                return
    finally:
        if hasattr(stream, "close"):
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.close)


async def _sse(planner: StreamingPlanner, image: Any, question: str,
               lease: contextlib.AsyncExitStack) -> AsyncIterator[dict[str, str]]:
    try:
        async for data in _events(planner, image, question):
            yield {"event": data["type"], "data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}
    finally:
        with anyio.CancelScope(shield=True):
            await lease.aclose()


async def _run_to_end(planner: StreamingPlanner, image: Any, question: str) -> JSONResponse:
    last: dict[str, Any] = _error_event("the planner stopped without an answer")
    async for data in _events(planner, image, question):
        last = data
    if last["type"] == "answer":
        return JSONResponse({"result": last.get("result"), "overlay_png_base64": last.get("overlay_png_base64")})
    raise APIError(502, "tool_failure", f"the planner failed: {last.get('message')}", retryable=False, tool="planner")


__all__ = ["add_ask_routes", "event_json", "AskInput", "PlannerStatus", "StreamingPlanner", "PING_SECONDS"]
