"""GARClient / AsyncGARClient: the toolkit interface over HTTP — against a live uvicorn server and
the ASGI app, error mapping with httpx.MockTransport, and the planner driving a remote server."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from PIL import Image

from gar_agents import Planner
from gar_tool.integrations.http import AsyncGARClient, GARClient, GARConnectionError, GARServerBusy
from gar_tool.regions.rle import rle_decode
from gar_tool.integrations.http.server import create_app
from gar_tool.tools import DescribeInput, ImageInputConfig, ToolFailure, ToolInputError, ToolResult
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from planner_support import ScriptedChatModel, call, ids_in_last_tool_message
from server_support import LiveServer, bench_item, tiny_toolkit
from tools_support import png_bytes, rgb

ARR = rgb(96, 128, 21)


@pytest.fixture(scope="module")
def kit(tiny_gar, tiny_dino_dir):  # noqa: F811
    # allowed_roots=[]: this server reads no files, so everything the client sends must be uploaded
    k = tiny_toolkit(tiny_gar, tiny_dino_dir, inputs=ImageInputConfig(allowed_roots=[]))
    yield k
    k.gar.close()


@pytest.fixture(scope="module")
def live(kit):
    with LiveServer(create_app(kit)) as srv:
        yield srv


# ------------------------------------------------------------------------------- live server
def test_sync_client_against_live_server(live, tiny_gar):
    path, rles = bench_item()
    with GARClient(live.url, timeout=60, allowed_roots=[path.parent]) as gar:
        health = gar.health()
        assert health["status"] == "ok" and gar.available_tools() == health["tools"]
        assert gar.gar.prompt_slots == tiny_gar.prompt_slots
        image_id = gar.upload_image(path)
        res = gar.describe({"image": image_id, "region": {"rle": rles[0]}})
        assert isinstance(res, ToolResult) and res.artifact.image_id == image_id and res.overlay_png is None
        assert res.artifact.description == tiny_gar.describe(str(path), {"rle": rles[0]}, max_new_tokens=3).text
        # a local path is uploaded (the server may not read files); an input model works as args
        again = gar.describe(DescribeInput(image=str(path), region=res.artifact.region.id), overlay=True)
        assert again.artifact.image_id == image_id and again.overlay_png.startswith(b"\x89PNG")
        found = gar.ground({"image": image_id, "phrases": ["a dog", "a cup"], "box_threshold": 0.0, "max_regions": 2})
        ids = [r.id for r in found.artifact.regions]
        rel = gar.relate({"image": image_id, "regions": ids, "question": "Is <Prompt0> above <Prompt1>?"})
        assert [r.id for r in rel.artifact.regions] == ids
        m = gar.measure({"image": image_id, "regions": [ids[0], {"rle": rles[1]}]})
        assert m.artifact.geometry[1].area_px == int(rle_decode(rles[1]).sum())
        # the local region cache rebuilds masks from the results' RLE
        region = gar.store.get_region(res.artifact.region.id, image_id)
        assert np.array_equal(region.mask, rle_decode(rles[0])) and region.source == "rle"
        assert gar.store.get_region(ids[0]).label in ("a dog", "a cup")
        with pytest.raises(ToolInputError, match="not in any result"):
            gar.store.get_region("r9999")


def test_errors_map_back_onto_tool_errors(live):
    with GARClient(live.url, timeout=60) as gar:
        image_id = gar.upload_image(ARR)
        with pytest.raises(ToolInputError, match="region.box") as bad:
            gar.describe({"image": image_id, "region": {"box": [1, 2]}})
        assert bad.value.retryable and bad.value.tool == "gar_describe"
        with pytest.raises(ToolInputError, match="unknown in this session"):
            gar.call("gar_relate", {"image": image_id, "regions": ["r4242"], "question": "<Prompt0>?"})
        with pytest.raises(ToolInputError, match="unknown tool"):
            gar.call("gar_teleport", {})
        with pytest.raises(ToolInputError, match="outside the allowed|disabled"):
            gar.describe({"image": "/definitely/not/here.png", "region": {"box": [1, 1, 5, 5]}})
        assert gar.describe({"image": image_id, "region": {"box": [1, 1, 50, 50]}}).artifact.region.area == 49 * 49


def test_connection_failure_is_clear():
    with GARClient("http://127.0.0.1:9", timeout=5) as gar:
        with pytest.raises(GARConnectionError, match="cannot connect .*gar serve"):
            gar.describe({"image": "img_0123456789ab", "region": "r1"})
    assert issubclass(GARConnectionError, ToolFailure)


# ------------------------------------------------------------------------------- mock transport
def error(status, kind=None, message="why", retryable=True, headers=None, text=None):
    def handler(request):
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        body = {"error": {"type": kind, "message": message, "retryable": retryable, "tool": "gar_describe"}}
        return httpx.Response(status, json=body, headers=headers)
    return handler


MAPPING = [  # (handler, exception, checks)
    (error(422, "invalid_input"), ToolInputError, "why"),
    (error(413, "payload_too_large"), ToolInputError, "why"),
    (error(400, "bad_request"), ToolInputError, "why"),
    (error(429, "busy", "the server is busy", headers={"Retry-After": "3"}), GARServerBusy, "retry after 3 s"),
    (error(500, "tool_failure", "model failed", retryable=False), ToolFailure, "model failed"),
    (error(501, "tool_unavailable", "no detector", retryable=False), ToolFailure, "no detector"),
    (error(404, text="nothing here"), ToolFailure, "gar server"),
    (error(502, text="<html>bad gateway</html>"), ToolFailure, "HTTP 502"),
]


@pytest.mark.parametrize("handler,exc,text", MAPPING, ids=[f"{i}-{m[1].__name__}" for i, m in enumerate(MAPPING)])
def test_error_mapping(handler, exc, text):
    with GARClient("http://gar.test", transport=httpx.MockTransport(handler)) as gar:
        with pytest.raises(exc, match=text) as info:
            gar.describe({"image": "img_0123456789ab", "region": "r1"})
    assert type(info.value) is exc
    if exc is GARServerBusy:
        assert info.value.retry_after == 3.0


def test_busy_retries_then_succeeds(kit):
    answer = ToolResult.from_dict(_describe_result(kit))
    calls = []

    def handler(request):
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            return httpx.Response(429, json={"error": {"type": "busy", "message": "busy", "retryable": True}},
                                  headers={"Retry-After": "0"})
        return httpx.Response(200, json=answer.to_dict())

    with GARClient("http://gar.test", transport=httpx.MockTransport(handler), max_busy_retries=2) as gar:
        res = gar.describe({"image": answer.artifact.image_id, "region": "r1"})
    assert len(calls) == 2 and res.artifact.description == answer.artifact.description
    with GARClient("http://gar.test", transport=httpx.MockTransport(handler)) as gar:
        calls.clear()
        with pytest.raises(GARServerBusy):
            gar.describe({"image": answer.artifact.image_id, "region": "r1"})


def _describe_result(kit) -> dict:
    stored = kit.store.put_image(Image.fromarray(ARR))
    return kit.describe({"image": stored.image_id, "region": {"box": [2, 2, 40, 40]}}).to_dict()


def test_wrong_answers_are_tool_failures():
    def handler(request):
        return httpx.Response(200, json={"tool": "gar_measure", "content": "x", "output": {}})

    with GARClient("http://gar.test", transport=httpx.MockTransport(handler)) as gar:
        with pytest.raises(ToolFailure, match="not a gar_describe result"):
            gar.describe({"image": "img_0123456789ab", "region": "r1"})


# ------------------------------------------------------------------------------- async client, ASGI app
def test_async_client_against_the_asgi_app(tiny_gar):
    kit = tiny_toolkit(tiny_gar, None, batch_wait=0.3, inputs=ImageInputConfig(allowed_roots=[]))
    app = create_app(kit)

    async def go():
        async with AsyncGARClient("http://127.0.0.1:8000", transport=httpx.ASGITransport(app=app)) as gar:
            assert await gar.available_tools() == ["gar_describe", "gar_relate", "gar_measure", "gar_zoom"]
            image_id = await gar.upload_image(png_bytes(ARR))
            boxes = [[0, 0, 30, 30], [40, 10, 90, 60]]
            results = await asyncio.gather(*(gar.describe({"image": image_id, "region": {"box": b}}) for b in boxes))
            with pytest.raises(ToolFailure, match="not available"):
                await gar.ground({"image": image_id, "phrases": "a dog"})
            with pytest.raises(ToolInputError, match="regions"):
                await gar.relate({"image": image_id, "question": "<Prompt0>?"})
            stored = await gar.store.put_image(ARR)
            return image_id, results, stored, gar.store.get_region(results[1].artifact.region.id)

    try:
        image_id, results, stored, region = asyncio.run(go())
        assert stored.image_id == image_id and (stored.width, stored.height) == (128, 96)
        assert [r.artifact.region.area for r in results] == [900, 2500] and region.area == 2500
        assert kit.gar.batches_run == 1  # the two concurrent describes ran as one batch
    finally:
        kit.gar.close()


# ------------------------------------------------------------------------------- planner, remote
def test_planner_over_a_remote_server(live):
    image = rgb(240, 320, 8)

    def ground(msgs, bound):
        return AIMessage("", tool_calls=[call("gar_ground", image="ignored", phrases="a cup. a plate.",
                                              box_threshold=0.0, max_regions=2)])

    def relate(msgs, bound):
        ids = ids_in_last_tool_message(msgs)[:2]
        return AIMessage("", tool_calls=[call("gar_relate", regions=ids, question="Is <Prompt0> on <Prompt1>?"),
                                         call("gar_describe", region="r99999")])

    def final(msgs, bound):
        tool_msgs = [m for m in msgs if isinstance(m, ToolMessage)]
        ids = ids_in_last_tool_message([tool_msgs[-2]])
        return AIMessage(f"The cup ({ids[0]}) is next to the plate ({ids[1]}).")

    model = ScriptedChatModel(steps=[ground, relate, final])
    with GARClient(live.url, timeout=60) as gar:
        res = Planner(gar, model, max_steps=4).ask(image, "Is the cup on the plate?")
    assert [s.tool for s in res.steps] == ["gar_ground", "gar_relate", "gar_describe"]
    assert [s.ok for s in res.steps] == [True, True, False] and "unknown in this session" in res.steps[2].content
    assert res.stopped == "answer" and res.invented == [] and len(res.cited) == 2
    assert all(s.args["image"] == res.image_id for s in res.steps)
    assert "gar_ground" in model.tool_names and res.evidence.gar[0].tool == "gar_relate"
    assert res.overlay_png.startswith(b"\x89PNG")  # regions rebuilt from the client's cache


# ------------------------------------------------------------------------------- client-side roots
def test_client_uploads_only_files_under_its_own_roots(tmp_path, monkeypatch):
    inside, outside = tmp_path / "pictures", tmp_path / "private"
    inside.mkdir(), outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(png_bytes(ARR))
    (inside / "ok.png").write_bytes(png_bytes(ARR))
    (inside / "link.png").symlink_to(secret)
    uploads: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        uploads.append(request.content)
        return httpx.Response(200, json={"image_id": "img_0123456789ab", "width": 80, "height": 60})

    monkeypatch.chdir(inside)  # the default root: the working directory when the client is created
    with GARClient("http://127.0.0.1:8000", transport=httpx.MockTransport(handler)) as gar:
        assert gar.upload_image("ok.png") == "img_0123456789ab"
        for ref in (str(secret), "link.png", "../private/secret.png", secret):
            with pytest.raises(ToolInputError, match="outside this client's allowed directories"):
                gar.upload_image(ref)
        with pytest.raises(ToolInputError, match="outside this client's allowed directories"):
            gar.describe({"image": str(secret), "region": {"box": [1, 1, 5, 5]}})
        assert gar.upload_image(secret.read_bytes()) == "img_0123456789ab"  # bytes are the caller's choice
    with GARClient("http://127.0.0.1:8000", transport=httpx.MockTransport(handler), allowed_roots=[outside],
                   max_upload_bytes=100) as gar:
        with pytest.raises(ToolInputError, match="more than the limit of 100"):
            gar.upload_image(secret)
    with GARClient("http://127.0.0.1:8000", transport=httpx.MockTransport(handler), allowed_roots=[]) as gar:
        with pytest.raises(ToolInputError, match=r"allowed directories \(none\)"):
            gar.upload_image("ok.png")
    assert len(uploads) == 2  # ok.png and the bytes; nothing from outside the roots was sent
