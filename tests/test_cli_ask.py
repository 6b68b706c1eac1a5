"""``gar ask`` end to end: tiny GAR / Grounding DINO checkpoints, the planner over HTTP against a
scripted OpenAI-compatible stub on 127.0.0.1, the overlay, and one-line failures."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from conftest import GAR_BENCH, REPO, need_shared
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from planner_support import OpenAIStub, last_tool_text, openai_tool_call


def _script():
    def first(body):
        return openai_tool_call("gar_ground", {"image": "-", "phrases": "a person. a bag.", "box_threshold": 0.0,
                                               "max_regions": 2})

    def second(body):
        ids = re.findall(r"\br\d+\b", last_tool_text(body))[:2]
        return openai_tool_call("gar_relate", {"image": "-", "regions": ids,
                                               "question": "Is <Prompt0> holding <Prompt1>?"}, 1)

    def final(body):
        ids = sorted(set(re.findall(r"\br\d+\b", last_tool_text(body))))
        return {"content": f"Probably: {ids[0]} holds {ids[1]}."}

    return [first, second, final]


@pytest.fixture()
def image():
    need_shared()
    return str(sorted((GAR_BENCH / "images").glob("*.png"))[0])


def _argv(image, ckpt, dino, base_url, *extra):
    return ["ask", image, "Is the person holding the bag?", "--planner", "openai:stub",
            "--planner-base-url", base_url, "--model", str(ckpt), "--detector", str(dino),
            "--segmenter", "none", "--max-new-tokens", "3", *extra]


def test_ask_json_with_overlay(capsys, monkeypatch, tmp_path, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    from gar_tool.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    overlay = tmp_path / "evidence.png"
    with OpenAIStub(_script()) as stub:
        code = main(_argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url, "--json", "--overlay", str(overlay)))
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["stopped"] == "answer" and len(out["cited"]) == 2
    assert [s["tool"] for s in out["steps"]] == ["gar_ground", "gar_relate"]
    assert {r["id"] for r in out["evidence"]["regions"]} >= set(out["cited"])
    assert out["evidence"]["gar"][0]["regions"] == out["cited"]
    assert out["overlay"] == str(overlay) and overlay.read_bytes().startswith(b"\x89PNG")


def test_ask_human_output(capsys, monkeypatch, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    from gar_tool.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIStub(_script()) as stub:
        assert main(_argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Probably: r") and any(line.startswith("id ") for line in out)
    assert any("GAR [" in line for line in out) and "stopped: answer" in out[-1]


@pytest.mark.slow  # a cold-started subprocess
def test_ask_unreachable_planner_is_one_line(monkeypatch, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(REPO),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # the code under test, also from a work tree
    res = subprocess.run([sys.executable, "-m", "gar_tool.cli", *_argv(image, tiny_ckpt, tiny_dino_dir,
                                                                        f"http://127.0.0.1:{port}/v1")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "planner model 'stub' failed" in lines[0] and "Connection" in lines[0]


def test_ask_planner_that_rejects_tools_is_one_line(capsys, monkeypatch, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    """A server whose model cannot call tools answers the tools request with an error."""
    from gar_tool.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def reject(body):
        raise RuntimeError("model does not support tools")

    with OpenAIStub([reject]) as stub:
        code = main(_argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "planner model 'stub' failed" in err[0]


@pytest.mark.parametrize("argv, message", [
    (["ask", "/nonexistent.png", "q?"], "not found"),
    (["ask", "{img}", "  "], "question is empty"),
    (["ask", "{img}", "q?", "--planner", "gpt4"], "PROVIDER:MODEL"),
    (["ask", "{img}", "q?", "--max-steps", "0"], "max-steps"),
    (["ask", "{img}", "q?", "--overlay", "out.jpg"], ".png"),
    (["ask", "{img}", "q?", "--planner-timeout", "0"], "--planner-timeout must be a number of seconds > 0"),
    (["ask", "{img}", "q?", "--planner-retries", "-1"], "--planner-retries must be an integer >= 0"),
])
def test_ask_bad_input_exits_2(capsys, image, argv, message):
    from gar_tool.cli import main

    assert main([a.replace("{img}", image) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def _run(capsys, argv):
    from gar_tool.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def test_ask_answer_without_tools_warns_on_stderr(capsys, monkeypatch, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIStub([lambda body: {"content": "Yes, the person holds a red bag."}]) as stub:
        code, out, err = _run(capsys, _argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url, "--json"))
    res = json.loads(out)
    assert code == 0 and res["stopped"] == "no_tools" and res["steps"] == [] and res["evidence"]["regions"] == []
    assert len(err) == 1 and err[0].startswith("gar ask: warning: the planner answered without calling any tool")
    assert res["warnings"] and stub.requests[0]["tool_choice"] == "auto"


def test_ask_require_tools_fails_with_the_result_as_json(capsys, monkeypatch, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIStub([lambda body: {"content": "Yes."}]) as stub:
        code, out, err = _run(capsys, _argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url, "--json",
                                            "--require-tools"))
    res = json.loads(out)
    assert code == 1 and res["stopped"] == "error" and "without calling any tool" in res["error"]
    assert err[-1].startswith("gar ask: failed: the planner answered without calling any tool")


def test_ask_timeout_keeps_the_steps_taken(capsys, monkeypatch, tmp_path, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    overlay = tmp_path / "o.png"
    with OpenAIStub(_script(), delay=lambda n, body: 1.5 if n == 2 else 0.0) as stub:
        code, out, err = _run(capsys, _argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url, "--json",
                                            "--planner-timeout", "0.5", "--planner-retries", "0",
                                            "--overlay", str(overlay)))
    res = json.loads(out)
    assert code == 1 and res["stopped"] == "error" and [s["tool"] for s in res["steps"]] == ["gar_ground"]
    assert len(res["evidence"]["regions"]) == 2 and res["overlay"] is None and not overlay.exists()
    assert len(err) == 1 and "did not answer within 0.5 s; raise --planner-timeout" in err[0]


def test_ask_stream_prints_json_events(capsys, monkeypatch, tiny_ckpt, tiny_dino_dir, image):  # noqa: F811
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIStub(_script()) as stub:
        code, out, err = _run(capsys, _argv(image, tiny_ckpt, tiny_dino_dir, stub.base_url, "--stream",
                                            "--strict-tools"))
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and err == []
    assert [e["type"] for e in events] == ["tool_call", "tool_result", "tool_call", "tool_result", "answer"]
    assert events[-1]["result"]["stopped"] == "answer" and events[1]["ok"] and events[3]["tool"] == "gar_relate"
    assert all(t["function"]["strict"] for t in stub.requests[0]["tools"])
