"""Image inputs: paths under allowed roots, data URIs, base64, image ids, URLs (fake network), limits."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
from PIL import Image

from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.inputs import ImageInputConfig, ImageResolver, non_public_reason
from gar_tool.tools.store import SessionStore, compute_image_id
from tools_support import b64, png_bytes, rgb, write_png

ARR = rgb(12, 16, 1)
PNG = png_bytes(ARR)
PUBLIC = "93.184.216.34"


@pytest.fixture()
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    write_png(r / "a.png", ARR)
    write_png(tmp_path / "outside.png", rgb(5, 5, 2))
    return r


def resolver_for(root, **kw) -> ImageResolver:
    return ImageResolver(SessionStore(), ImageInputConfig(allowed_roots=[root], **kw))


def test_paths_under_the_root(root):
    res = resolver_for(root)
    a = res.resolve(str(root / "a.png"))
    assert a.image.size == (16, 12) and a.size == (12, 16)
    assert a.image_id == compute_image_id(Image.fromarray(ARR))
    assert res.resolve("a.png").image_id == a.image_id  # relative to the first root
    sub = root / "sub"
    sub.mkdir()
    assert res.resolve(str(sub / ".." / "a.png")).image_id == a.image_id  # .. staying inside is fine


@pytest.mark.parametrize("ref", ["../outside.png", "{tmp}/outside.png", "{root}/../outside.png", "/etc/passwd",
                                 "link.png", "linkdir/outside.png"])
def test_paths_leaving_the_root_are_refused(root, ref):
    os.symlink(root.parent / "outside.png", root / "link.png")
    os.symlink(root.parent, root / "linkdir")
    res = resolver_for(root)
    with pytest.raises(ToolInputError, match="resolves outside the allowed directories"):
        res.resolve(ref.format(tmp=root.parent, root=root))


def test_default_root_is_the_working_directory(root, monkeypatch):
    monkeypatch.chdir(root)
    res = ImageResolver(SessionStore())
    assert res.resolve("a.png").size == (12, 16)
    with pytest.raises(ToolInputError, match="outside the allowed directories"):
        res.resolve("../outside.png")


def test_missing_file_and_disabled_paths(root):
    with pytest.raises(ToolInputError, match="image file not found: 'nope.png'"):
        resolver_for(root).resolve("nope.png")
    with pytest.raises(ToolInputError, match="image paths are disabled"):
        ImageResolver(SessionStore(), ImageInputConfig(allowed_roots=[])).resolve(str(root / "a.png"))


def test_data_uri_base64_and_image_id(root):
    res = resolver_for(root)
    want = compute_image_id(Image.fromarray(ARR))
    assert res.resolve("data:image/png;base64," + b64(PNG)).image_id == want
    assert res.resolve(b64(PNG)).image_id == want
    urlsafe = b64(PNG).replace("+", "-").replace("/", "_").rstrip("=")
    assert res.resolve(urlsafe).image_id == want
    wrapped = "\n".join(b64(PNG)[i:i + 76] for i in range(0, len(b64(PNG)), 76))
    assert res.resolve(wrapped).image_id == want
    assert res.resolve(want).image.size == (16, 12)
    assert res.resolve("  " + want + " ").image_id == want


@pytest.mark.parametrize("ref, message", [
    ("data:image/png,rawdata", "must be base64-encoded"),
    ("data:text/plain;base64,aGVsbG8=", "media type 'text/plain'"),
    ("data:image/png;base64", "no ','"),
    ("data:image/png;base64,****", "not valid base64"),
    ("data:image/png;base64," + b64(b"not an image at all"), "not a readable image"),
    ("A" * 300, "not a readable image"),
    ("img_0123456789ab", "unknown in this session"),
    ("ftp://example.com/a.png", "unsupported image reference scheme"),
    ("", "non-empty string"),
])
def test_bad_image_strings(root, ref, message):
    with pytest.raises(ToolInputError, match=message):
        resolver_for(root).resolve(ref)


def test_pixel_and_byte_limits(root):
    with pytest.raises(ToolInputError, match=r"has 16x12 = 192 pixels, more than the limit of 100"):
        resolver_for(root, max_pixels=100).resolve("a.png")
    small = len(PNG) - 1
    for ref in ("a.png", b64(PNG), "data:image/png;base64," + b64(PNG)):
        with pytest.raises(ToolInputError, match=f"more than the limit of {small}"):
            resolver_for(root, max_bytes=small).resolve(ref)


def test_exif_orientation_applies_to_image_and_id(root):
    rotated = resolver_for(root).resolve(b64(png_bytes(ARR, exif_orientation=6)))
    assert rotated.size == (16, 12)  # displayed: 90 degrees clockwise
    upright = np.ascontiguousarray(np.rot90(ARR, k=-1))
    assert rotated.image_id == compute_image_id(Image.fromarray(upright))
    assert np.array_equal(np.asarray(rotated.image), upright)


# ------------------------------------------------------------------------------------ URLs
class FakeNet:
    """Resolver + MockTransport: ``hosts`` maps names to addresses, ``routes`` maps paths to responses."""

    def __init__(self, hosts: dict[str, list[str]], routes: dict[str, httpx.Response | Exception]) -> None:
        self.hosts, self.routes = hosts, routes
        self.requests: list[httpx.Request] = []
        self.lookups: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.hosts[host]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        out = self.routes[request.url.path]
        if isinstance(out, Exception):
            raise out
        return out

    def config(self, **kw) -> ImageInputConfig:
        return ImageInputConfig(allowed_roots=[], allow_urls=True, resolver=self.resolve,
                                transport=httpx.MockTransport(self.handle), **kw)


def test_urls_are_refused_by_default(root):
    with pytest.raises(ToolInputError, match="image URLs are disabled"):
        resolver_for(root).resolve("https://example.com/a.png")


def test_public_url_is_fetched_from_the_checked_address():
    net = FakeNet({"images.example": [PUBLIC]}, {"/a.png": httpx.Response(200, content=PNG)})
    got = ImageResolver(SessionStore(), net.config()).resolve("https://images.example/a.png")
    assert got.image_id == compute_image_id(Image.fromarray(ARR))
    (req,) = net.requests
    assert req.url.host == PUBLIC and req.headers["host"] == "images.example"
    assert req.extensions["sni_hostname"] == "images.example"


@pytest.mark.parametrize("addresses, kind", [
    (["127.0.0.1"], "loopback"), (["10.1.2.3"], "private"), (["192.168.0.7"], "private"),
    (["169.254.169.254"], "link-local"), (["::1"], "loopback"), (["::ffff:127.0.0.1"], "loopback"),
    (["fe80::1"], "link-local"), (["224.0.0.1"], "multicast"), (["0.0.0.0"], "unspecified"),
    (["100.64.0.1"], "non-global"), ([PUBLIC, "10.0.0.1"], "private"),
])
def test_non_public_addresses_are_refused(addresses, kind):
    net = FakeNet({"evil.example": addresses}, {"/a.png": httpx.Response(200, content=PNG)})
    with pytest.raises(ToolInputError, match=f"resolves to .*, a {kind} address"):
        ImageResolver(SessionStore(), net.config()).resolve("http://evil.example/a.png")
    assert net.requests == []


def test_ip_literals_are_checked_without_resolving():
    net = FakeNet({}, {"/a.png": httpx.Response(200, content=PNG)})
    res = ImageResolver(SessionStore(), net.config())
    for url in ("http://127.0.0.1:8080/a.png", "http://[::1]/a.png"):
        with pytest.raises(ToolInputError, match="loopback address"):
            res.resolve(url)
    assert net.lookups == [] and net.requests == []
    assert res.resolve(f"http://{PUBLIC}/a.png").size == (12, 16)


def test_redirects_are_checked_hop_by_hop():
    net = FakeNet({"a.example": [PUBLIC], "b.example": [PUBLIC], "inner.example": ["10.0.0.5"]}, {
        "/good": httpx.Response(302, headers={"location": "http://b.example/a.png"}),
        "/bad": httpx.Response(302, headers={"location": "http://inner.example/a.png"}),
        "/loop": httpx.Response(302, headers={"location": "/loop"}),
        "/a.png": httpx.Response(200, content=PNG)})
    res = ImageResolver(SessionStore(), net.config(max_redirects=2))
    assert res.resolve("http://a.example/good").size == (12, 16)
    assert net.requests[-1].headers["host"] == "b.example"
    with pytest.raises(ToolInputError, match="private address"):
        res.resolve("http://a.example/bad")
    with pytest.raises(ToolInputError, match="more than 2 redirects"):
        res.resolve("http://a.example/loop")


@pytest.mark.parametrize("route, message", [
    (httpx.Response(404), "HTTP 404"),
    (httpx.Response(200, content=PNG, headers={"content-length": "999999"}), "999999 bytes, more than the limit"),
    (httpx.Response(200, content=iter([PNG, PNG, PNG])), "is more than the limit of"),  # streamed, no length
    (httpx.ReadTimeout("slow"), "timed out after 0.5 s"),
    (httpx.ConnectError("refused"), "ConnectError"),
])
def test_url_failures(route, message):
    net = FakeNet({"x.example": [PUBLIC]}, {"/a.png": route})
    with pytest.raises(ToolInputError, match=message):
        ImageResolver(SessionStore(), net.config(max_bytes=2 * len(PNG), url_timeout=0.5)).resolve(
            "http://x.example/a.png")


@pytest.mark.parametrize("address, reason", [("8.8.8.8", None), ("2001:4860:4860::8888", None),
                                             ("172.16.0.1", "private"), ("not-an-ip", "malformed")])
def test_non_public_reason(address, reason):
    assert non_public_reason(address) == reason


def test_config_validation():
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        ImageInputConfig(max_pixels=0)
    with pytest.raises(ValueError, match="url_timeout"):
        ImageInputConfig(url_timeout=0)
