"""HTTP clients of ``gar serve`` with the same tool interface as :class:`~gar_tool.tools.GARToolkit`.

::

    from gar_tool.client import GARClient
    with GARClient("http://127.0.0.1:8000") as gar:
        res = gar.describe({"image": "photo.jpg", "region": {"box": [10, 20, 200, 240]}})
        res.content, res.artifact.region.id            # the same ToolResult a local toolkit returns

    Planner(GARClient("http://gpu-box:8000"), chat_model).ask("photo.jpg", "...")   # remote tools

* ``call(name, args)`` / ``describe`` / ``relate`` / ``ground`` / ``measure`` → :class:`ToolResult`;
  ``available_tools()``, ``health()``, ``upload_image(path | bytes | PIL | array) -> image_id``.
* ``image`` arguments that are not strings (bytes, PIL images, arrays, ``Path``), and strings naming
  an existing *local* file (``upload_paths=True``), are uploaded first (``POST /v1/images``) and
  replaced by their ``image_id``: the server never needs to see the client's file system.
* ``store`` is a small stand-in for the toolkit's session store: ``store.put_image(pil)`` uploads
  and returns an object with ``image_id``; ``store.get_region(rid)`` rebuilds a :class:`Region` from
  the RLE masks of results this client received (a bounded local cache) — what
  :class:`agents.Planner` needs. ``gar.prompt_slots`` comes from ``/health``.
* Errors map back onto the toolkit's: :class:`ToolInputError` (the server's 4xx with
  ``retryable: true``: bad arguments, unknown ids, too large) and :class:`ToolFailure` (5xx, tool not
  available), with two kinds of ``ToolFailure`` of the client's own:
  :class:`GARConnectionError` (server unreachable / timed out) and :class:`GARServerBusy` (429;
  ``retry_after`` seconds; ``max_busy_retries`` retries automatically).

:class:`AsyncGARClient` is the same over ``httpx.AsyncClient`` (``await client.call(...)``).
``transport`` takes any httpx transport (``httpx.MockTransport``, ``httpx.ASGITransport(app)``)
for tests. This module never imports the servers.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
from pydantic import BaseModel

from .regions import Region
from .tools.errors import ToolFailure, ToolInputError
from .tools.results import ToolResult
from .tools.specs import get_spec

DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds per request by default: GAR on CPU can take a while for long answers.
DEFAULT_TIMEOUT = 300.0


class GARConnectionError(ToolFailure):
    """The server could not be reached or did not answer in time."""


class GARServerBusy(ToolFailure):
    """The server answered 429: all its request slots are taken. ``retry_after``: seconds it asked
    to wait (None when it did not say)."""

    def __init__(self, message: str, *, retry_after: float | None = None, tool: str | None = None) -> None:
        super().__init__(message, tool=tool)
        self.retry_after = retry_after


@dataclass(frozen=True)
class UploadedImage:
    """An image stored on the server: pass ``image_id`` as a tool's ``image``."""

    image_id: str
    width: int
    height: int


@dataclass(frozen=True)
class RemoteGAR:
    """What a client knows of the server's GAR (``Planner`` reads ``prompt_slots``)."""

    name: str | None
    prompt_slots: int


# --------------------------------------------------------------------------- local region cache
class RegionCache:
    """Regions seen in results, by id (bounded, least recently used dropped first; thread-safe)."""

    def __init__(self, max_regions: int = 4096) -> None:
        if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
            raise ValueError(f"max_regions must be a positive integer, got {max_regions!r}")
        self.max_regions = max_regions
        self._items: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, result: ToolResult) -> None:
        """Keep every region of ``result`` (``RegionOut`` models, with their image_id)."""
        out = result.artifact
        regions = list(getattr(out, "regions", None) or [])
        if getattr(out, "region", None) is not None:
            regions.append(out.region)
        with self._lock:
            for r in regions:
                self._items[r.id] = (out.image_id, r)
                self._items.move_to_end(r.id)
            while len(self._items) > self.max_regions:
                self._items.popitem(last=False)

    def get_region(self, region_id: str, image_id: str | None = None) -> Region:
        """The region ``region_id`` as a :class:`Region` (mask decoded from its RLE)."""
        with self._lock:
            item = self._items.get(region_id)
            if item is not None:
                self._items.move_to_end(region_id)
        if item is None:
            raise ToolInputError(f"region {region_id!r} is not in any result this client received (the client "
                                 "keeps the regions of results it got); use an id from a result")
        owner, out = item
        if image_id is not None and owner != image_id:
            raise ToolInputError(f"region {region_id!r} belongs to image {owner}, not to {image_id}")
        return Region.from_rle(out.rle.model_dump(), label=out.label, score=out.score, source=out.source,
                               id=out.id)

    def __len__(self) -> int:
        return len(self._items)


