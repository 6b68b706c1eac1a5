"""The synchronous client (``GARClient``)."""

from __future__ import annotations

import time
import os
from typing import Any, Sequence

import httpx

from gar_tool.tools.errors import ToolFailure
from gar_tool.tools.results import ToolResult
from gar_tool.integrations.http.remote_gar import RemoteGAR
from gar_tool.integrations.http.wire import (
    _JSON,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    GARServerBusy,
    RemoteStore,
    UploadedImage,
    _Common,
    _json_body,
    _needs_upload,
    _parse_result,
    _parse_upload,
    _plain_args,
    _transport_error,
    error_from_response,
)


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
        allowed_roots: the only directories local files are uploaded from (default: the working
            directory when the client is created); a local file elsewhere — a symlink or ``..``
            leading out included — is refused with :class:`ToolInputError`, whatever the server's
            ``--allow-dir``. ``[]`` refuses every local file.
        max_upload_bytes: largest file uploaded (default: the ``request_bytes`` limit); checked
            before the file is read.
        max_busy_retries: on 429, wait ``Retry-After`` seconds and retry this many times.
        max_regions: regions kept in the local cache behind ``store.get_region``.
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None, headers: dict[str, str] | None = None,
                 include_overlay: bool = False, upload_paths: bool = True, max_busy_retries: int = 0,
                 max_regions: int = 4096, allowed_roots: Sequence[str | os.PathLike] | None = None,
                 max_upload_bytes: int | None = None) -> None:
        super().__init__(base_url, timeout, headers, include_overlay, upload_paths, max_busy_retries, max_regions,
                         allowed_roots, max_upload_bytes)
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
        data, kind = self._payload(image)
        return _parse_upload(self._send("POST", "/v1/images", content=data, headers={"content-type": kind}))

    def _prepare(self, name: str, args: Any) -> dict[str, Any]:
        body = _plain_args(args, name)
        if _needs_upload(body.get("image"), self.upload_paths):
            body["image"] = self._upload(body["image"]).image_id
        return body

    # ------------------------------------------------------------------ tool interface
    def call(self, name: str, args: Any, *, overlay: bool | None = None,
             max_new_tokens: int | None = None) -> ToolResult:
        """Run tool ``name`` on the server (``args``: a dict or the tool's input model).
        ``max_new_tokens`` lowers GAR's token limit for this call (up to the server's own)."""
        path = self._endpoint(name)
        body = self._prepare(name, args)
        params = self._params(overlay)
        if max_new_tokens is not None:
            params["max_new_tokens"] = str(max_new_tokens)
        response = self._send("POST", path, tool=name, content=_json_body(body, name), headers=_JSON,
                              params=params)
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
        """The server's GAR as a :class:`~gar_tool.gar.protocol.GARBackend`
        (:class:`~gar_tool.integrations.http.remote_gar.RemoteGAR`), or None without one (asked once)."""
        if self._gar is False:
            info = self.health()
            slots = info.get("prompt_slots")
            self._gar = None if slots is None else RemoteGAR(self, (info.get("models") or {}).get("gar"), int(slots))
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
