"""The MCP server: a real MCP client session (the SDK's ``Client``) in memory for most tests, and
one over stdio against ``python -m gar_tool.cli mcp`` with the tiny checkpoints."""

from __future__ import annotations

import base64
import json
import io
import os
import sys
import tempfile
import time

import anyio
import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from conftest import REPO
from gar_tool.regions.rle import rle_decode
from gar_tool.integrations.mcp import create_server, http_app
from gar_tool.tools import GARToolkit, ImageInputConfig, mcp_tools
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from server_support import LiveServer, bench_item, real_kit, tiny_toolkit  # noqa: F401  (fixture)
from tools_support import FakeGAR, b64, png_bytes, rgb

IMAGE = b64(png_bytes(rgb(60, 80, 4)))
ALL = ["gar_describe", "gar_relate", "gar_ground", "gar_measure", "gar_zoom"]




def session(server, **kw):
    async def go(body):
        with anyio.fail_after(60):
            async with Client(server, **kw) as client:
                return await body(client)
    return lambda body: anyio.run(go, body)


def png(block) -> Image.Image:
    assert block.type == "image" and block.mime_type == "image/png"
    img = Image.open(io.BytesIO(base64.b64decode(block.data)))
    img.load()
    return img


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_tools_listed_with_input_and_output_schemas(real_kit, mode):
    async def body(client):
        return (await client.list_tools()).tools

    tools = session(create_server(real_kit), mode=mode)(body)
    assert [t.name for t in tools] == ALL
    expected = {t["name"]: t for t in mcp_tools()}
    for t in tools:
        assert t.input_schema == expected[t.name]["inputSchema"]
        assert t.output_schema == expected[t.name]["outputSchema"]
        assert t.description == expected[t.name]["description"] and t.annotations.read_only_hint is True


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_describe_gives_structured_text_and_image_content(real_kit, tiny_gar, mode):
    path, rles = bench_item()

    async def body(client):
        return await client.call_tool("gar_describe", {"image": str(path), "region": {"rle": rles[0]}})

    res = session(create_server(real_kit), mode=mode)(body)  # the SDK client checks it against outputSchema
    assert res.is_error is False
    out = res.structured_content
    assert out["region"]["area"] == int(rle_decode(rles[0]).sum()) and out["region"]["source"] == "rle"
    assert out["description"] == tiny_gar.describe(str(path), {"rle": rles[0]}, max_new_tokens=3).text
    text, image = res.content
    assert text.type == "text" and text.text.startswith(f"{out['region']['id']} (box [")
    assert png(image).width >= 620


def test_bad_input_is_an_error_result_and_the_session_goes_on(real_kit):
    path, rles = bench_item()

    async def body(client):
        results = [await client.call_tool("gar_describe", {"image": str(path), "region": {"box": [1, 2, 3]}}),
                   await client.call_tool("gar_describe", {"image": str(path), "region": "r999"}),
                   await client.call_tool("gar_relate", {"image": "/etc/passwd", "regions": ["r1"], "question": "?"}),
                   await client.call_tool("gar_fly", {}),
                   await client.call_tool("gar_measure", None)]
        ground = await client.call_tool("gar_ground", {"image": str(path), "phrases": "a dog. a cup.",
                                                       "box_threshold": 0.0, "max_regions": 2})
        ids = [r["id"] for r in ground.structured_content["regions"]]
        relate = await client.call_tool("gar_relate", {"image": ground.structured_content["image_id"],
                                                       "regions": [ids[0], {"rle": rles[1]}],
                                                       "question": "Is <Prompt0> left of <Prompt1>?"})
        return results, ground, relate

    bad, ground, relate = session(create_server(real_kit))(body)
    assert all(r.is_error for r in bad) and all(r.structured_content is None for r in bad)
    texts = [r.content[0].text for r in bad]
    assert "region.box" in texts[0] and "Fix the arguments" in texts[0]
    assert "'r999' is unknown" in texts[1]
    assert "outside the allowed directories" in texts[2]
    assert "unknown tool 'gar_fly'" in texts[3] and "gar_measure" in texts[3]
    assert "image" in texts[4] and "regions" in texts[4]
    assert not ground.is_error and len(ground.structured_content["regions"]) == 2
    assert not relate.is_error
    assert relate.structured_content["regions"][0]["id"] == ground.structured_content["regions"][0]["id"]
    assert [b.type for b in relate.content] == ["text", "image"]


