"""The examples run as users run them: tiny checkpoints, a scripted OpenAI-compatible planner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from planner_support import OpenAIStub, last_tool_text, openai_tool_call


def _stateless(body):
    """Ground first; once a tool answered, answer citing the regions found."""
    if body["messages"][-1]["role"] != "tool":
        system = " ".join(str(m.get("content")) for m in body["messages"] if m["role"] == "system")
        image = (re.findall(r"img_[0-9a-f]{12}", system) or ["-"])[0]
        return openai_tool_call("gar_ground", {"image": image, "phrases": "a thing.", "box_threshold": 0.0,
                                               "max_regions": 1})
    ids = re.findall(r"\br\d+\b", last_tool_text(body))
    return {"content": f"I see {ids[0]}." if ids else "Nothing found."}


def test_batch_qa_writes_jsonl_and_resumes(tmp_path, monkeypatch, tiny_ckpt, tiny_dino_dir):  # noqa: F811
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray((np.random.RandomState(i).rand(90, 120, 3) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "answers.jsonl"
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import batch_qa
    finally:
        sys.path.pop(0)
    with OpenAIStub([_stateless]) as stub:
        args = [str(folder), "What is there?", "--out", str(out), "--planner", "openai:stub", "--planner-base-url",
                stub.base_url, "--model", str(tiny_ckpt), "--detector", str(tiny_dino_dir), "--segmenter", "none"]
        batch_qa.main(args)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["image"] for r in rows] == ["0.png", "1.png"]
        assert all(r["error"] is None and r["stopped"] == "answer" and r["steps"] == 1 for r in rows)
        n_requests = len(stub.requests)
        batch_qa.main(args)  # resumed: nothing left to do
        assert len(out.read_text().splitlines()) == 2 and len(stub.requests) == n_requests


@pytest.mark.slow  # a cold-started subprocess
def test_langgraph_example_runs(tmp_path, tiny_ckpt, tiny_dino_dir):  # noqa: F811
    img = tmp_path / "photo.png"
    Image.fromarray((np.random.RandomState(7).rand(80, 100, 3) * 255).astype(np.uint8)).save(img)
    with OpenAIStub([_stateless]) as stub:
        res = subprocess.run([sys.executable, str(REPO / "examples" / "langgraph_agent.py"), str(img), "What?",
                              "--llm", "stub", "--base-url", stub.base_url, "--model", str(tiny_ckpt),
                              "--detector", str(tiny_dino_dir), "--segmenter", "none"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path,
                             env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "x",
                                  "PYTHONPATH": os.environ.get("PYTHONPATH", "")})  # the code under test
    assert res.returncode == 0, res.stderr[-1500:]
    assert res.stdout.strip().startswith("I see r") and len(stub.requests) == 2
    assert [m["content"] for m in stub.requests[1]["messages"] if m["role"] == "assistant"] == [""]  # never null


def test_mcp_config_is_valid():
    cfg = json.loads((REPO / "examples" / "mcp_config.json").read_text())
    server = cfg["mcpServers"]["gar"]
    assert server["command"].endswith("/gar") and server["args"][0] == "mcp"
