"""The HTTP server: tool endpoints with the tiny GAR / Grounding DINO, uploads, JSON errors with
their status codes (the server keeps answering), the size and concurrency limits, micro-batching,
a live uvicorn server, and the ``gar serve`` wiring."""

from __future__ import annotations

import asyncio
import base64
import io
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from gar_tool.regions.rle import rle_decode
from gar_tool.integrations.http.server import create_app
from gar_tool.tools import GARToolkit, ImageInputConfig
from gar_tool.tools.specs import input_schema
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from server_support import LiveServer, SlowGAR, bench_item, real_kit, tiny_toolkit  # noqa: F401  (fixture)
from tools_support import FakeDetector, FakeGAR, b64, png_bytes, rgb

ARR = rgb(60, 80, 3)
IMAGE = b64(png_bytes(ARR))
PNG = {"content-type": "image/png"}


def asgi(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


def run(coro):
    return asyncio.run(coro)


def fake_kit(**kw) -> GARToolkit:
    kw.setdefault("gar", FakeGAR())
    kw.setdefault("inputs", ImageInputConfig(allowed_roots=[]))
    return GARToolkit(**kw)




def png_of(b64_text: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64_text)))
    img.load()
    return img


# ------------------------------------------------------------------------------- tools, real models
def test_describe_gar_bench_image_with_mask(real_kit, tiny_gar):
    path, rles = bench_item()
    app = create_app(real_kit)

    async def go():
        async with asgi(app) as c:
            r = await c.post("/v1/describe?overlay=true", json={"image": str(path), "region": {"rle": rles[0]}})
            again = await c.post("/v1/describe", json={"image": r.json()["output"]["image_id"], "region": "r1"})
            return r, again

    r, again = run(go())
    assert r.status_code == 200, r.text
    data = r.json()
    out = data["output"]
    assert data["tool"] == "gar_describe" and out["region"]["id"] == "r1" and out["region"]["source"] == "rle"
    assert out["region"]["area"] == int(rle_decode(rles[0]).sum())
    direct = tiny_gar.describe(str(path), {"rle": rles[0]}, max_new_tokens=3)
    assert out["description"] == direct.text and out["finish_reason"] == direct.finish_reason
    assert data["content"].startswith("r1 (box [") and out["image_id"] in data["content"]
    overlay = png_of(data["overlay_png_base64"])
    assert overlay.format == "PNG" and overlay.width >= 620
    assert again.status_code == 200 and "overlay_png_base64" not in again.json()
    assert again.json()["output"]["description"] == out["description"]


def test_ground_relate_measure_chain(real_kit):
    path, rles = bench_item()
    app = create_app(real_kit)

    async def go():
        async with asgi(app) as c:
            g = await c.post("/v1/ground", json={"image": str(path), "phrases": "a dog. a cup.", "box_threshold": 0.0,
                                                 "max_regions": 2})
            ids = [x["id"] for x in g.json()["output"]["regions"]]
            img = g.json()["output"]["image_id"]
            rel = await c.post("/v1/relate", json={"image": img, "regions": [ids[0], {"rle": rles[1]}],
                                                   "question": "Is <Prompt0> near <Prompt1>?"})
            m = await c.post("/v1/measure", json={"image": img, "regions": ids})
            return g, rel, m

    g, rel, m = run(go())
    assert g.status_code == 200 and len(g.json()["output"]["regions"]) == 2
    assert rel.status_code == 200, rel.text
    assert [x["id"] for x in rel.json()["output"]["regions"]][0] == g.json()["output"]["regions"][0]["id"]
    assert m.status_code == 200 and len(m.json()["output"]["pairs"]) == 1


def test_concurrent_requests_are_micro_batched(tiny_gar):
    kit = tiny_toolkit(tiny_gar, None, batch_wait=0.5, inputs=ImageInputConfig(allowed_roots=[]))
    app = create_app(kit)
    boxes = [[5, 5, 40, 40], [30, 10, 70, 50], [0, 20, 50, 58]]

    async def go():
        async with asgi(app) as c:
            return await asyncio.gather(*(c.post("/v1/describe", json={"image": IMAGE, "region": {"box": b}})
                                          for b in boxes))

    try:
        answers = run(go())
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert kit.gar.batches_run == 1
        expected = [tiny_gar.describe(ARR, {"box": b}, max_new_tokens=3).text for b in boxes]
        assert [a.json()["output"]["description"] for a in answers] == expected
    finally:
        kit.gar.close()