class RemoteStore:
    """The part of :class:`~gar_tool.tools.SessionStore` a planner uses, for a remote server:
    ``put_image`` uploads, ``get_region`` reads the local :class:`RegionCache`."""

    def __init__(self, upload: Callable[[Any], UploadedImage], regions: RegionCache) -> None:
        self._upload = upload
        self.regions = regions

    def put_image(self, image: Any) -> UploadedImage:
        """Upload ``image`` (PIL image, path, bytes or array); returns its ``image_id`` and size."""
        return self._upload(image)

    def get_region(self, region_id: str, image_id: str | None = None) -> Region:
        return self.regions.get_region(region_id, image_id)


class AsyncRemoteStore:
    """:class:`RemoteStore` of :class:`AsyncGARClient` (``await store.put_image(...)``)."""

    def __init__(self, upload: Callable[[Any], Any], regions: RegionCache) -> None:
        self._upload = upload
        self.regions = regions

    async def put_image(self, image: Any) -> UploadedImage:
        return await self._upload(image)

    def get_region(self, region_id: str, image_id: str | None = None) -> Region:
        return self.regions.get_region(region_id, image_id)


# --------------------------------------------------------------------------- shared logic
def image_payload(image: Any) -> tuple[bytes, str]:
    """``(file bytes, content type)`` of an image to upload: a path (str / ``Path``), encoded file
    bytes, a PIL image or an ``HxWx3`` uint8 array (both sent as PNG)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ToolInputError("image bytes are empty")
        return data, "application/octet-stream"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise ToolInputError(f"image file not found on this machine: {str(image)!r}")
        return path.read_bytes(), "application/octet-stream"
    from PIL import Image

    if not isinstance(image, Image.Image):
        try:
            import numpy as np

            image = Image.fromarray(np.asarray(image))
        except Exception as exc:
            raise ToolInputError(f"image must be a path, file bytes, a PIL image or an HxWx3 uint8 array, "
                                 f"got {type(image).__name__} ({exc})") from None
    buf = io.BytesIO()
    (image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def _needs_upload(image: Any, upload_paths: bool) -> bool:
    if isinstance(image, str):
        if not upload_paths or "\x00" in image or len(image) > 4096 or image[:5].lower() == "data:":
            return False
        try:
            return os.path.isfile(os.path.expanduser(image))
        except (OSError, ValueError):
            return False
    return image is not None


def _plain_args(args: Any, name: str) -> dict[str, Any]:
    if isinstance(args, BaseModel):
        return args.model_dump(mode="json", exclude_none=True)
    if not isinstance(args, dict):
        raise ToolInputError(f"arguments of {name} must be a dict or its input model, got {type(args).__name__}",
                             tool=name)
    return dict(args)


def _json_body(body: dict[str, Any], name: str) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ToolInputError(f"arguments of {name} must be JSON data (lists, numbers, strings): {exc}",
                             tool=name) from None


_JSON = {"content-type": "application/json"}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(response: httpx.Response, tool: str | None = None) -> Exception:
    """The exception for an error answer (see the module docstring for the mapping)."""
    status = response.status_code
    info: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            info = body["error"]
    except ValueError:
        pass
    where = f"{response.request.method} {response.request.url}"
    message = str(info.get("message") or f"HTTP {status} from {where}: {response.text[:200]!r}")
    tool = info.get("tool") or tool
    if status == 429:
        wait = _retry_after(response)
        hint = f"; retry after {wait:g} s" if wait is not None and "retry after" not in message else ""
        return GARServerBusy(f"{message}{hint}", retry_after=wait, tool=tool)
    if info.get("type") in ("not_found", "method_not_allowed") or (not info and status in (404, 405)):
        return ToolFailure(f"{message} (is {response.request.url.scheme}://{response.request.url.netloc.decode()} "
                           "a gar server?)", tool=tool)
    if 400 <= status < 500 and info.get("retryable", False):
        return ToolInputError(message, tool=tool)
    return ToolFailure(message if info else f"the GAR server failed: {message}", tool=tool)


def _transport_error(exc: httpx.TransportError, base_url: str, timeout: Any, tool: str | None) -> GARConnectionError:
    if isinstance(exc, httpx.ConnectError):
        text = f"cannot connect to the GAR server at {base_url} ({exc}); is `gar serve` running there?"
    elif isinstance(exc, httpx.TimeoutException):
        text = f"the GAR server at {base_url} did not answer in time ({type(exc).__name__}, timeout {timeout})"
    else:
        text = f"talking to the GAR server at {base_url} failed ({type(exc).__name__}: {exc})"
    return GARConnectionError(text, tool=tool)


def _parse_result(response: httpx.Response, name: str) -> ToolResult:
    try:
        data = response.json()
        result = ToolResult.from_dict(data)
    except Exception as exc:
        raise ToolFailure(f"the GAR server answered {name} with something that is not a {name} result "
                          f"({type(exc).__name__}: {str(exc)[:200]})", tool=name) from None
    if result.tool != name:
        raise ToolFailure(f"asked for {name}, the server answered a {result.tool} result", tool=name)
    return result


def _parse_upload(response: httpx.Response) -> UploadedImage:
    try:
        data = response.json()
        return UploadedImage(str(data["image_id"]), int(data["width"]), int(data["height"]))
    except Exception as exc:
        raise ToolFailure(f"the GAR server answered an upload with an unexpected body ({exc})") from None


def _check_busy_retries(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_busy_retries must be an integer >= 0, got {value!r}")
    return value


class _Common:
    """What both clients share: configuration, argument preparation, the region cache."""

    def __init__(self, base_url: str, timeout: float | httpx.Timeout | None, headers: dict[str, str] | None,
                 include_overlay: bool, upload_paths: bool, max_busy_retries: int, max_regions: int) -> None:
        self.base_url = str(base_url).rstrip("/")
        self.timeout = timeout
        self.include_overlay = include_overlay
        self.upload_paths = upload_paths
        self.max_busy_retries = _check_busy_retries(max_busy_retries)
        self.regions = RegionCache(max_regions)
        self._headers = dict(headers or {})

    @staticmethod
    def _endpoint(name: str) -> str:
        try:
            return "/v1/" + get_spec(name).method
        except ToolInputError as exc:
            exc.tool = name
            raise

    def _params(self, overlay: bool | None) -> dict[str, str]:
        return {"overlay": "true"} if (self.include_overlay if overlay is None else overlay) else {}

    def _busy_wait(self, err: GARServerBusy, attempt: int) -> float | None:
        """Seconds to wait before retry ``attempt`` (None: give up and raise)."""
        if attempt >= self.max_busy_retries:
            return None
        return err.retry_after if err.retry_after is not None else 1.0


# --------------------------------------------------------------------------- sync client
class GARClient(_Common):
    """Synchronous client of a ``gar serve`` server (see the module docstring).

    Args:
        base_url: the server, e.g. ``"http://127.0.0.1:8000"``.
        timeout: seconds per request (or an ``httpx.Timeout``).
        transport: an httpx transport (tests: ``httpx.MockTransport``); default: the network.
        headers: extra headers on every request (e.g. an ``Authorization`` for a proxy in front).
        include_overlay: ask for the overlay PNG by default (``ToolResult.overlay_png``).
        upload_paths: upload ``image`` strings that name an existing local file.
        max_busy_retries: on 429, wait ``Retry-After`` seconds and retry this many times.
        max_regions: regions kept in the local cache behind ``store.get_region``.
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None, headers: dict[str, str] | None = None,
                 include_overlay: bool = False, upload_paths: bool = True, max_busy_retries: int = 0,
                 max_regions: int = 4096) -> None:
        super().__init__(base_url, timeout, headers, include_overlay, upload_paths, max_busy_retries, max_regions)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport, headers=headers)
        self.store = RemoteStore(self._upload, self.regions)
        self._gar: RemoteGAR | None | bool = False  # False: not asked yet

    # ------------------------------------------------------------------ plumbing
    def _send(self, method: str, path: str, *, tool: str | None = None, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise _transport_error(exc, self.base_url, self.timeout, tool) from None
            if response.is_success:
                return response
            err = error_from_response(response, tool)
            wait = self._busy_wait(err, attempt) if isinstance(err, GARServerBusy) else None
            if wait is None:
                raise err
            time.sleep(wait)
            attempt += 1

    def _upload(self, image: Any) -> UploadedImage:
        data, kind = image_payload(image)
        return _parse_upload(self._send("POST", "/v1/images", content=data, headers={"content-type": kind}))

    def _prepare(self, name: str, args: Any) -> dict[str, Any]:
        body = _plain_args(args, name)
        if _needs_upload(body.get("image"), self.upload_paths):
            body["image"] = self._upload(body["image"]).image_id
        return body

    # ------------------------------------------------------------------ tool interface
    def call(self, name: str, args: Any, *, overlay: bool | None = None) -> ToolResult:
        """Run tool ``name`` on the server (``args``: a dict or the tool's input model)."""
        path = self._endpoint(name)
        body = self._prepare(name, args)
        response = self._send("POST", path, tool=name, content=_json_body(body, name), headers=_JSON,
                              params=self._params(overlay))
        result = _parse_result(response, name)
        self.regions.remember(result)
        return result

    def describe(self, args: Any, **kw: Any) -> ToolResult:
        """``gar_describe`` (see :meth:`GARToolkit.describe`)."""
        return self.call("gar_describe", args, **kw)

    def relate(self, args: Any, **kw: Any) -> ToolResult:
        """``gar_relate``."""
        return self.call("gar_relate", args, **kw)

    def ground(self, args: Any, **kw: Any) -> ToolResult:
        """``gar_ground``."""
        return self.call("gar_ground", args, **kw)

    def measure(self, args: Any, **kw: Any) -> ToolResult:
        """``gar_measure``."""
        return self.call("gar_measure", args, **kw)

    def health(self) -> dict[str, Any]:
        """The server's ``GET /health`` answer."""
        response = self._send("GET", "/health")
        try:
            return response.json()
        except ValueError:
            raise ToolFailure(f"{self.base_url}/health did not answer JSON; is it a gar server?") from None

    def available_tools(self) -> list[str]:
        """The tools the server can run (asked each time: servers restart)."""
        return list(self.health()["tools"])

    def upload_image(self, image: Any) -> str:
        """Store ``image`` (path, file bytes, PIL image, array) on the server; returns its image_id."""
        return self._upload(image).image_id

    @property
    def gar(self) -> RemoteGAR | None:
        """The server's GAR (``name``, ``prompt_slots``), or None without one (asked once)."""
        if self._gar is False:
            info = self.health()
            slots = info.get("prompt_slots")
            self._gar = None if slots is None else RemoteGAR((info.get("models") or {}).get("gar"), int(slots))
        return self._gar  # type: ignore[return-value]

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GARClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GARClient({self.base_url!r})"


# --------------------------------------------------------------------------- async client
class AsyncGARClient(_Common):
    """:class:`GARClient` over ``httpx.AsyncClient``: the same methods, awaited
    (``store.get_region`` stays synchronous: it reads the local cache)."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None, headers: dict[str, str] | None = None,
                 include_overlay: bool = False, upload_paths: bool = True, max_busy_retries: int = 0,
                 max_regions: int = 4096) -> None:
        super().__init__(base_url, timeout, headers, include_overlay, upload_paths, max_busy_retries, max_regions)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport, headers=headers)
        self.store = AsyncRemoteStore(self._upload, self.regions)

    async def _send(self, method: str, path: str, *, tool: str | None = None, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise _transport_error(exc, self.base_url, self.timeout, tool) from None
            if response.is_success:
                return response
            err = error_from_response(response, tool)
            wait = self._busy_wait(err, attempt) if isinstance(err, GARServerBusy) else None
            if wait is None:
                raise err
            await asyncio.sleep(wait)
            attempt += 1

    async def _upload(self, image: Any) -> UploadedImage:
        data, kind = image_payload(image)
        return _parse_upload(await self._send("POST", "/v1/images", content=data, headers={"content-type": kind}))

    async def call(self, name: str, args: Any, *, overlay: bool | None = None) -> ToolResult:
        """Run tool ``name`` on the server (``args``: a dict or the tool's input model)."""
        path = self._endpoint(name)
        body = _plain_args(args, name)
        if _needs_upload(body.get("image"), self.upload_paths):
            body["image"] = (await self._upload(body["image"])).image_id
        response = await self._send("POST", path, tool=name, content=_json_body(body, name), headers=_JSON,
                                    params=self._params(overlay))
        result = _parse_result(response, name)
        self.regions.remember(result)
        return result

    async def describe(self, args: Any, **kw: Any) -> ToolResult:
        return await self.call("gar_describe", args, **kw)

    async def relate(self, args: Any, **kw: Any) -> ToolResult:
        return await self.call("gar_relate", args, **kw)

    async def ground(self, args: Any, **kw: Any) -> ToolResult:
        return await self.call("gar_ground", args, **kw)

    async def measure(self, args: Any, **kw: Any) -> ToolResult:
        return await self.call("gar_measure", args, **kw)

    async def health(self) -> dict[str, Any]:
        response = await self._send("GET", "/health")
        try:
            return response.json()
        except ValueError:
            raise ToolFailure(f"{self.base_url}/health did not answer JSON; is it a gar server?") from None

    async def available_tools(self) -> list[str]:
        return list((await self.health())["tools"])

    async def upload_image(self, image: Any) -> str:
        return (await self._upload(image)).image_id

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncGARClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncGARClient({self.base_url!r})"


__all__ = ["GARClient", "AsyncGARClient", "GARConnectionError", "GARServerBusy", "UploadedImage", "RemoteGAR",
           "RemoteStore", "AsyncRemoteStore", "RegionCache", "image_payload", "error_from_response"]
