"""The web page's HTTP side: the page and its files (served from here only), the stored image as
PNG, ``/v1/segment`` (fake and tiny real SAM), and ``/v1/ask``: server-sent events, the JSON form,
errors before and during a run, the concurrency slot, a client that goes away, and the
``gar serve --planner`` wiring."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from gar_tool.errors import GARError
from gar_tool.regions.region import Region
from gar_tool.regions.rle import rle_decode
from gar_tool.integrations.http.ask import event_json
from gar_tool.integrations.http.server import create_app
from gar_tool.integrations.http.web import PAGE_CSP, STATIC_DIR
from gar_tool.tools import GARToolkit, ImageInputConfig
from grounding_fixtures import tiny_sam_dir  # noqa: F401  (session fixture)
from server_support import LiveServer
from tools_support import FakeDetector, FakeGAR, FakeSegmenter, b64, png_bytes, rgb
from web_support import ScriptedEventsPlanner, planner_entry_point, sse_events

ARR = rgb(60, 80, 5)
IMAGE = b64(png_bytes(ARR))
SSE = {"accept": "text/event-stream"}


def asgi(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


def run(coro):
    return asyncio.run(coro)


def kit(**kw) -> GARToolkit:
    kw.setdefault("gar", FakeGAR())
    kw.setdefault("inputs", ImageInputConfig(allowed_roots=[]))
    return GARToolkit(**kw)


def calls(app, *requests):
    """Run ``(method, path, kwargs)`` requests in order on one client; their responses."""
    async def go():
        async with asgi(app) as c:
            return [await c.request(m, p, **kw) for m, p, kw in requests]
    return run(go())


def image_id(app) -> str:
    (r,) = calls(app, ("POST", "/v1/images", {"json": {"image": IMAGE}}))
    return r.json()["image_id"]


def events(*, answer: str = "r1 is a cup.", cited=("r1",)) -> list[dict]:
    return [
        {"type": "tool_call", "step": 1, "turn": 1, "call_id": "c1", "tool": "gar_ground",
         "args": {"image": "img", "phrases": ["a cup"]}},
        {"type": "tool_result", "step": 1, "turn": 1, "call_id": "c1", "tool": "gar_ground", "ok": True,
         "content": "Found 1 region(s)", "output": {"regions": []}, "image": None},
        {"type": "answer", "result": {"answer": answer, "cited": list(cited), "stopped": "answer", "steps": []}},
    ]


# ------------------------------------------------------------------------------- the page
def test_page_loads_only_files_of_this_server():
    app = create_app(kit())
    (page,) = calls(app, ("GET", "/", {}))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP and "default-src 'self'" in PAGE_CSP
    html = page.text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    for name in sorted(STATIC_DIR.glob("*.js")):
        refs += [f"/static/{m}" for m in re.findall(r'from "\./([\w.-]+\.js)"', name.read_text())]
    refs += re.findall(r"url\(([^)]+)\)", (STATIC_DIR / "style.css").read_text())
    local = [r for r in refs if r != "/docs"]
    assert {"/static/app.js", "/static/style.css", "/static/favicon.svg", "/static/api.js", "/static/rle.js",
            "/static/view.js", "/static/steps.js", "/static/ui.js"} <= set(local)
    assert all(r.startswith("/static/") for r in local), local  # nothing from a CDN or another host
    served = calls(app, *[("GET", r, {}) for r in sorted(set(local))])
    assert [r.status_code for r in served] == [200] * len(served)
    kinds = {r.url.path: r.headers["content-type"] for r in served}
    assert kinds["/static/app.js"].startswith(("text/javascript", "application/javascript"))
    assert kinds["/static/style.css"].startswith("text/css")
    assert {f"/static/{p.name}" for p in STATIC_DIR.iterdir()} == set(local) | {"/static/index.html"}  # none unused
    (missing,) = calls(app, ("GET", "/static/nope.js", {}))
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"


def test_openapi_documents_the_new_routes():
    (r,) = calls(create_app(kit()), ("GET", "/openapi.json", {}))
    paths = r.json()["paths"]
    assert {"/v1/segment", "/v1/ask", "/v1/planner", "/v1/images/{image_id}"} <= set(paths)
    assert "/" not in paths
    body = paths["/v1/segment"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"image", "region", "label", "store"}
    assert "text/event-stream" in paths["/v1/ask"]["post"]["responses"]["200"]["content"]


def test_stored_image_is_served_as_displayed():
    """An upload with EXIF orientation 6 (rotate 90°) comes back upright: the pixels regions refer to."""
    app = create_app(kit())
    up, = calls(app, ("POST", "/v1/images", {"content": png_bytes(ARR, exif_orientation=6),
                                             "headers": {"content-type": "image/png"}}))
    assert (up.json()["width"], up.json()["height"]) == (60, 80)
    got, bad, unknown = calls(app, ("GET", f"/v1/images/{up.json()['image_id']}", {}),
                              ("GET", "/v1/images/cat.png", {}), ("GET", "/v1/images/img_0123456789ab", {}))
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(got.content))
    assert img.size == (60, 80) and np.array_equal(np.asarray(img), np.rot90(ARR, k=-1))
    assert bad.status_code == 422 and "is not an image_id" in bad.json()["error"]["message"]
    assert unknown.status_code == 422 and unknown.json()["error"]["type"] == "invalid_input"


# ------------------------------------------------------------------------------- /v1/segment
def test_segment_box_and_points_with_a_segmenter():
    seg = FakeSegmenter()
    toolkit = kit(segmenter=seg)
    app = create_app(toolkit)
    img = image_id(app)
    box = {"image": img, "region": {"box": [10, 5, 40, 25]}}
    preview, stored, again, pts = calls(
        app, ("POST", "/v1/segment", {"json": {**box, "store": False}}), ("POST", "/v1/segment", {"json": box}),
        ("POST", "/v1/segment", {"json": {**box, "label": "a cup"}}),
        ("POST", "/v1/segment", {"json": {"image": img, "region": {"points": [[30, 20], [5, 5]], "labels": [1, 0]}}}))
    p = preview.json()
    assert preview.status_code == 200 and p["stored"] is False and p["segmented"] is True
    assert p["region"]["id"] is None and p["region"]["source"] == "sam" and p["image_id"] == img
    mask = rle_decode(p["region"]["rle"])
    assert mask.shape == (60, 80) and mask.sum() == p["region"]["area"] == 28 * 18  # the fake shrinks by 1 px
    assert mask[6:24, 11:39].all() and p["region"]["box"] == [11, 6, 39, 24]
    s = stored.json()
    assert s["stored"] is True and s["region"]["id"] == "r1"
    assert toolkit.store.get_region("r1", img).area == 28 * 18
    assert again.json()["region"]["id"] == "r1"  # the same mask is the same stored region
    assert pts.json()["region"]["id"] == "r2" and pts.json()["region"]["source"] == "sam"
    assert seg.calls == 4
    (relate,) = calls(app, ("POST", "/v1/relate", {"json": {"image": img, "regions": ["r1", "r2"],
                                                            "question": "<Prompt0> and <Prompt1>?"}}))
    assert relate.status_code == 200, relate.text  # stored regions work in every tool


def test_segment_without_a_segmenter_keeps_rectangles_and_discs():
    app = create_app(kit())
    img = image_id(app)
    box, pts = calls(app, ("POST", "/v1/segment", {"json": {"image": img, "region": {"box": [10, 5, 40, 25]}}}),
                     ("POST", "/v1/segment", {"json": {"image": img, "region": {"points": [[30, 20]]}}}))
    assert box.json()["segmented"] is False and box.json()["region"]["source"] == "box-rect"
    assert box.json()["region"]["area"] == 30 * 20
    assert pts.json()["segmented"] is False and pts.json()["region"]["source"] == "points-disc"


def test_segment_with_the_tiny_sam_gives_the_segmenter_mask(tiny_sam_dir):  # noqa: F811
    from gar_tool.grounding import load_segmenter

    sam = load_segmenter(str(tiny_sam_dir), device="cpu")
    app = create_app(kit(segmenter=sam))
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/segment", {"json": {"image": img, "region": {"box": [8, 4, 70, 50]}}}))
    assert r.status_code == 200, r.text
    direct = sam.segment(Image.fromarray(ARR), boxes=[[8, 4, 70, 50]])[0]
    out = r.json()["region"]
    assert out["source"] == direct.source and r.json()["segmented"] == (direct.source == "sam")
    assert np.array_equal(rle_decode(out["rle"]), direct.mask)


@pytest.mark.parametrize("body, status, needle", [
    ({"region": {"box": [10, 5, 90, 25]}}, 422, "lies outside the image (width 80, height 60)"),
    ({"region": {"points": [[85, 5]]}}, 422, "lies outside the image"),
    ({"region": {"points": [[5, 5]], "labels": [0]}}, 422, "at least one positive"),
    ({"region": {"polygon": [[1, 1], [5, 1], [5, 5]]}}, 422, "region"),
    ({"region": {"box": [10, 5, 40, 25]}, "colour": "red"}, 422, "colour"),
    ({"region": {"box": [10, 5, 40]}}, 422, "box"),
    ({"image": "img_0123456789ab", "region": {"box": [1, 1, 5, 5]}}, 422, "img_0123456789ab"),
])
def test_segment_bad_input_is_a_readable_422(body, status, needle):
    app = create_app(kit())
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/segment", {"json": {"image": img, **body}}))
    assert r.status_code == status and r.json()["error"]["type"] == "invalid_input"
    assert needle in r.json()["error"]["message"], r.json()


def test_segment_body_must_be_json():
    app = create_app(kit())
    form, broken, ok = calls(app, ("POST", "/v1/segment", {"content": b"x=1", "headers": {
                                 "content-type": "application/x-www-form-urlencoded"}}),
                             ("POST", "/v1/segment", {"content": b"{", "headers": {"content-type": "application/json"}}),
                             ("GET", "/health", {}))
    assert form.status_code == 415 and broken.status_code == 400 and ok.status_code == 200


# ------------------------------------------------------------------------------- /v1/ask
def test_planner_status_says_whether_ask_works():
    without, = calls(create_app(kit()), ("GET", "/v1/planner", {}))
    planner = ScriptedEventsPlanner(events())
    with_one, = calls(create_app(kit(), planner=lambda k: planner, model_names={"planner": "openai:stub"}),
                      ("GET", "/v1/planner", {}))
    assert without.json() == {"available": False, "name": None}
    assert with_one.json() == {"available": True, "name": "openai:stub"}


def test_ask_streams_the_planner_events_as_they_come():
    planner = ScriptedEventsPlanner(events())
    toolkit = kit()
    app = create_app(toolkit, planner=lambda k: planner)
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/ask", {"json": {"image": img, "question": "Where is the cup?"}, "headers": SSE}))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = sse_events(r.text)
    want = events()
    want[-1] = {**want[-1], "overlay_png_base64": None}
    assert got == [(e["type"], e) for e in want]
    assert planner.questions == ["Where is the cup?"]
    assert toolkit.store.put_image(planner.images[0]).image_id == img  # the planner saw the stored image
    assert planner.closed.is_set()


def test_ask_without_event_stream_answers_json_at_the_end():
    app = create_app(kit(), planner=lambda k: ScriptedEventsPlanner(events(answer="r1.")))
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/ask", {"json": {"image": img, "question": "cup?"}}))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"result": events(answer="r1.")[-1]["result"], "overlay_png_base64": None}


def test_answer_event_carries_the_overlay_and_typed_events_serialise():
    png = png_bytes(ARR)

    class Answer:  # a typed event as the planner package has them
        type = "answer"
        result = SimpleNamespace(overlay_png=png)

        def to_dict(self):
            return {"type": "answer", "result": {"answer": "r1", "cited": ["r1"]}}

    data = event_json(Answer())
    assert data["result"] == {"answer": "r1", "cited": ["r1"]} and base64.b64decode(data["overlay_png_base64"]) == png
    assert event_json({"type": "tool_call", "tool": "gar_ground"}) == {"type": "tool_call", "tool": "gar_ground"}
    with pytest.raises(TypeError, match="type"):
        event_json({"tool": "gar_ground"})


@pytest.mark.parametrize("planner, body, status, needle", [
    (None, {"question": "cup?"}, 501, "--planner"),
    ("yes", {"question": "   "}, 422, "question must not be blank"),
    ("yes", {"question": ""}, 422, "question"),
    ("yes", {"question": "cup?", "image": "img_0123456789ab"}, 422, "img_0123456789ab"),
    ("yes", {"question": "cup?", "image": "/etc/passwd"}, 422, "image"),
    ("yes", {"question": "cup?", "max_steps": 3}, 422, "max_steps"),
])
def test_ask_bad_requests_are_answered_before_any_run(planner, body, status, needle):
    scripted = ScriptedEventsPlanner(events())
    app = create_app(kit(), planner=None if planner is None else (lambda k: scripted))
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/ask", {"json": {"image": img, **body}, "headers": SSE}))
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert needle in r.json()["error"]["message"], r.json()
    assert scripted.questions == []


def test_a_planner_failing_mid_run_ends_the_stream_with_an_error_event():
    failing = events()[:1] + [GARError("planner model 'stub' failed: APIConnectionError: Connection error.\n"
                                       "During task with name 'agent'")]
    app = create_app(kit(), planner=lambda k: ScriptedEventsPlanner(failing))
    img = image_id(app)
    streamed, plain = calls(app, ("POST", "/v1/ask", {"json": {"image": img, "question": "cup?"}, "headers": SSE}),
                            ("POST", "/v1/ask", {"json": {"image": img, "question": "cup?"}}))
    got = sse_events(streamed.text)
    assert [name for name, _ in got] == ["tool_call", "error"]
    assert got[1][1]["message"] == "planner model 'stub' failed: APIConnectionError: Connection error."
    assert plain.status_code == 502 and plain.json()["error"]["tool"] == "planner"
    assert "APIConnectionError: Connection error." in plain.json()["error"]["message"]


def test_unexpected_planner_errors_are_logged_not_shown(caplog):
    app = create_app(kit(), planner=lambda k: ScriptedEventsPlanner([RuntimeError("/secret/path exploded")]))
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/ask", {"json": {"image": img, "question": "cup?"}, "headers": SSE}))
    (name, data), = sse_events(r.text)
    assert name == "error" and "RuntimeError" in data["message"] and "secret" not in data["message"]
    assert "server log" in data["message"] and "/secret/path exploded" in caplog.text


def test_a_stream_that_stops_without_an_answer_says_so():
    app = create_app(kit(), planner=lambda k: ScriptedEventsPlanner(events()[:2]))
    img = image_id(app)
    (r,) = calls(app, ("POST", "/v1/ask", {"json": {"image": img, "question": "cup?"}, "headers": SSE}))
    got = sse_events(r.text)
    assert [n for n, _ in got] == ["tool_call", "tool_result", "error"]
    assert "without an answer" in got[-1][1]["message"]


def _stream_in_thread(url: str, img: str, first: list, close_after_first: bool) -> threading.Thread:
    def go():
        with httpx.Client(timeout=30) as c, c.stream("POST", url + "/v1/ask", headers=SSE,
                                                     json={"image": img, "question": "cup?"}) as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    first.append(line)
                    if close_after_first:
                        return
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_a_running_question_holds_a_slot_until_its_stream_ends():
    gate = threading.Event()
    planner = ScriptedEventsPlanner(events(), gate=gate)
    app = create_app(kit(), planner=lambda k: planner, max_concurrency=1)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        img = c.post("/v1/images", json={"image": IMAGE}).json()["image_id"]
        seen: list = []
        t = _stream_in_thread(srv.url, img, seen, close_after_first=False)
        assert planner.started.wait(10)
        busy = c.post("/v1/segment", json={"image": img, "region": {"box": [1, 1, 9, 9]}})
        assert busy.status_code == 429 and busy.json()["error"]["type"] == "busy"
        gate.set()
        t.join(20)
        assert seen == ["event: tool_call", "event: tool_result", "event: answer"]
        after = c.post("/v1/segment", json={"image": img, "region": {"box": [1, 1, 9, 9]}})
        assert after.status_code == 200


def test_a_client_that_goes_away_stops_the_run():
    gate = threading.Event()
    many = events()[:2] * 5 + events()[-1:]
    planner = ScriptedEventsPlanner(many, gate=gate)
    yielded = []
    original = planner.stream

    def counting(image, question):
        for e in original(image, question):
            yielded.append(e)
            yield e
    planner.stream = counting  # type: ignore[method-assign]
    app = create_app(kit(), planner=lambda k: planner, max_concurrency=1)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        img = c.post("/v1/images", json={"image": IMAGE}).json()["image_id"]
        seen: list = []
        t = _stream_in_thread(srv.url, img, seen, close_after_first=True)
        t.join(20)
        assert seen == ["event: tool_call"] and planner.started.wait(10)
        gate.set()
        assert planner.closed.wait(10)
        assert len(yielded) < len(many)  # stopped after the step it was in, not run to the end
        for _ in range(50):  # its slot comes back
            if c.post("/v1/segment", json={"image": img, "region": {"box": [1, 1, 9, 9]}}).status_code == 200:
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail("the slot of the abandoned stream was not released")


# ------------------------------------------------------------------------------- gar serve --planner
def test_pyproject_declares_the_planner_entry_point():
    import tomllib

    from conftest import REPO

    points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert points["gar.planners"] == {"planner": "gar_agents.planner:Planner"}


def test_gar_serve_planner_flag_builds_the_planner_over_the_served_toolkit(monkeypatch, tiny_ckpt, tmp_path):
    import gar_tool.integrations.http.server as http
    from gar_tool.cli import main

    monkeypatch.syspath_prepend(str(planner_entry_point(tmp_path)))
    seen = {}
    monkeypatch.setattr(http, "serve", lambda app, host, port, log_level: seen.update(app=app))
    code = main(["serve", "--model", str(tiny_ckpt), "--detector", "none", "--log-level", "error",
                 "--planner", "openai:stub-model", "--planner-base-url", "http://127.0.0.1:9/v1",
                 "--planner-max-steps", "3"])
    assert code == 0
    status, health, page = calls(seen["app"], ("GET", "/v1/planner", {}), ("GET", "/health", {}), ("GET", "/", {}))
    assert status.json() == {"available": True, "name": "openai:stub-model"}
    assert "gar_ground" not in health.json()["tools"] and page.status_code == 200
    img = image_id(seen["app"])
    (r,) = calls(seen["app"], ("POST", "/v1/ask", {"json": {"image": img, "question": "cup?"}, "headers": SSE}))
    (name, data), = sse_events(r.text)  # the real planner ran, and its model endpoint does not answer
    assert name == "error" and data["message"].startswith("planner model 'stub-model'"), data


def test_gar_serve_planner_needs_the_planner_package(monkeypatch, capsys):
    import importlib.metadata

    from gar_tool.cli import main

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    assert main(["serve", "--planner", "openai:x"]) == 2
    assert "gar.planners" in capsys.readouterr().err


def test_region_helpers_agree_with_the_page_contract():
    """A stored region answered by /v1/segment has exactly the tools' region fields (the page
    reads one shape), and its RLE decodes to the stored mask."""
    toolkit = kit(segmenter=FakeSegmenter())
    app = create_app(toolkit)
    img = image_id(app)
    seg, ground = calls(app, ("POST", "/v1/segment", {"json": {"image": img, "region": {"box": [2, 2, 30, 30]}}}),
                        ("GET", "/health", {}))
    out = seg.json()["region"]
    assert set(out) == {"id", "label", "score", "box", "area", "source", "rle"}
    stored: Region = toolkit.store.get_region(out["id"], img)
    assert np.array_equal(rle_decode(out["rle"]), stored.mask) and ground.status_code == 200


def test_ground_through_a_detector_then_segment_share_one_store():
    toolkit = kit(detector=FakeDetector({"a cup": [([5, 5, 30, 30], 0.9)]}))
    app = create_app(toolkit)
    img = image_id(app)
    ground, seg = calls(app, ("POST", "/v1/ground", {"json": {"image": img, "phrases": "a cup"}}),
                        ("POST", "/v1/segment", {"json": {"image": img, "region": {"box": [40, 10, 70, 50]}}}))
    assert [r["id"] for r in ground.json()["output"]["regions"]] == ["r1"]
    assert seg.json()["region"]["id"] == "r2"


def test_gar_serve_refuses_the_planner_on_ray(capsys):
    from gar_tool.cli import main

    assert main(["serve", "--ray", "--planner", "openai:x"]) == 2
    assert "--planner is not served on Ray" in capsys.readouterr().err


def test_stalled_bodies_on_the_web_routes_time_out_and_hold_no_slot():
    """/v1/segment and /v1/ask read their bodies the server's way: within the body timeout, before
    a concurrency slot is taken."""
    import socket

    app = create_app(kit(), planner=lambda k: ScriptedEventsPlanner(events()), max_concurrency=1, body_timeout=1.0)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        img = c.post("/v1/images", json={"image": IMAGE}).json()["image_id"]
        stalled = []
        for path in ("/v1/segment", "/v1/ask"):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: 500\r\n\r\n{".encode())
            stalled.append(s)
        threading.Event().wait(0.2)
        ok = c.post("/v1/segment", json={"image": img, "region": {"box": [1, 1, 9, 9]}})
        assert ok.status_code == 200  # the one slot was free: the stalled bodies hold none
        answers = [s.recv(4096).split(b"\r\n", 1)[0] for s in stalled]
        for s in stalled:
            s.close()
    assert answers == [b"HTTP/1.1 408 Request Timeout"] * 2


def test_the_page_and_its_routes_are_behind_the_host_and_origin_guard():
    app = create_app(kit(), planner=lambda k: ScriptedEventsPlanner(events()))
    img = image_id(app)
    body = {"json": {"image": img, "question": "cup?"}}
    foreign, own, rebound = calls(
        app, ("POST", "/v1/ask", {**body, "headers": {**SSE, "origin": "http://evil.example"}}),
        ("POST", "/v1/ask", {**body, "headers": {**SSE, "origin": "http://127.0.0.1"}}),
        ("GET", "/", {"headers": {"host": "evil.example"}}))
    assert foreign.status_code == 403 and foreign.json()["error"]["type"] == "forbidden_origin"
    assert own.status_code == 200 and sse_events(own.text)[-1][0] == "answer"  # the page's own origin
    assert rebound.status_code == 421