def test_failures_and_unavailable_tools_are_error_results():
    kit = GARToolkit(FakeGAR(fail=RuntimeError("out of memory")), inputs=ImageInputConfig(allowed_roots=[]))

    async def body(client):
        names = [t.name for t in (await client.list_tools()).tools]
        failed = await client.call_tool("gar_describe", {"image": IMAGE, "region": {"box": [1, 1, 9, 9]}})
        missing = await client.call_tool("gar_ground", {"image": IMAGE, "phrases": "a dog"})
        ok = await client.call_tool("gar_measure", {"image": IMAGE, "regions": [{"box": [1, 1, 9, 9]}]})
        return names, failed, missing, ok

    names, failed, missing, ok = session(create_server(kit, include_overlay=False))(body)
    assert names == ["gar_describe", "gar_relate", "gar_measure", "gar_zoom"]
    assert failed.is_error and "out of memory" in failed.content[0].text
    assert "Retrying will not help" in failed.content[0].text
    assert missing.is_error and "not available" in missing.content[0].text
    assert not ok.is_error and [b.type for b in ok.content] == ["text"]


def test_streamable_http(real_kit):
    path, rles = bench_item()

    async def go(url):
        with anyio.fail_after(60):
            async with Client(url) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                bad = await client.call_tool("gar_measure", {"image": str(path), "regions": []})
                good = await client.call_tool("gar_measure", {"image": str(path), "regions": [{"rle": rles[0]}]})
                return names, bad, good

    with LiveServer(http_app(create_server(real_kit))) as srv:
        names, bad, good = anyio.run(go, srv.url + "/mcp")
    assert names == ALL
    assert bad.is_error and "regions" in bad.content[0].text
    assert not good.is_error and good.structured_content["geometry"][0]["area_px"] == int(rle_decode(rles[0]).sum())


def test_stdio_subprocess(tiny_ckpt, tiny_dino_dir):  # noqa: F811
    """``python -m gar_tool.cli mcp`` over stdio: only protocol on stdout, models loaded once."""
    path, rles = bench_item()
    params = StdioServerParameters(
        command=sys.executable, cwd=str(REPO),
        args=["-m", "gar_tool.cli", "mcp", "--model", str(tiny_ckpt), "--detector", str(tiny_dino_dir),
              "--allow-dir", str(path.parent), "--max-new-tokens", "3", "--device", "cpu", "--log-level", "info",
              "--load-wait", "300"],  # calls wait for the models, however slow the machine
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
             **{k: os.environ[k] for k in ("PYTHONPATH", "HF_HOME") if k in os.environ}})
    stray: list = []

    async def on_message(message):  # non-JSON lines on the server's stdout arrive here as exceptions
        if isinstance(message, Exception):
            stray.append(message)

    async def go(errlog):
        with anyio.fail_after(120):
            from mcp.client.stdio import stdio_client

            async with Client(stdio_client(params, errlog=errlog), message_handler=on_message) as client:
                tools = (await client.list_tools()).tools
                described = await client.call_tool("gar_describe", {"image": str(path), "region": {"rle": rles[0]}})
                bad = await client.call_tool("gar_describe", {"image": str(path), "region": {"box": [5, 5]}})
                grounded = await client.call_tool("gar_ground", {"image": described.structured_content["image_id"],
                                                                 "phrases": "a dog", "box_threshold": 0.0,
                                                                 "max_regions": 1})
                return tools, described, bad, grounded

    with tempfile.TemporaryFile("w+") as errlog:
        tools, described, bad, grounded = anyio.run(go, errlog)
        errlog.seek(0)
        err_text = errlog.read()
    assert stray == [], f"non-protocol output on stdout: {stray!r}\nstderr:\n{err_text[-2000:]}"
    assert [t.name for t in tools] == ALL and all(t.output_schema for t in tools)
    assert not described.is_error and described.structured_content["region"]["source"] == "rle"
    assert [b.type for b in described.content] == ["text", "image"]
    assert bad.is_error and "region.box" in bad.content[0].text
    assert not grounded.is_error and grounded.structured_content["regions"][0]["id"].startswith("r")
    assert "Traceback" not in err_text


# ------------------------------------------------------------------ start-up while loading, raw protocol
class RawStdio:
    """``gar mcp`` as a subprocess spoken to in raw JSON-RPC lines (what a host sends, unvalidated)."""

    def __init__(self, args: list[str]) -> None:
        import subprocess

        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
               **{k: os.environ[k] for k in ("PYTHONPATH", "HF_HOME", "PATH") if k in os.environ}}
        self.proc = subprocess.Popen([sys.executable, "-m", "gar_tool.cli", "mcp", *args], cwd=str(REPO),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)
        self.next_id = 0

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, **({"params": params} if params else {})})
        line = self.proc.stdout.readline()
        assert line, f"server closed stdout; stderr: {self.proc.stderr.read()[-2000:]}"
        answer = json.loads(line)
        assert answer.get("id") == self.next_id, answer
        return answer

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def close(self) -> str:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        return self.proc.stderr.read()


INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}}


@pytest.mark.slow  # cold-started server subprocesses
def test_stdio_answers_at_once_while_models_load(tiny_ckpt, tmp_path):
    """initialize and tools/list are answered while the models are still loading (the load is held
    at a gate until the test opens it); a call during the load gets a retryable "still loading"
    error after --load-wait; arguments that are not an object are an isError result at once;
    once the gate opens, calls succeed. (Start-up time itself: benchmarks/mcp_startup.py.)"""
    path, rles = bench_item()
    gate = tmp_path / "gate"
    hook = tmp_path / "sitecustomize.py"  # holds the server's model load until `gate` exists
    hook.write_text("import os, time, gar_tool.integrations.serving as s\n"
                    "orig = s.BackgroundToolkit._run\n"
                    "def held(self):\n"
                    "    end = time.monotonic() + 120\n"
                    f"    while not os.path.exists({str(gate)!r}) and time.monotonic() < end:\n"
                    "        time.sleep(0.05)\n"
                    "    orig(self)\n"
                    "s.BackgroundToolkit._run = held\n")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    try:
        srv = RawStdio(["--model", str(tiny_ckpt), "--detector", "none", "--allow-dir", str(path.parent),
                        "--max-new-tokens", "2", "--device", "cpu", "--load-wait", "0.5"])
    finally:
        os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].split(os.pathsep, 1)[1]
    init = srv.request("initialize", INIT)
    srv.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    tools = srv.request("tools/list")["result"]["tools"]
    bad = srv.request("tools/call", {"name": "gar_measure", "arguments": [1, 2]})["result"]
    text = srv.request("tools/call", {"name": "gar_measure", "arguments": "image=x"})["result"]
    early = srv.request("tools/call", {"name": "gar_measure", "arguments": {"image": str(path),
                                                                          "regions": [{"rle": rles[0]}]}})
    assert not gate.exists()  # everything above was answered with the load held
    gate.write_text("open")
    deadline = time.monotonic() + 240
    while True:  # the retryable error says to call again: do so until the models are there
        done = srv.request("tools/call", {"name": "gar_describe", "arguments": {"image": str(path),
                                                                                 "region": {"rle": rles[0]}}})
        if "still loading" not in done["result"]["content"][0]["text"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    err = srv.close()
    assert init["result"]["serverInfo"]["name"] == "gar-agent"
    assert [t["name"] for t in tools] == ["gar_describe", "gar_relate", "gar_measure", "gar_zoom"]
    assert bad["isError"] is True and "must be a JSON object" in bad["content"][0]["text"] and "array" in bad["content"][0]["text"]
    assert text["isError"] is True and "got a JSON string" in text["content"][0]["text"]
    assert early["result"]["isError"] is True and "still loading" in early["result"]["content"][0]["text"]
    assert done["result"].get("isError") is not True and done["result"]["structuredContent"]["region"]["source"] == "rle"
    assert "Traceback" not in err


@pytest.mark.slow  # cold-started server subprocesses
def test_stdio_load_failure_is_an_error_result_and_bad_paths_exit_2(tmp_path):
    import subprocess

    missing = subprocess.run([sys.executable, "-m", "gar_tool.cli", "mcp", "--model", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such checkpoint" in missing.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    srv = RawStdio(["--model", str(broken), "--detector", "none", "--device", "cpu", "--load-wait", "300"])
    srv.request("initialize", INIT)
    srv.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    result = srv.request("tools/call", {"name": "gar_describe", "arguments": {"image": "x", "region": "r1"}})["result"]
    err = srv.close()
    assert result["isError"] is True and "could not load its models" in result["content"][0]["text"]
    assert "lacks tokenizer.json" in result["content"][0]["text"] and "Retrying will not help" in result["content"][0]["text"]
    assert "Traceback" not in err and "loading the models failed" in err


def test_builtin_commands_do_not_import_plugins():
    """``gar mcp`` starts without importing the planner's LangGraph stack (it must answer fast)."""
    import subprocess

    from gar_tool.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "ask" in sub.choices and "mcp" in sub.choices  # plugin commands are still there for `gar --help`
    code = ("import sys\nfrom gar_tool.cli import main\ntry:\n    main(['mcp', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('langgraph', 'torch', 'transformers') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == "[]", res.stderr
