"""The web page of ``gar serve`` and the HTTP routes it needs beyond the tools.

:func:`add_web_routes` (called by :func:`~gar_tool.integrations.http.server.create_app`) adds:

==================================  ===============================================================
``GET  /``                          the page (``static/index.html``): plain HTML/CSS/JS, no build
                                    step, nothing fetched from anywhere but this server
``GET  /static/...``                its scripts, style sheet and icon (package data)
``GET  /v1/images/{image_id}``      the stored image as PNG, exactly as the tools see it (EXIF
                                    orientation applied), so masks drawn on it line up
``POST /v1/segment``                a box or click points → a mask (SAM when a segmenter is loaded,
                                    else the box's rectangle / discs around the clicks)
``GET  /v1/planner``, ``POST /v1/ask``  the planner agent: :mod:`gar_tool.integrations.http.ask`
==================================  ===============================================================

``/v1/segment`` body: ``{"image": ref, "region": {"box": [x1, y1, x2, y2]} | {"points": [[x, y],
...], "labels": [1, 0, ...]}, "label": str?, "store": true}`` (pixels, origin top-left, x2/y2
exclusive). Answer: ``{"image_id", "stored", "segmented", "region": {"id", "label", "score",
"box", "area", "source", "rle"}}``. With ``"store": true`` the region goes to the session store
and gets an id usable in every tool (the same mask twice gives the same id); ``"store": false``
only previews it (``id`` null). ``segmented`` is true when the segmenter made the mask.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Union

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from gar_tool.regions.forms import coerce_region
from gar_tool.regions.region import Region
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import ToolError, as_tool_error
from gar_tool.tools.results import region_out
from gar_tool.tools.schemas import BoxRegion, ImageRef, PointsRegion, RegionOut, region_wire
from gar_tool.tools.store import StoredImage
from gar_tool.integrations.http.models import APIError, ErrorResponse, _from_tool_error

#: The page's files (shipped as package data).
STATIC_DIR = Path(__file__).with_name("static")

#: The page may load only what this server serves (``data:`` / ``blob:`` for the images it draws
#: and the files it offers for download): nothing from a CDN or anywhere else.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


# --------------------------------------------------------------------------- wire models
class SegmentInput(BaseModel):
    """Body of ``POST /v1/segment``."""

    model_config = ConfigDict(extra="forbid")
    image: ImageRef
    region: Union[BoxRegion, PointsRegion] = Field(description=(
        "{'box': [x1, y1, x2, y2]} or {'points': [[x, y], ...], 'labels': [1, 0, ...]}: pixels, origin "
        "top-left, x2/y2 exclusive; label 1 = on the object, 0 = background."))
    label: str | None = Field(default=None, max_length=200, description="A name for the region (shown in legends).")
    store: bool = Field(default=True, description=(
        "Store the region and return its id (true), or only preview the mask (false: id is null)."))


class SegmentRegion(RegionOut):
    """A region as ``/v1/segment`` returns it: like the tools' regions, ``id`` null for previews."""

    id: str | None = Field(default=None, description="Region id ('r2') when stored, null for a preview.")


class SegmentResponse(BaseModel):
    image_id: str = Field(description="The image the region belongs to.")
    stored: bool = Field(description="Whether the region was put in the session store (has an id).")
    segmented: bool = Field(description="True when the segmenter (SAM) made the mask; false: the box's "
                                        "rectangle or discs around the clicks (no segmenter loaded, or "
                                        "SAM gave an empty mask).")
    region: SegmentRegion


# --------------------------------------------------------------------------- routes
ReadJSON = Callable[[Request, Union[str, None]], Awaitable[dict[str, Any]]]


