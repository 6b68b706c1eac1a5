"""Bad input through HTTP and MCP: tables of (request, expected status / isError). The server must
answer each with its JSON error (HTTP) or an ``isError`` result (MCP) naming what was wrong, never a
500, a traceback or a protocol error, and keep serving."""

from __future__ import annotations

import asyncio
import base64
import json

import anyio
import httpx
import pytest
from mcp import Client

from bad_input_support import ONE_PIXEL_RLE, gif_declaring, huge_rle, png_declaring
from gar_tool.integrations.http.server import create_app
from gar_tool.integrations.mcp import create_server
from gar_tool.tools import GARToolkit, ImageInputConfig
from tools_support import FakeDetector, FakeGAR, b64, png_bytes, rgb

IMAGE = b64(png_bytes(rgb(60, 80, 5)))
BOMB = b64(png_declaring(12000, 12000))
BOX = {"box": [5, 5, 40, 40]}


def kit() -> GARToolkit:
    return GARToolkit(FakeGAR(), FakeDetector({"a dog": [([5, 5, 30, 30], 0.9)]}),
                      inputs=ImageInputConfig(allowed_roots=[]))


J = {"content-type": "application/json"}
HTTP = [
    # (name, method, path, request kwargs, status, error type)
    ("bomb upload raw", "POST", "/v1/images", dict(content=base64.b64decode(BOMB)), 422, "invalid_input"),
    ("bomb upload json", "POST", "/v1/images", dict(json={"image": BOMB}), 422, "invalid_input"),
    ("gif bomb upload", "POST", "/v1/images", dict(content=gif_declaring(40000, 40000)), 422, "invalid_input"),
    ("bomb in a tool", "POST", "/v1/describe", dict(json={"image": BOMB, "region": BOX}), 422, "invalid_input"),
    ("svg upload", "POST", "/v1/images", dict(content=b"<svg width='9' height='9'/>"), 422, "invalid_input"),
    ("empty upload", "POST", "/v1/images", dict(content=b""), 422, "invalid_input"),
    ("multipart without file", "POST", "/v1/images", dict(data={"x": "1"}, files={}), 422, "invalid_input"),
    ("rle declaring 10G px", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": {"rle": huge_rle(100_000, 100_000)}}), 422, "invalid_input"),
    ("rle of another size", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": {"rle": huge_rle(8192, 8192)}}), 422, "invalid_input"),
    ("rle compressed bomb", "POST", "/v1/measure", dict(json={"image": IMAGE, "regions": [{"rle": {"size": [99999, 99999], "counts": "0"}}]}), 422, "invalid_input"),
    ("rle garbage counts", "POST", "/v1/measure", dict(json={"image": IMAGE, "regions": [{"rle": {"size": [60, 80], "counts": "\u00ff\u00fe"}}]}), 422, "invalid_input"),
    ("rle one pixel vs image", "POST", "/v1/measure", dict(json={"image": IMAGE, "regions": [{"rle": ONE_PIXEL_RLE}]}), 422, "invalid_input"),
    ("points flat", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": {"points": [1, 2, 3, 4]}}), 422, "invalid_input"),
    ("labels strings", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": {"points": [[1, 2]], "labels": ["yes"]}}), 422, "invalid_input"),
    ("polygon flat", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": {"polygon": [1, 2, 3, 4, 5, 6]}}), 422, "invalid_input"),
    ("polygon 5000 vertices", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": {"polygon": [[1, 1], [9, 1], [9, 9]] * 1700}}), 422, "invalid_input"),
    ("box NaN", "POST", "/v1/describe", dict(content=b'{"image": "' + IMAGE.encode() + b'", "region": {"box": [NaN, 1, 2, 3]}}', headers=J), 422, "invalid_input"),
    ("10000 phrases", "POST", "/v1/ground", dict(json={"image": IMAGE, "phrases": [f"t{i}" for i in range(10_000)]}), 422, "invalid_input"),
    ("phrase 1000 chars", "POST", "/v1/ground", dict(json={"image": IMAGE, "phrases": "a" * 1000}), 422, "invalid_input"),
    ("phrases a number", "POST", "/v1/ground", dict(json={"image": IMAGE, "phrases": 5}), 422, "invalid_input"),
    ("path traversal", "POST", "/v1/describe", dict(json={"image": "../../etc/passwd", "region": BOX}), 422, "invalid_input"),
    ("url disabled", "POST", "/v1/describe", dict(json={"image": "http://169.254.169.254/latest", "region": BOX}), 422, "invalid_input"),
    ("file scheme", "POST", "/v1/describe", dict(json={"image": "file:///etc/passwd", "region": BOX}), 422, "invalid_input"),
    ("json array body", "POST", "/v1/describe", dict(json=[1, 2]), 400, "bad_request"),
    ("invalid json", "POST", "/v1/relate", dict(content=b"{nope", headers=J), 400, "bad_request"),
    ("deeply nested json", "POST", "/v1/measure", dict(content=b"[" * 100_000 + b"]" * 100_000, headers=J), 400, "bad_request"),
    ("not utf-8", "POST", "/v1/measure", dict(content=b'{"image": "\xff"}', headers=J), 400, "bad_request"),
    ("text/plain body", "POST", "/v1/measure", dict(content=b"hi", headers={"content-type": "text/plain"}), 415, "unsupported_media_type"),
    ("bad content-length", "POST", "/v1/measure", dict(content=b"{}", headers={**J, "content-length": "abc"}), 400, "bad_request"),
    ("body too large", "POST", "/v1/images", dict(content=b"x" * 40_000), 413, "payload_too_large"),
    ("unknown path", "GET", "/v1/nothing", {}, 404, "not_found"),
    ("GET on a tool", "GET", "/v1/describe", {}, 405, "method_not_allowed"),
    ("foreign Host (DNS rebinding)", "GET", "/health", dict(headers={"host": "attacker.example"}), 421, "invalid_host"),
    ("Host with a bad port", "GET", "/health", dict(headers={"host": "localhost:abc"}), 421, "invalid_host"),
    ("empty Host", "GET", "/health", dict(headers={"host": ""}), 421, "invalid_host"),
    ("foreign Origin", "POST", "/v1/measure", dict(json={}, headers={"origin": "https://evil.example"}), 403, "forbidden_origin"),
    ("null Origin", "POST", "/v1/measure", dict(json={}, headers={"origin": "null"}), 403, "forbidden_origin"),
    ("preflight from a foreign Origin", "OPTIONS", "/v1/measure", dict(headers={"origin": "https://evil.example", "access-control-request-method": "POST"}), 403, "forbidden_origin"),
    ("unknown region id", "POST", "/v1/describe", dict(json={"image": IMAGE, "region": "r424242"}), 422, "invalid_input"),
    ("extra argument", "POST", "/v1/measure", dict(json={"image": IMAGE, "regions": [BOX], "sudo": True}), 422, "invalid_input"),
]


@pytest.mark.parametrize("name, method, path, kwargs, status, kind", HTTP, ids=[h[0] for h in HTTP])
def test_http_bad_requests(name, method, path, kwargs, status, kind):
    app = create_app(kit(), max_request_bytes=30_000 if name == "body too large" else 40 << 20)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
            bad = await c.request(method, path, **kwargs)
            ok = await c.post("/v1/measure", json={"image": IMAGE, "regions": [BOX]})
            return bad, ok

    bad, ok = asyncio.run(go())
    assert bad.status_code == status, bad.text
    err = bad.json()["error"]
    assert err["type"] == kind and err["message"] and "Traceback" not in err["message"]
    assert ok.status_code == 200  # the server goes on


def test_allowed_hosts_origins_and_cors():
    app = create_app(kit(), allowed_hosts=["gar.example", "127.0.0.1"], allowed_origins=["https://app.example"])

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gar.example:8000") as c:
            return (await c.get("/health"),
                    await c.get("/health", headers={"host": "localhost"}),  # not listed any more
                    await c.post("/v1/measure", json={"image": IMAGE, "regions": [BOX]},
                                 headers={"origin": "https://app.example"}),
                    await c.options("/v1/measure", headers={"origin": "https://app.example",
                                                            "access-control-request-method": "POST",
                                                            "access-control-request-headers": "content-type"}),
                    await c.post("/v1/measure", json={"image": IMAGE, "regions": [BOX]},
                                 headers={"origin": "http://gar.example:8000"}),  # same origin (the /docs page)
                    await c.get("/health", headers={"host": "[::1]:8000"}))

    named, other, cors, preflight, same, v6 = asyncio.run(go())
    assert named.status_code == 200 and other.status_code == 421 and v6.status_code == 421
    assert cors.status_code == 200 and cors.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


MCP = [
    # (tool, arguments, text expected in the error)
    ("gar_describe", {"image": BOMB, "region": BOX}, "pixels"),
    ("gar_describe", {"image": IMAGE, "region": {"rle": huge_rle(100_000, 100_000)}}, "mask_pixels"),
    ("gar_describe", {"image": IMAGE, "region": {"points": [1, 2, 3, 4]}}, "points"),
    ("gar_describe", {"image": IMAGE, "region": {"polygon": [[1, 1], [2, 2]]}}, "polygon"),
    ("gar_describe", {"image": IMAGE}, "region"),
    ("gar_describe", {"image": "../../../etc/shadow", "region": BOX}, "image"),
    ("gar_relate", {"image": IMAGE, "regions": [BOX], "question": "Is <Prompt7> red?"}, "Prompt"),
    ("gar_relate", {"image": IMAGE, "regions": "r1", "question": "?"}, "regions"),
    ("gar_ground", {"image": IMAGE, "phrases": [f"t{i}" for i in range(10_000)]}, "phrases"),
    ("gar_ground", {"image": IMAGE, "phrases": "a dog", "box_threshold": 7}, "box_threshold"),
    ("gar_measure", {"image": IMAGE, "regions": [{"rle": {"size": [60, 80], "counts": [5]}}]}, "RLE"),
    ("gar_measure", {"image": 12, "regions": [BOX]}, "image"),
    ("gar_unknown", {}, "unknown tool"),
]


def test_mcp_bad_calls_are_error_results():
    server = create_server(kit(), include_overlay=False)

    async def go():
        with anyio.fail_after(60):
            async with Client(server) as client:
                results = [await client.call_tool(tool, args) for tool, args, _ in MCP]
                ok = await client.call_tool("gar_measure", {"image": IMAGE, "regions": [BOX]})
                return results, ok

    results, ok = anyio.run(go)
    for (tool, args, expected), res in zip(MCP, results):
        assert res.is_error, (tool, res)
        text = res.content[0].text
        assert expected in text and text.startswith("Error: ") and "Traceback" not in text, (tool, text)
    assert not ok.is_error


@pytest.mark.parametrize("arguments", [[1, 2], "image=x", 3, True], ids=["array", "string", "number", "boolean"])
def test_mcp_arguments_that_are_not_an_object(arguments):
    """The SDK client refuses to send such arguments, so this speaks raw JSON-RPC to the server's
    in-memory transport."""
    from mcp.shared.memory import create_client_server_memory_streams

    server = create_server(kit(), include_overlay=False)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}

    async def go():
        from mcp.shared.message import SessionMessage
        from mcp.types import jsonrpc_message_adapter

        async with create_client_server_memory_streams() as ((c_read, c_write), (s_read, s_write)):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: server.run(s_read, s_write, server.create_initialization_options()))
                answers = []
                for message in (init, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                                {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                 "params": {"name": "gar_measure", "arguments": arguments}},
                                {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}):
                    await c_write.send(SessionMessage(jsonrpc_message_adapter.validate_python(message)))
                    if "id" in message:
                        with anyio.fail_after(30):
                            reply = (await c_read.receive()).message
                            answers.append(json.loads(jsonrpc_message_adapter.dump_json(reply, by_alias=True,
                                                                                         exclude_none=True)))
                tg.cancel_scope.cancel()
        return answers

    try:
        answers = anyio.run(go)
    except (ImportError, AttributeError) as exc:  # pragma: no cover - SDK layout changed
        pytest.fail(f"the MCP SDK's in-memory transport is not where this test expects it: {exc}")
    call = answers[1]
    assert "error" not in call, call  # not a JSON-RPC protocol error
    assert call["result"]["isError"] is True and "must be a JSON object" in call["result"]["content"][0]["text"]
    assert [t["name"] for t in answers[2]["result"]["tools"]] == ["gar_describe", "gar_relate", "gar_ground",
                                                                   "gar_measure", "gar_zoom"]
