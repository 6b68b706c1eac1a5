"""``gar train`` from the shell: trains and writes a loadable model; bad input is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from gar_tool.cli import main
from train_support import shapes_ckpt, shapes_jsonl  # noqa: F401  (fixtures)


def test_gar_train_writes_a_model_the_tools_load(tmp_path, shapes_ckpt, shapes_jsonl, capsys):  # noqa: F811
    out = tmp_path / "model"
    code = main(["train", "--data", str(shapes_jsonl), "--model", str(shapes_ckpt), "--out", str(out),
                 "--max-steps", "2", "--batch-size", "4", "--micro-batch", "2", "--lr", "1e-3",
                 "--max-tiles", "4", "--eval-fraction", "0.25", "--eval-steps", "1", "--no-progress",
                 "--roi-double-scale", "false", "--freeze", "vision"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out)
    assert "trained 2 steps on 18 records" in captured.err and "token_accuracy" in captured.err
    log = json.loads((out / "training_log.json").read_text())
    assert log["eval_records"] == 6 and log["config"]["freeze"] == ["vision"]
    assert any("eval_loss" in h for h in log["log_history"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "GAR" and cfg["roi_double_scale"] is False
    # the released layout: every tool loads it
    from gar_tool.tools import GARToolkit

    kit = GARToolkit.load(model=str(out))
    assert kit.available_tools() == ["gar_describe", "gar_relate", "gar_measure", "gar_zoom"]


@pytest.mark.parametrize("args,words", [
    (["--data", "nowhere.jsonl"], "does not exist"),
    (["--freeze", "eyes"], "unknown part(s) eyes"),
    (["--batch-size", "6", "--micro-batch", "4"], "not a multiple of micro-batch"),
    (["--resume"], "nothing to resume from"),
    (["--lora", "--freeze", "llm"], "cannot be combined with --freeze llm"),
])
def test_gar_train_bad_input_is_one_line_exit_2(tmp_path, shapes_ckpt, shapes_jsonl, capsys, args, words):  # noqa: F811
    base = {"--data": str(shapes_jsonl), "--model": str(shapes_ckpt), "--out": str(tmp_path / "o")}
    argv = ["train"]
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    code = main(argv + args + ["--max-steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gar train: error: ") and words in err and len(err.strip().splitlines()) == 1, err


def test_gar_train_bad_record_names_it_and_skip_counts_it(tmp_path, shapes_ckpt, shapes_jsonl, capsys):  # noqa: F811
    lines = shapes_jsonl.read_text().splitlines()[:6]
    recs = [json.loads(x) for x in lines]
    for r in recs:
        r["image"] = str(shapes_jsonl.parent / r["image"])
    recs[2]["conversations"] = recs[2]["conversations"][:1]  # ends with the human turn
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    argv = ["train", "--data", str(data), "--model", str(shapes_ckpt), "--out", str(tmp_path / "o"),
            "--max-steps", "1", "--batch-size", "2", "--micro-batch", "2", "--max-tiles", "4", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl line 3: field 'conversations': the conversation ends with a human turn" in err
    assert main(argv + ["--skip-bad-records"]) == 0
    captured = capsys.readouterr()
    assert "5 records from" in captured.out and "skipped 1 (1 bad conversations)" in captured.out
    assert "1 bad records skipped" in captured.err
