"""Shared pieces of the HTTP clients: errors, the region cache behind ``store``, payloads,
response parsing and the settings both clients take."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx
from pydantic import BaseModel

from gar_tool.cache import LRUCache
from gar_tool.errors import InputError
from gar_tool.limits import limit
from gar_tool.media.images import read_file
from gar_tool.regions.region import Region
from gar_tool.tools.errors import ToolFailure, ToolInputError
from gar_tool.tools.results import ToolResult
from gar_tool.tools.specs import get_spec

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


# --------------------------------------------------------------------------- local region cache
class RegionCache:
    """Regions seen in results, by id (bounded, least recently used dropped first; thread-safe:
    a :class:`gar_tool.cache.LRUCache` counting one unit per region)."""

    def __init__(self, max_regions: int = 4096) -> None:
        if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
            raise ValueError(f"max_regions must be a positive integer, got {max_regions!r}")
        self.max_regions = max_regions
        self._items = LRUCache(max_bytes=max_regions, max_items=max_regions, size_of=lambda _: 1)

    def remember(self, result: ToolResult) -> None:
        """Keep every region of ``result`` (``RegionOut`` models, with their image_id)."""
        out: Any = result.artifact
        regions = list(getattr(out, "regions", None) or [])
        if getattr(out, "region", None) is not None:
            regions.append(out.region)
        for r in regions:
            self._items.put(r.id, (out.image_id, r))

    def get_region(self, region_id: str, image_id: str | None = None) -> Region:
        """The region ``region_id`` as a :class:`Region` (mask decoded from its RLE)."""
        item = self._items.get(region_id)
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
def allowed_local_file(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symlinks, ``..``), if it lies under one of ``roots``; else
    :class:`ToolInputError` naming the roots (the client's own upload rule, independent of what
    the server allows)."""
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        listed = ", ".join(str(r) for r in roots) or "none"
        raise ToolInputError(f"local file {os.fspath(path)!r} resolves outside this client's allowed directories "
                             f"({listed}); the client uploads only files under them: create it with "
                             "GARClient(..., allowed_roots=[DIR, ...]) or pass the image as bytes")
    return resolved


def image_payload(image: Any, roots: Sequence[Path] | None = None,
                  max_bytes: int | None = None) -> tuple[bytes, str]:
    """``(file bytes, content type)`` of an image to upload: a path (str / ``Path``) under ``roots``
    (default: the working directory), encoded file bytes, a PIL image or an ``HxWx3`` uint8 array
    (both sent as PNG). A file's size is checked against ``max_bytes`` (default: the
    ``request_bytes`` limit) before it is read."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ToolInputError("image bytes are empty")
        return data, "application/octet-stream"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise ToolInputError(f"image file not found on this machine: {os.fspath(image)!r}")
        resolved = allowed_local_file(path, [Path.cwd().resolve()] if roots is None else roots)
        try:
            return read_file(resolved, "image file", max_bytes if max_bytes is not None else limit("request_bytes"),
                             name="request_bytes"), "application/octet-stream"
        except InputError as exc:
            raise ToolInputError(str(exc)) from None
    from PIL import Image

    if not isinstance(image, Image.Image):
        try:
            import numpy as np

            image = Image.fromarray(np.asarray(image))
        except (TypeError, ValueError) as exc:
            raise ToolInputError(f"image must be a path, file bytes, a PIL image or an HxWx3 uint8 array, "
                                 f"got {type(image).__name__} ({exc})") from None
    buf = io.BytesIO()
    (image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def _needs_upload(image: Any, upload_paths: bool) -> bool:
    """True for non-string images and for strings naming an existing local file."""
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
                 include_overlay: bool, upload_paths: bool, max_busy_retries: int, max_regions: int,
                 allowed_roots: Sequence[str | os.PathLike] | None = None,
                 max_upload_bytes: int | None = None) -> None:
        self.base_url = str(base_url).rstrip("/")
        roots = [Path.cwd()] if allowed_roots is None else [Path(r) for r in allowed_roots]
        self.allowed_roots = tuple(r.expanduser().resolve() for r in roots)
        self.max_upload_bytes = limit("request_bytes") if max_upload_bytes is None else int(max_upload_bytes)
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

    def _payload(self, image: Any) -> tuple[bytes, str]:
        return image_payload(image, self.allowed_roots, self.max_upload_bytes)

    def _params(self, overlay: bool | None) -> dict[str, str]:
        return {"overlay": "true"} if (self.include_overlay if overlay is None else overlay) else {}

    def _busy_wait(self, err: GARServerBusy, attempt: int) -> float | None:
        """Seconds to wait before retry ``attempt`` (None: give up and raise)."""
        if attempt >= self.max_busy_retries:
            return None
        return err.retry_after if err.retry_after is not None else 1.0
