"""``gar eval score|run``: output, exit codes and one-line errors; the run path with a fake GAR."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from eval_support import GAR_BENCH, OFFICIAL, FakePredictor

import gar_tool.cli as cli
from gar_tool.cli import eval_cmd

VQA_PRED = str(OFFICIAL / "gar_1b_vqa.json")


@pytest.fixture
def gar(monkeypatch):
    """``gar`` with only the eval command registered (other commands are not needed here)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("eval_cmd",))
    return cli.main


def test_register_adds_score_and_run():
    parser = argparse.ArgumentParser(prog="gar")
    eval_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", "p.json", "--json"])
    assert args.func is eval_cmd.score_command and args.json
    args = parser.parse_args(["eval", "run", "--benchmark", "gar-bench-vqa", "--data", "d", "--model", "m",
                              "--limit", "3", "--compat", "original", "--max-new-tokens", "2"])
    assert args.func is eval_cmd.run_command
    assert (args.limit, args.compat, args.max_new_tokens, args.out) == (3, "original", 2, None)


def test_score_vqa_table_and_json(gar, capsys):
    assert gar(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", VQA_PRED, "--data", str(GAR_BENCH)]) == 0
    table = capsys.readouterr().out
    overall = next(line for line in table.splitlines() if line.startswith("overall"))
    assert overall.split()[1:3] == ["203/424", "47.9"]
    assert gar(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", VQA_PRED, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["accuracy"] == 47.9 and result["by_type"]["ordering"]["accuracy"] == 20.3


def test_score_captions_prints_the_published_accuracy(gar, capsys):
    assert gar(["eval", "score", "--benchmark", "gar-bench-caption-simple", "--pred",
                str(OFFICIAL / "gar_1b_simple_eval.json")]) == 0
    assert "Accuracy:  0.5567" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["score", "--benchmark", "gar-bench-vqa", "--pred", "/no/such.json"], "prediction file not found"),
    (["score", "--benchmark", "gar-bench-nope", "--pred", VQA_PRED], "unknown benchmark 'gar-bench-nope'"),
    (["score", "--benchmark", "gar-bench-caption-simple", "--pred", VQA_PRED], "missing field(s) eval_result"),
    (["score", "--benchmark", "gar-bench-vqa", "--pred", str(OFFICIAL / "gar_1b_simple_eval.json")],
     "missing field(s) choices, type"),
    (["score", "--benchmark", "dlc-bench", "--pred", VQA_PRED], "expected a JSON object"),
    (["score", "--benchmark", "gar-bench-vqa", "--pred", VQA_PRED, "--judge", "openai:m"], "exact match"),
    (["run", "--benchmark", "gar-bench-vqa", "--data", "/no/such/dir", "--model", "m"], "benchmark folder not found"),
    (["run", "--benchmark", "gar-bench-vqa", "--data", str(GAR_BENCH), "--model", "m", "--limit", "0"], "--limit"),
])
def test_bad_input_is_one_line_and_exit_2(gar, capsys, argv, message):
    assert gar(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("gar eval: error:")
    assert message in err


def test_not_json_prediction_file(gar, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    assert gar(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", str(bad)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_run_then_score_with_a_fake_gar(gar, capsys, tmp_path, monkeypatch):
    loaded = {}

    def fake_load(model, **kwargs):
        loaded.update(model=model, **kwargs)
        return FakePredictor()

    monkeypatch.setattr(eval_cmd, "load_gar", fake_load)
    out = tmp_path / "vqa.json"
    assert gar(["eval", "run", "--benchmark", "gar-bench-vqa", "--data", str(GAR_BENCH), "--model", "ckpt",
                "--limit", "2", "--out", str(out), "--compat", "original", "--device", "cpu",
                "--dtype", "float32", "--no-progress"]) == 0
    assert loaded == {"model": "ckpt", "device": "cpu", "dtype": "float32", "compat": "original"}
    summary = capsys.readouterr().out
    assert "2 of 424 items have predictions" in summary and "image file missing" in summary
    assert gar(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", str(out), "--json"]) == 2
    assert "pass --allow-partial" in capsys.readouterr().err
    assert gar(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", str(out), "--allow-partial",
                "--data", str(GAR_BENCH), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["total"] == 2


def test_evaluation_modules_do_not_import_torch():
    code = ("import sys, pkgutil, importlib, gar_tool.evaluation as e, gar_tool.cli.eval_cmd\n"
            "for m in pkgutil.iter_modules(e.__path__): importlib.import_module(f'gar_tool.evaluation.{m.name}')\n"
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
