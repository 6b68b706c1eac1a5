"""The asyncio client (``AsyncGARClient``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Sequence

import httpx

from gar_tool.tools.errors import ToolFailure
from gar_tool.tools.results import ToolResult
from gar_tool.integrations.http.wire import (
    _JSON,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    AsyncRemoteStore,
    GARServerBusy,
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


# --------------------------------------------------------------------------- async client
class AsyncGARClient(_Common):
    """:class:`GARClient` over ``httpx.AsyncClient``: the same methods, awaited
    (``store.get_region`` stays synchronous: it reads the local cache)."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None, headers: dict[str, str] | None = None,
                 include_overlay: bool = False, upload_paths: bool = True, max_busy_retries: int = 0,
                 max_regions: int = 4096, allowed_roots: Sequence[str | os.PathLike] | None = None,
                 max_upload_bytes: int | None = None) -> None:
        super().__init__(base_url, timeout, headers, include_overlay, upload_paths, max_busy_retries, max_regions,
                         allowed_roots, max_upload_bytes)
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
        data, kind = self._payload(image)
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
