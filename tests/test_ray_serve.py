"""The Ray Serve application on a local Ray (2 CPUs) with tiny checkpoints: the same answers and
errors as ``gar serve`` for the same requests, ids valid across two front replicas, GAR calls
batched, several checkpoints multiplexed and chosen per request."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from gar_tool import GAR
from gar_tool.gar.engine import CacheConfig
from gar_tool.integrations.http.server import create_app
from gar_tool.tools import GARToolkit, ImageInputConfig
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from ray_support import free_port, ray_session
from server_support import bench_item
from tools_support import b64, png_bytes, rgb

# A Ray cluster and six Serve replicas start (about 45 s on 2 busy cores): CI and --run-slow run it.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TOKENS = 3


@pytest.fixture(scope="module")
def second_ckpt(tmp_path_factory):
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    return build_gar_checkpoint(tmp_path_factory.mktemp("tiny-gar-b"), tile_size=224, max_num_tiles=4,
                                weight_scale=2.0, seed=11)


@pytest.fixture(scope="module")
def served(tiny_ckpt, second_ckpt, tiny_dino_dir):
    """``(base URL, config)`` of the application running on a local Ray."""
    from ray import serve

    from gar_tool.integrations.ray.serve_app import build_app

    path, _ = bench_item()
    cfg = {"models": {"a": str(tiny_ckpt), "b": str(second_ckpt)}, "detector": str(tiny_dino_dir),
           "device": "cpu", "dtype": "float32", "max_new_tokens": TOKENS, "allow_dirs": [str(path.parent)],
           "max_batch": 8, "batch_wait_ms": 200}
    small = {"ray_actor_options": {"num_cpus": 0.25}}
    overrides = {"GARModels": small, "Grounding": small, "SessionStore": {"ray_actor_options": {"num_cpus": 0}},
                 "Front": {**small, "num_replicas": 2}}
    with ray_session():
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(cfg, overrides), name="gar", route_prefix="/")
        try:
            yield f"http://127.0.0.1:{port}", cfg
        finally:
            serve.shutdown()


@pytest.fixture(scope="module")
def reference(tiny_gar, tiny_dino_dir):
    """``gar serve``'s app over the same tiny models, in process."""
    from gar_tool.grounding import GroundingDetector

    path, _ = bench_item()
    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), segmenter=None, device="cpu")
    kit = GARToolkit(GAR(tiny_gar.model, tiny_gar.processor), det, False,
                     inputs=ImageInputConfig(allowed_roots=[path.parent]), max_new_tokens=TOKENS)
    return create_app(kit)


def script() -> list[tuple[str, str, dict]]:
    """The same requests for both servers: tools, chained ids, uploads and every kind of error."""
    path, rles = bench_item()
    small = b64(png_bytes(rgb(60, 80, 3)))
    return [
        ("POST", "/v1/describe", {"json": {"image": str(path), "region": {"rle": rles[0]}}}),
        ("POST", "/v1/describe", {"json": {"image": "$image_id", "region": "r1"}}),
        ("POST", "/v1/relate", {"json": {"image": "$image_id", "regions": ["r1", {"rle": rles[1]}],
                                         "question": "Is <Prompt0> next to <Prompt1>?"}}),
        ("POST", "/v1/ground", {"json": {"image": "$image_id", "phrases": "a dog. a car.", "box_threshold": 0.0,
                                         "max_regions": 3}}),
        ("POST", "/v1/measure", {"json": {"image": "$image_id", "regions": ["r1", "r2", {"box": [0, 0, 40, 30]}]}}),
        ("POST", "/v1/images", {"content": png_bytes(rgb(50, 70, 9)), "headers": {"content-type": "image/png"}}),
        ("POST", "/v1/describe", {"json": {"image": small, "region": {"box": [5, 5, 40, 30]}}}),
        # errors
        ("POST", "/v1/describe", {"json": {"image": "img_000000000000", "region": "r1"}}),
        ("POST", "/v1/describe", {"json": {"image": "$image_id", "region": "r999"}}),
        ("POST", "/v1/relate", {"json": {"image": "$image_id", "regions": ["r1", "r2"], "question": "What is <Prompt0>?"}}),
        ("POST", "/v1/describe", {"json": {"image": "$image_id", "region": {"box": [0, 0, 99999, 5]}}}),
        ("POST", "/v1/describe", {"json": {"image": "/etc/passwd", "region": {"box": [0, 0, 5, 5]}}}),
        ("POST", "/v1/describe", {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/describe", {"content": b"x=1", "headers": {"content-type": "text/plain"}}),
        ("GET", "/v1/describe", {}),
        ("GET", "/v1/nothing", {}),
    ]


def _run(send, image_id_from) -> list[tuple[int, dict]]:
    out, image_id = [], None
    for method, url, kw in script():
        if "json" in kw and image_id is not None:
            kw = {**kw, "json": {k: (image_id if v == "$image_id" else v) for k, v in kw["json"].items()}}
        r = send(method, url, **kw)
        body = r.json()
        out.append((r.status_code, body))
        if image_id is None and r.status_code == 200:
            image_id = image_id_from(body)
    return out


def test_same_answers_and_errors_as_gar_serve(served, reference):
    url, _ = served
    with httpx.Client(base_url=url, timeout=120) as c:
        got = _run(c.request, lambda b: b["output"]["image_id"])

    def send(method, u, **kw):
        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=reference), base_url="http://127.0.0.1") as c:
                return await c.request(method, u, **kw)
        return asyncio.run(go())

    want = _run(send, lambda b: b["output"]["image_id"])
    assert [s for s, _ in got] == [200] * 7 + [422, 422, 422, 422, 422, 400, 415, 405, 404]
    assert got == want  # status codes and bodies, answers and error messages alike
    assert got[3][1]["output"]["regions"] and got[2][1]["output"]["answer"] == want[2][1]["output"]["answer"]