# ------------------------------------------------------------------------------- status / docs
def test_health_and_openapi():
    kit = fake_kit(detector=FakeDetector({}))
    app = create_app(kit, max_request_bytes=1234, max_concurrency=3, model_names={"gar": "tiny-gar"})

    async def go():
        async with asgi(app) as c:
            return await c.get("/health"), await c.get("/openapi.json"), await c.get("/docs")

    health, spec, docs = run(go())
    h = health.json()
    assert h["status"] == "ok" and h["tools"] == ["gar_describe", "gar_relate", "gar_ground", "gar_measure", "gar_zoom"]
    assert h["models"] == {"gar": "tiny-gar", "detector": "FakeDetector", "segmenter": None}
    assert h["prompt_slots"] == 5 and h["store"]["images"] == 0 and h["batching"] is None
    assert h["limits"]["max_request_bytes"] == 1234 and h["limits"]["max_concurrency"] == 3
    paths = spec.json()["paths"]
    assert set(paths) == {"/health", "/v1/describe", "/v1/relate", "/v1/ground", "/v1/measure", "/v1/zoom", "/v1/track",
                          "/v1/images", "/v1/images/{image_id}", "/v1/segment", "/v1/planner", "/v1/ask"}
    post = paths["/v1/relate"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == input_schema("gar_relate")
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/RelateResponse")
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    schemas = spec.json()["components"]["schemas"]
    assert "RelateOutput" in schemas["RelateResponse"]["properties"]["output"]["$ref"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# ------------------------------------------------------------------------------- errors
BAD = [  # (method, path, kwargs, status, error type)
    ("POST", "/v1/describe", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
     "bad_request"),
    ("POST", "/v1/describe", {"json": [1, 2]}, 400, "bad_request"),
    ("POST", "/v1/describe", {"json": {"image": IMAGE}}, 422, "invalid_input"),
    ("POST", "/v1/describe", {"json": {"image": IMAGE, "region": {"box": [1, 2, 3]}}}, 422, "invalid_input"),
    ("POST", "/v1/describe", {"json": {"image": IMAGE, "region": {"box": [0, 0, 999, 5]}}}, 422, "invalid_input"),
    ("POST", "/v1/describe", {"json": {"image": IMAGE, "region": "r99"}}, 422, "invalid_input"),
    ("POST", "/v1/describe", {"json": {"image": "img_0123456789ab", "region": "r1"}}, 422, "invalid_input"),
    ("POST", "/v1/describe", {"json": {"image": "/etc/passwd", "region": "r1"}}, 422, "invalid_input"),
    ("POST", "/v1/relate", {"json": {"image": IMAGE, "regions": [{"box": [1, 1, 9, 9]}], "question": "<Prompt3>?"}},
     422, "invalid_input"),
    ("POST", "/v1/describe", {"content": b"a=1", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("POST", "/v1/describe?overlay=perhaps", {"json": {}}, 422, "invalid_input"),
    ("GET", "/v1/describe", {}, 405, "method_not_allowed"),
    ("GET", "/v2/nothing", {}, 404, "not_found"),
    ("POST", "/v1/ground", {"json": {"image": IMAGE, "phrases": "a dog"}}, 501, "tool_unavailable"),
]


@pytest.mark.parametrize("method,path,kwargs,status,kind", BAD, ids=[f"{b[3]}-{i}" for i, b in enumerate(BAD)])
def test_bad_requests_get_json_errors_and_the_server_goes_on(method, path, kwargs, status, kind):
    app = create_app(fake_kit())

    async def go():
        async with asgi(app) as c:
            bad = await c.request(method, path, **kwargs)
            good = await c.post("/v1/describe", json={"image": IMAGE, "region": {"box": [1, 2, 30, 40]}})
            return bad, good

    bad, good = run(go())
    assert bad.status_code == status, bad.text
    err = bad.json()["error"]
    assert err["type"] == kind and err["message"] and "Traceback" not in bad.text
    assert err["retryable"] is (kind not in ("not_found", "method_not_allowed", "tool_unavailable"))
    assert good.status_code == 200 and good.json()["output"]["region"]["area"] == 29 * 38


def test_validation_message_names_the_argument():
    app = create_app(fake_kit())

    async def go():
        async with asgi(app) as c:
            return await c.post("/v1/describe", json={"image": IMAGE, "region": {"box": [1, 2, 3]}, "extra": 1})

    err = run(go()).json()["error"]
    assert err["tool"] == "gar_describe"
    assert "region.box" in err["message"] and "extra" in err["message"]


def test_tool_failure_is_a_500_json_error():
    app = create_app(fake_kit(gar=FakeGAR(fail=RuntimeError("CUDA exploded"))))

    async def go():
        async with asgi(app) as c:
            bad = await c.post("/v1/describe", json={"image": IMAGE, "region": {"box": [1, 2, 30, 40]}})
            good = await c.post("/v1/measure", json={"image": IMAGE, "regions": [{"box": [1, 2, 30, 40]}]})
            return bad, good

    bad, good = run(go())
    assert bad.status_code == 500 and "Traceback" not in bad.text
    assert bad.json()["error"] == {"type": "tool_failure", "retryable": False, "tool": "gar_describe",
                                   "message": bad.json()["error"]["message"]}
    assert "CUDA exploded" in bad.json()["error"]["message"]
    assert good.status_code == 200


def test_request_over_the_size_limit_is_413():
    app = create_app(fake_kit(), max_request_bytes=4000)
    big = {"image": b64(png_bytes(rgb(60, 80, 9))), "region": {"box": [1, 2, 30, 40]}}

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    async def go():
        async with asgi(app) as c:
            declared = await c.post("/v1/describe", json=big)
            streamed = await c.post("/v1/describe", content=chunks(), headers={"content-type": "application/json"})
            upload = await c.post("/v1/images", content=png_bytes(rgb(60, 80, 9)), headers=PNG)
            ok = await c.post("/v1/images", content=png_bytes(rgb(8, 8, 1)), headers=PNG)
            return declared, streamed, upload, ok

    declared, streamed, upload, ok = run(go())
    for r in (declared, streamed, upload):
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"
        assert "4000" in r.json()["error"]["message"]
    assert ok.status_code == 200


def test_429_at_once_when_every_slot_is_taken():
    slow = SlowGAR()
    app = create_app(fake_kit(gar=slow), max_concurrency=1, retry_after=7)
    body = {"image": IMAGE, "region": {"box": [1, 2, 30, 40]}}

    async def go():
        async with asgi(app) as c:
            first = asyncio.create_task(c.post("/v1/describe", json=body))
            while not slow.entered.is_set():
                await asyncio.sleep(0.01)
            other = {"image": IMAGE, "regions": [{"box": [0, 0, 5, 5]}]}
            busy = await asyncio.wait_for(c.post("/v1/measure", json=other), timeout=5)
            health = await c.get("/health")
            slow.release.set()
            done = await asyncio.wait_for(first, timeout=30)
            after = await c.post("/v1/describe", json=body)
            return busy, health, done, after

    busy, health, done, after = run(go())
    assert busy.status_code == 429 and busy.headers["retry-after"] == "7"
    assert busy.json()["error"]["type"] == "busy" and busy.json()["error"]["retryable"] is True
    assert health.json()["limits"]["in_flight"] == 1
    assert done.status_code == 200 and after.status_code == 200


# ------------------------------------------------------------------------------- uploads
def test_upload_then_use_the_image_id():
    kit = fake_kit()
    app = create_app(kit)
    arrs = [rgb(30, 40, 11), rgb(31, 40, 12), rgb(32, 40, 13)]

    async def go():
        async with asgi(app) as c:
            multipart = await c.post("/v1/images", files={"file": ("a.png", png_bytes(arrs[0]), "image/png")})
            raw = await c.post("/v1/images", content=png_bytes(arrs[1]), headers=PNG)
            as_json = await c.post("/v1/images", json={"image": "data:image/png;base64," + b64(png_bytes(arrs[2]))})
            use = await c.post("/v1/describe", json={"image": raw.json()["image_id"], "region": {"box": [1, 1, 9, 9]}})
            bad = await c.post("/v1/images", content=b"definitely not an image", headers=PNG)
            empty = await c.post("/v1/images", content=b"", headers=PNG)
            no_file = await c.post("/v1/images", data={"field": "value"}, files={"other": ("x", b"")})
            return multipart, raw, as_json, use, bad, empty, no_file

    multipart, raw, as_json, use, bad, empty, no_file = run(go())
    for r, a in zip((multipart, raw, as_json), arrs, strict=True):
        assert r.status_code == 200 and r.json()["width"] == 40 and r.json()["height"] == a.shape[0]
        assert r.json()["image_id"] in kit.store.image_ids()
    assert use.status_code == 200 and use.json()["output"]["image_id"] == raw.json()["image_id"]
    assert bad.status_code == 422 and "not a readable image" in bad.json()["error"]["message"]
    assert empty.status_code == 422 and no_file.status_code == 422


# ------------------------------------------------------------------------------- live server
def test_live_uvicorn_server(real_kit):
    path, rles = bench_item()
    with LiveServer(create_app(real_kit, max_request_bytes=1 << 20)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/health").json()["tools"] == ["gar_describe", "gar_relate", "gar_ground", "gar_measure", "gar_zoom"]
        bad = c.post("/v1/describe", json={"image": str(path), "region": {"rle": {"size": [1, 1], "counts": "x"}}})
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "invalid_input"
        up = c.post("/v1/images", files={"file": ("vqa.png", path.read_bytes(), "image/png")})
        assert up.status_code == 200 and (up.json()["width"], up.json()["height"]) == (620, 460)
        good = c.post("/v1/describe", json={"image": up.json()["image_id"], "region": {"rle": rles[0]}})
        assert good.status_code == 200 and good.json()["output"]["image_id"] == up.json()["image_id"]
        too_big = c.post("/v1/describe", content=b"x" * (3 << 19), headers={"content-type": "application/json"})
        assert too_big.status_code == 413
        assert c.get("/health").status_code == 200


# ------------------------------------------------------------------------------- CLI
def test_gar_serve_loads_once_and_wires_the_app(monkeypatch, tiny_ckpt, tiny_dino_dir, tmp_path):  # noqa: F811
    import gar_tool.integrations.http.server as http
    from gar_tool.cli import main

    seen = {}

    def fake_serve(app, host, port, log_level):
        seen.update(app=app, host=host, port=port)

    monkeypatch.setattr(http, "serve", fake_serve)
    code = main(["serve", "--model", str(tiny_ckpt), "--detector", str(tiny_dino_dir), "--port", "8123",
                 "--allow-dir", str(tmp_path), "--max-batch", "4", "--batch-wait-ms", "5", "--max-concurrency", "3",
                 "--max-request-mb", "1", "--max-new-tokens", "2", "--log-level", "error"])
    assert code == 0 and seen["port"] == 8123 and seen["host"] == "127.0.0.1"

    async def go():
        async with asgi(seen["app"]) as c:
            return (await c.get("/health")).json()

    h = run(go())
    assert h["models"] == {"gar": str(tiny_ckpt), "detector": str(tiny_dino_dir), "segmenter": None}
    assert h["limits"]["max_request_bytes"] == 1 << 20 and h["limits"]["max_concurrency"] == 3
    assert h["batching"]["max_batch"] == 4 and h["batching"]["max_wait_s"] == 0.005


def test_gar_serve_bad_allow_dir_fails_before_loading(tmp_path, capsys):
    from gar_tool.cli import main

    assert main(["serve", "--allow-dir", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_cli_help_imports_no_server_framework():
    code = ("import sys; from gar_tool.cli import build_parser; build_parser(); import gar_tool.integrations.serving; "
            "print([m for m in ('fastapi', 'uvicorn', 'mcp', 'starlette', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
