"""``gar eval run --agent``: the planner agent answers GAR-Bench VQA items over the tiny GAR,
with a scripted OpenAI-compatible planner on 127.0.0.1."""

from __future__ import annotations

import json
import re

from conftest import GAR_BENCH, need_shared
from planner_support import OpenAIStub, openai_tool_call


def _planner(body):
    msgs = body["messages"]
    if msgs[-1]["role"] != "tool":
        question = next(m["content"] for m in msgs if m["role"] == "user")
        ids = list(dict.fromkeys(re.findall(r"\br\d+\b", question)))
        return openai_tool_call("gar_measure", {"image": "-", "regions": ids})
    return {"content": "Measured the regions. Answer: B"}


def test_eval_run_with_agent(tmp_path, monkeypatch, capsys, tiny_ckpt):
    need_shared()
    from gar_tool.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "vqa.json"
    with OpenAIStub([_planner]) as stub:
        code = main(["eval", "run", "--benchmark", "gar-bench-vqa", "--data", str(GAR_BENCH), "--model",
                     str(tiny_ckpt), "--limit", "2", "--out", str(out), "--no-progress", "--max-new-tokens", "2",
                     "--agent", "openai:stub", "--agent-base-url", stub.base_url])
        questions = [next(m["content"] for m in r["messages"] if m["role"] == "user") for r in stub.requests]
    assert code == 0
    preds = [p for p in json.loads(out.read_text()) if "model_output" in p]
    assert len(preds) == 2 and all(p["model_output"] == "B" for p in preds)
    # the planner saw region ids instead of <PromptN>, and was asked for a letter
    assert all("<Prompt" not in q and re.search(r"\br\d+\b", q) and "Answer: X" in q for q in questions)
    capsys.readouterr()
