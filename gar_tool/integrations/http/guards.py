"""What the HTTP server checks before a request reaches an endpoint, and how it reads bodies.

* :class:`HostOriginGuard` — DNS-rebinding and cross-site protection: a request whose ``Host`` is
  not an allowed host gets **421** ``invalid_host``; a browser request whose ``Origin`` is neither
  the server's own origin nor an allowed origin gets **403** ``forbidden_origin``. Allowed hosts
  default to the loopback names plus the address the server is bound to (:func:`default_hosts`);
  ``"*"`` allows any. CORS answers (preflight, ``Access-Control-Allow-Origin``) come from Starlette's
  ``CORSMiddleware``, for the allowed origins only.
* :class:`BodyLimitMiddleware` — **413** for bodies over the limit, declared or streamed.
* :func:`read_body` — the whole body within ``timeout`` seconds (**408** ``request_timeout`` after
  it, connection closed) *before* the endpoint takes a concurrency slot, so clients that send
  headers and stall hold no slot; a client that disconnects raises :class:`ClientGone`, which the
  server answers quietly (nothing to answer, nothing worth a traceback in the log).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable
from urllib.parse import urlsplit

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gar_tool.integrations.http.models import APIError

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


def default_hosts(bound: str) -> list[str]:
    """Allowed ``Host`` names by default: the loopback names and ``bound`` (the listening address)
    unless it is a wildcard (``0.0.0.0`` / ``::``: name the public host names with ``--allow-host``)."""
    hosts = list(LOOPBACK_HOSTS)
    if bound not in ("0.0.0.0", "::", "") and bound.lower() not in hosts:
        hosts.append(bound.lower())
    return hosts


def _host_name(value: str) -> str | None:
    """``Host`` header value → lower-case host name without the port (None when malformed)."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):  # [v6]:port
        end = value.find("]")
        return value[1:end] if end > 0 else None
    name, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if port and not port.isdigit():
        return None
    return name or None


def _origin(value: str) -> str | None:
    """``scheme://host[:port]`` of an origin, normalised (lower case, default port dropped)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


class HostOriginGuard:
    """ASGI middleware refusing requests for other hosts (421) and from foreign origins (403)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        hosts = [h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()]
        self.any_host = "*" in hosts
        self.hosts = {self._canonical(h) for h in hosts if h != "*"}
        origins = [o.strip() for o in allowed_origins if o.strip()]
        self.any_origin = "*" in origins
        self.origins = {o for o in (_origin(v) for v in origins if v != "*") if o}

    @staticmethod
    def _canonical(host: str) -> str:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return host

    def host_allowed(self, host_header: str | None) -> bool:
        if self.any_host:
            return True
        name = _host_name(host_header or "")
        return name is not None and self._canonical(name) in self.hosts

    def origin_allowed(self, origin: str, host_header: str, scheme: str) -> bool:
        if self.any_origin:
            return True
        own = _origin(f"{scheme}://{host_header}")
        got = _origin(origin)
        return got is not None and (got == own or got in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        if not self.host_allowed(host):
            err = APIError(421, "invalid_host", f"Host {host[:100]!r} is not served here (allowed: "
                           f"{', '.join(sorted(self.hosts)) or 'none'}); start the server with --allow-host NAME "
                           "to serve that name", retryable=False)
            await err.response()(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host, scope.get("scheme", "http")):
            err = APIError(403, "forbidden_origin", f"cross-origin request from {origin[:100]!r} refused; start the "
                           "server with --allow-origin ORIGIN to let that web page call it", retryable=False)
            await err.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body passes the limit (not an APIError on purpose:
    nothing between the endpoint and the limit middleware may turn it into another answer)."""


class BodyLimitMiddleware:
    """ASGI middleware answering 413 for bodies over ``max_bytes``: at once when Content-Length
    says so, else as soon as the streamed body passes the limit (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | None) -> APIError:
        what = "the request body passed" if size is None else f"the request body is {size} bytes, more than"
        return APIError(413, "payload_too_large", f"{what} the limit of {self.max_bytes} bytes (the request_bytes "
                        "limit; --max-request-mb raises it); send a smaller image (or upload it once with POST "
                        "/v1/images and pass its image_id)", retryable=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                err = APIError(400, "bad_request", f"Content-Length must be a non-negative integer, got {text[:40]!r}",
                               retryable=True)
                await err.response()(scope, receive, send)
                return
            if int(text) > self.max_bytes:
                await self._too_large(int(text)).response()(scope, receive, send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large(None).response()(scope, receive, send)


async def read_body(request: Request, timeout: float, tool: str | None = None) -> bytes:
    """The request body, received within ``timeout`` seconds (408 after it; see the module doc)."""
    try:
        with anyio.fail_after(timeout):
            return await request.body()
    except TimeoutError:
        raise APIError(408, "request_timeout", f"the request body did not arrive within {timeout:g} s (the "
                       "body_read_seconds limit; --body-timeout raises it)", retryable=True, tool=tool,
                       headers={"Connection": "close"}) from None
    except ClientDisconnect:
        raise ClientGone() from None


__all__ = ["HostOriginGuard", "BodyLimitMiddleware", "ClientGone", "read_body", "default_hosts", "LOOPBACK_HOSTS"]