def test_ids_are_valid_on_every_front_replica(served):
    url, _ = served
    with httpx.Client(base_url=url, timeout=120) as c:
        up = c.post("/v1/images", content=png_bytes(rgb(40, 50, 21)), headers={"content-type": "image/png"}).json()
        first = c.post("/v1/measure", json={"image": up["image_id"], "regions": [{"box": [1, 1, 20, 20]}]}).json()
        rid = first["output"]["regions"][0]["id"]
        # two front replicas, each request routed to either: every one must know the ids
        results = [c.post("/v1/measure", json={"image": up["image_id"], "regions": [rid]}) for _ in range(12)]
    assert [r.status_code for r in results] == [200] * 12
    assert {r.json()["output"]["regions"][0]["id"] for r in results} == {rid}


def test_concurrent_calls_are_batched(served, tiny_gar):
    from ray import serve

    url, _ = served
    handle = serve.get_deployment_handle("GARModels", app_name="gar")
    before = handle.stats.remote().result()
    boxes = [[2 + i, 3, 40 + i, 33] for i in range(6)]
    img = rgb(60, 80, 5)
    data = b64(png_bytes(img))
    answers: dict[int, str] = {}
    start = threading.Barrier(len(boxes))

    def call(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            start.wait()
            r = c.post("/v1/describe", json={"image": data, "region": {"box": boxes[i]}})
            answers[i] = r.json()["output"]["description"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(boxes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    plain = GAR(tiny_gar.model, tiny_gar.processor, cache=CacheConfig.disabled())
    assert [answers[i] for i in range(len(boxes))] == [plain.describe(img, {"box": b}, max_new_tokens=TOKENS).text
                                                       for b in boxes]
    after = handle.stats.remote().result()
    n = after["requests"] - before["requests"]
    assert n == len(boxes) and after["batches"] - before["batches"] < n  # some requests shared a forward


def test_models_are_multiplexed_per_request(served, second_ckpt, tiny_gar):
    url, _ = served
    img = rgb(64, 64, 8)
    body = {"image": b64(png_bytes(img)), "region": {"box": [4, 4, 50, 40]}}
    with httpx.Client(base_url=url, timeout=120) as c:
        default = c.post("/v1/describe", json=body).json()["output"]["description"]
        b = c.post("/v1/describe", json=body, headers={"X-GAR-Model": "b"}).json()["output"]["description"]
        a = c.post("/v1/describe", json=body, headers={"serve_multiplexed_model_id": "a"}).json()["output"]["description"]
        bad = c.post("/v1/describe", json=body, headers={"X-GAR-Model": "c"})
    other = GAR.from_pretrained(str(second_ckpt), device="cpu", dtype="float32")
    assert default == a == tiny_gar.describe(img, {"box": [4, 4, 50, 40]}, max_new_tokens=TOKENS).text
    assert b == other.describe(img, {"box": [4, 4, 50, 40]}, max_new_tokens=TOKENS).text and b != a
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "invalid_input"
    assert "'c' is not served here; choose one of a, b" in bad.json()["error"]["message"]


def test_health(served):
    url, _ = served
    h = httpx.get(url + "/health", timeout=60).json()
    assert h["status"] == "ok" and h["prompt_slots"] == 5 and h["models"]["gar"] == "a"
    assert set(h["tools"]) == {"gar_describe", "gar_relate", "gar_ground", "gar_measure", "gar_zoom"}
    assert h["store"]["images"] >= 1  # the shared store's statistics
