"""The ``gar serve`` command itself, cold-started as a user starts it (tiny checkpoints on disk, the
planner an OpenAI-compatible stub on 127.0.0.1), used through its web page in headless Chromium:
upload, draw a box, ask the planner, see its steps and answer. Slow (a fresh Python process loads
torch and the models), so it runs in CI and with ``--run-slow``."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from conftest import REPO
from grounding_fixtures import tiny_dino_dir, tiny_sam_dir  # noqa: F401  (session fixtures)
from planner_support import OpenAIStub, last_tool_text, openai_tool_call
from web_support import Browser, planner_entry_point, screenshot, sse_events

PHOTO = REPO / "examples" / "images" / "coffee.jpg"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answer(body: dict) -> dict:
    ids = re.findall(r"\br\d+\b", last_tool_text(body))
    return {"content": f"The cup is {ids[0]}." if ids else "I found no cup."}


@pytest.mark.slow
def test_gar_serve_serves_the_page_and_streams_the_planner(tiny_ckpt, tiny_dino_dir, tiny_sam_dir, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    ground = lambda body: openai_tool_call("gar_ground", {"phrases": "a cup.", "box_threshold": 0.0,  # noqa: E731
                                                          "max_regions": 1})
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # the planner entry point as pyproject declares it, for an environment installed before it existed
    path = [str(planner_entry_point(tmp_path / "entry-point")), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p), "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "serve.log").open("w")
    with OpenAIStub([ground, _answer, ground, _answer]) as stub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gar_tool.cli", "serve", "--model", str(tiny_ckpt), "--detector", str(tiny_dino_dir),
             "--segmenter", str(tiny_sam_dir), "--port", str(port), "--allow-dir", str(PHOTO.parent),
             "--max-new-tokens", "3", "--planner", "openai:stub-model", "--planner-base-url", stub.base_url,
             "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gar serve did not come up:\n" + (tmp_path / "serve.log").read_text()[-3000:])
                time.sleep(0.5)

            # any client: the event stream over plain HTTP
            up = httpx.post(url + "/v1/images", json={"image": str(PHOTO)}, timeout=30).json()
            r = httpx.post(url + "/v1/ask", json={"image": up["image_id"], "question": "Where is the cup?"},
                           headers={"accept": "text/event-stream"}, timeout=120)
            kinds = [name for name, _ in sse_events(r.text)]
            assert kinds == ["tool_call", "tool_result", "answer"], r.text[-2000:]
            result = sse_events(r.text)[-1][1]["result"]
            assert result["answer"] == f"The cup is {result['cited'][0]}."

            # a person: the page
            with Browser() as browser:
                page = browser.page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(url + "/")
                expect(page.locator("#status")).to_contain_text("planner: openai:stub-model")
                page.set_input_files("#file", str(PHOTO))
                expect(page.locator("#canvas")).to_be_visible()
                box = page.locator("#canvas").bounding_box()
                page.mouse.move(box["x"] + 100, box["y"] + 60)
                page.mouse.down()
                page.mouse.move(box["x"] + 300, box["y"] + 250, steps=6)
                page.mouse.up()
                expect(page.locator("#pending")).to_be_visible()
                page.click("#pending-add")
                expect(page.locator("#regions li")).to_have_count(1)
                page.fill("#plan-question", "Where is the cup?")
                page.click("#plan-btn")
                expect(page.locator("#plan-answer")).to_contain_text("The cup is r")
                expect(page.locator("#plan-steps li.done", has_text="gar_ground")).to_have_count(1)
                assert page.page_errors == [] and not [m for m in page.console_messages if m[0] == "error"]
                assert all(u.startswith((url + "/", "data:", "blob:")) for u in page.requested)
                screenshot(page, "gar-serve-command")
            assert len(stub.requests) == 4 and json.dumps(stub.requests[0]).count("gar_ground") >= 1
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
