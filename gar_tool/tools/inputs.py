"""Image inputs of the tools: one string → a stored RGB image and its ``image_id``.

A string is read as, in this order:

1. an ``image_id`` (``img_`` + 12 hex digits) → the session store;
2. a ``data:`` URI (``data:image/png;base64,...``; base64 only);
3. an ``http://`` / ``https://`` URL → fetched only when ``allow_urls`` is on (off by default);
4. raw base64 of an image file: only base64 characters and either at least 256 characters long
   or decoding to a known image signature;
5. otherwise a filesystem path. Relative paths are joined to the first allowed root. The path is
   resolved (symlinks and ``..``) *before* it is checked against ``allowed_roots`` (default: the
   current working directory), so a link or ``..`` cannot leave them.

Limits: encoded size ``max_bytes`` (file size, decoded base64, downloaded body), decoded pixel count
``max_pixels`` (checked from the header before decoding). EXIF orientation is applied
(:func:`gar_tool.media.images.decode_bytes`), so the image, its ``image_id`` and every pixel coordinate
refer to the image as displayed.

URL safety (when enabled): only http / https; the host is resolved (``resolver``, default
``socket.getaddrinfo``) and *every* address must be global unicast — private, loopback,
link-local, multicast, reserved and unspecified addresses (IPv4-mapped IPv6 included) are refused.
The connection then goes to the checked address (the hostname is kept for the Host header and TLS
SNI / certificate check), so DNS cannot rebind between check and use. Redirects are followed by
hand (at most ``max_redirects``), each hop checked the same way; proxies from the environment are
ignored; the body is streamed and cut at ``max_bytes``; ``url_timeout`` bounds each network step.
Tests pass ``transport`` (e.g. ``httpx.MockTransport``) and ``resolver`` instead of the network.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gar_tool.errors import InputError
from gar_tool.limits import limit
from gar_tool.media.images import decode_bytes
from gar_tool.tools.errors import ToolFailure, ToolInputError
from gar_tool.tools.schemas import IMAGE_ID_RE
from gar_tool.tools.store import SessionStore, StoredImage

#: ``resolver(host, port) -> addresses`` (IP address strings).
Resolver = Callable[[str, int], Sequence[str]]

_B64_RE = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
_SCHEMES = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def default_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (``socket.getaddrinfo``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolInputError(f"cannot resolve host {host!r} ({exc.strerror or exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class ImageInputConfig:
    """Where images may come from and how big they may be.

    Attributes:
        allowed_roots: directories image paths must resolve into (``None`` = the current working
            directory when the config is created). An empty list refuses every path.
        allow_urls: fetch http(s) URLs (off by default; see the module docstring for the checks).
        max_bytes: most bytes of an encoded image (file, base64 payload, download).
        max_pixels: most pixels (``W*H``) of a decoded image.
        url_timeout: seconds for each network step (connect, read, ...).
        max_redirects: redirects followed per URL.
        resolver: ``(host, port) -> [ip, ...]``; default :func:`default_resolver`.
        transport: an ``httpx.BaseTransport`` for URL fetches (tests: ``httpx.MockTransport``).
    """

    allowed_roots: Sequence[str | os.PathLike] | None = None
    allow_urls: bool = False
    max_bytes: int = limit("image_bytes")
    max_pixels: int = limit("image_pixels")
    url_timeout: float = 10.0
    max_redirects: int = 3
    resolver: Resolver | None = None
    transport: Any = None
    roots: tuple[Path, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        roots = [Path.cwd()] if self.allowed_roots is None else [Path(r) for r in self.allowed_roots]
        object.__setattr__(self, "roots", tuple(r.expanduser().resolve() for r in roots))
        for name in ("max_bytes", "max_pixels", "max_redirects"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_redirects" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.url_timeout > 0:
            raise ValueError(f"url_timeout must be > 0 seconds, got {self.url_timeout!r}")


class ImageResolver:
    """Turns image strings into stored images (see the module docstring for the rules)."""

    def __init__(self, store: SessionStore, config: ImageInputConfig | None = None) -> None:
        self.store = store
        self.config = config or ImageInputConfig()

    def resolve(self, ref: str) -> StoredImage:
        """The stored image for ``ref``; raises :class:`ToolInputError` naming what was wrong."""
        if not isinstance(ref, str) or not ref.strip():
            raise ToolInputError("image must be a non-empty string: an image_id, a file path, a data: URI, "
                                 "base64 or (when enabled) an http(s) URL")
        text = ref.strip()
        if IMAGE_ID_RE.match(text):
            return self.store.get_image(text)
        if text[:5].lower() == "data:":
            return self._store(self._decode_data_uri(text), "data: URI")
        lowered = text[:8].lower()
        if lowered.startswith(("http://", "https://")):
            if not self.config.allow_urls:
                raise ToolInputError("image URLs are disabled on this tool; pass an image_id, a file path, a "
                                     "data: URI or base64 instead")
            return self._store(self._fetch(text), "URL")
        if _SCHEMES.match(text):
            raise ToolInputError(f"unsupported image reference scheme in {text[:40]!r}; pass an image_id, a "
                                 "file path, a data: URI, base64 or an http(s) URL")
        payload = self._maybe_base64(text)
        if payload is not None:
            return self._store(payload, "base64 image")
        return self._store(self._read_path(text), f"image file {text!r}")

    def store_bytes(self, data: bytes, what: str = "uploaded image") -> StoredImage:
        """Decode encoded image bytes (an upload) under the same byte / pixel limits as tool
        inputs and put the image in the session store."""
        return self._store(data, what)

    # ------------------------------------------------------------------ decoding
    def _store(self, data: bytes, what: str) -> StoredImage:
        cfg = self.config
        try:  # byte and header-pixel limits are checked before any pixel is decoded
            image = decode_bytes(data, what, max_pixels=cfg.max_pixels, max_bytes=cfg.max_bytes)
        except InputError as exc:
            raise ToolInputError(str(exc)) from None
        return self.store.put_image(image)

    def _decode_data_uri(self, text: str) -> bytes:
        header, sep, body = text.partition(",")
        if not sep:
            raise ToolInputError("data: URI has no ',' separating the header from the data")
        params = header[5:].split(";")
        if "base64" not in (p.strip().lower() for p in params[1:]):
            raise ToolInputError("data: URI must be base64-encoded ('data:image/png;base64,...')")
        mime = params[0].strip().lower()
        if mime and not mime.startswith("image/"):
            raise ToolInputError(f"data: URI has media type {mime!r}, expected image/...")
        return self._b64decode(body, "data: URI")

    def _b64decode(self, body: str, what: str) -> bytes:
        compact = "".join(body.split())
        if len(compact) * 3 // 4 > self.config.max_bytes + 3:
            raise ToolInputError(f"{what} holds about {len(compact) * 3 // 4} bytes, more than the limit of "
                                 f"{self.config.max_bytes}")
        compact = compact.replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
        compact += "=" * (-len(compact) % 4)
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ToolInputError(f"{what} is not valid base64 ({exc})") from None

    def _maybe_base64(self, text: str) -> bytes | None:
        if len(text) < 16 or not _B64_RE.match(text):
            return None
        if len(text) >= 256:
            return self._b64decode(text, "base64 image")
        try:
            data = self._b64decode(text, "base64 image")
        except ToolInputError:
            return None
        return data if data.startswith(_SIGNATURES) else None

    # ------------------------------------------------------------------ paths
    def _read_path(self, text: str) -> bytes:
        roots = self.config.roots
        if not roots:
            raise ToolInputError("image paths are disabled on this tool; pass an image_id, a data: URI or base64")
        raw = Path(text)
        if "\x00" in text:
            raise ToolInputError("image path contains a NUL character")
        path = (raw if raw.is_absolute() else roots[0] / raw).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            listed = ", ".join(str(r) for r in roots)
            raise ToolInputError(f"image path {text!r} resolves outside the allowed directories ({listed}); "
                                 "pass a file under them, a data: URI or base64")
        if not path.is_file():
            raise ToolInputError(f"image file not found: {text!r}")
        size = path.stat().st_size
        if size > self.config.max_bytes:
            raise ToolInputError(f"image file {text!r} is {size} bytes, more than the limit of "
                                 f"{self.config.max_bytes}")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ToolInputError(f"cannot read image file {text!r} ({exc.strerror or exc})") from None

    # ------------------------------------------------------------------ URLs
    def _fetch(self, url: str) -> bytes:
        import httpx

        cfg = self.config
        timeout = httpx.Timeout(cfg.url_timeout)
        with httpx.Client(transport=cfg.transport, timeout=timeout, follow_redirects=False,
                          trust_env=False) as client:
            current = url
            for _ in range(cfg.max_redirects + 1):
                request = self._pinned_request(client, current)
                try:
                    response = client.send(request, stream=True)
                    try:
                        if response.is_redirect and "location" in response.headers:
                            current = str(httpx.URL(current).join(response.headers["location"]))
                            continue
                        if response.status_code != 200:
                            raise ToolInputError(f"fetching {url!r} failed: HTTP {response.status_code}")
                        return self._read_body(response, url)
                    finally:
                        response.close()
                except httpx.TimeoutException:
                    raise ToolInputError(f"fetching {url!r} timed out after {cfg.url_timeout} s") from None
                except httpx.HTTPError as exc:
                    raise ToolInputError(f"fetching {url!r} failed ({type(exc).__name__}: {exc})") from None
            raise ToolInputError(f"fetching {url!r}: more than {cfg.max_redirects} redirects")

    def _read_body(self, response: Any, url: str) -> bytes:
        limit = self.config.max_bytes
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ToolInputError(f"{url!r} is {declared} bytes, more than the limit of {limit}")
        chunks, total = [], 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > limit:
                raise ToolInputError(f"{url!r} is more than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _pinned_request(self, client: Any, url: str) -> Any:
        """A request to the checked IP address of ``url``'s host (Host header and SNI kept)."""
        import httpx

        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ToolInputError(f"invalid URL {url!r} ({exc})") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ToolInputError(f"only http(s) URLs with a host are fetched, got {url!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = self._check_host(parsed.host, port)
        host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        if ":" in parsed.host:  # an IPv6 literal goes back in brackets
            host_header = f"[{parsed.host}]" + ("" if parsed.port is None else f":{parsed.port}")
        target = parsed.copy_with(host=addresses[0])
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        return client.build_request("GET", target, headers={"Host": host_header}, extensions=extensions)

    def _check_host(self, host: str, port: int) -> list[str]:
        try:
            addresses = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            resolver = self.config.resolver or default_resolver
            try:
                addresses = [str(a) for a in resolver(host, port)]
            except ToolInputError:
                raise
            except Exception as exc:  # a custom resolver's own failure
                raise ToolFailure(f"resolving {host!r} failed ({type(exc).__name__}: {exc})") from exc
        if not addresses:
            raise ToolInputError(f"host {host!r} resolves to no address")
        for a in addresses:
            reason = non_public_reason(a)
            if reason is not None:
                raise ToolInputError(f"refusing to fetch from {host!r}: it resolves to {a}, a {reason} "
                                     "address; only public internet addresses are fetched")
        return addresses


def non_public_reason(address: str) -> str | None:
    """``None`` for a global unicast IP; else why not (``"private"``, ``"loopback"``, ...)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return "malformed"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # most specific first: link-local, loopback, ... ranges are also "private" to ipaddress
    for attr in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{attr}"):
            return attr.replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


__all__ = ["ImageInputConfig", "ImageResolver", "Resolver", "default_resolver", "non_public_reason"]