def add_web_routes(app: FastAPI, toolkit: GARToolkit, slot: Callable[[str | None], Any], read_json: ReadJSON, *,
                   planner: Any = None, planner_name: str | None = None) -> None:
    """Add the page, ``/v1/images/{id}``, ``/v1/segment`` and the planner routes to ``app``.

    Args:
        app: the app of :func:`~gar_tool.integrations.http.server.create_app`.
        toolkit: the toolkit it serves (its store, image rules and segmenter are used).
        slot: ``slot(name)``, the app's async context manager holding one concurrency slot (429
            when none is free).
        read_json: ``await read_json(request, tool)``: the body as a JSON object, read the way the
            app reads the tools' bodies (its limits and errors).
        planner: a planner object with ``stream(image, question)`` (see
            :mod:`gar_tool.integrations.http.ask`), or None (``/v1/ask`` answers 501).
        planner_name: the planner's name for ``/v1/planner`` (e.g. its spec).
    """
    from gar_tool.integrations.http.ask import add_ask_routes

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={
            "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/v1/images/{image_id}", tags=["images"], summary="Download a stored image",
             response_class=Response, responses={
                 200: {"content": {"image/png": {}}, "description": "The image as PNG (EXIF orientation applied)"},
                 422: {"model": ErrorResponse, "description": "Not an image id, or expired"}})
    async def image_png(image_id: str) -> Response:
        """The stored image ``image_id`` as PNG, as the tools see it (pixel coordinates of every
        region refer to it)."""
        stored = _stored_image(toolkit, image_id)
        data = await anyio.to_thread.run_sync(_png, stored.image)
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/v1/segment", tags=["regions"], summary="Box or click points → mask",
              response_model=SegmentResponse, responses={
                  c: {"model": ErrorResponse, "description": d} for c, d in (
                      (400, "Body is not a JSON object"), (413, "Request body too large"), (415, "Not JSON"),
                      (422, "Invalid input: bad image or region, region outside the image"),
                      (429, "Busy"), (500, "The segmenter failed"))},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": _schema(SegmentInput)}}}})
    async def segment(request: Request) -> Response:
        """Turn a box or click points into a mask with the server's segmenter (SAM), for previews
        while a person draws, or to store it as a region the tools accept by id."""
        _need_json(request)
        body = await read_json(request, None)
        async with slot(None):
            data = await anyio.to_thread.run_sync(_segment, toolkit, body)
        return JSONResponse(data)

    add_ask_routes(app, toolkit, slot, read_json, planner=planner, planner_name=planner_name)


# --------------------------------------------------------------------------- helpers
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    from gar_tool.integrations.http.server import input_schema_of

    return input_schema_of(model)


def _need_json(request: Request, tool: str | None = None) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise APIError(415, "unsupported_media_type", f"send the body as JSON (Content-Type: application/json), "
                       f"got {kind!r}", retryable=True, tool=tool)


def _stored_image(toolkit: GARToolkit, image_id: str) -> StoredImage:
    try:
        return toolkit.store.get_image(image_id)
    except ToolError as err:
        raise _from_tool_error(err, None) from None


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # fast: the page shows it once per image
    return buf.getvalue()


def _segment(toolkit: GARToolkit, body: dict[str, Any]) -> dict[str, Any]:
    """Worker thread: validate, resolve the image, make the mask, store it (or not)."""
    try:
        inp = SegmentInput.model_validate(body)
        img = toolkit.images.resolve(inp.image)
        region = coerce_region(region_wire(inp.region), img.size, image=img.image, segmenter=toolkit.segmenter)
        region = region.with_meta(id=None, label=inp.label)
        if inp.store:
            region = toolkit.store.put_region(img.image_id, region, dedupe=True)
    except Exception as exc:
        raise _from_tool_error(as_tool_error(exc, "segment"), None) from None
    return SegmentResponse(image_id=img.image_id, stored=inp.store, segmented=region.source == "sam",
                           region=_region_json(region)).model_dump(mode="json")


def _region_json(region: Region) -> SegmentRegion:
    """The tools' region output (:func:`~gar_tool.tools.results.region_out`), id null for a preview."""
    out = region_out(region if region.id is not None else region.with_meta(id="preview"))
    return SegmentRegion(**{**out.model_dump(), "id": region.id})


__all__ = ["add_web_routes", "SegmentInput", "SegmentResponse", "SegmentRegion", "STATIC_DIR", "PAGE_CSP"]
