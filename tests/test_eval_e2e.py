"""End to end: ``gar eval run`` with the real GAR runtime and the tiny parity checkpoint on the
shared GAR-Bench images, then ``gar eval score`` on its output. Skipped until ``gar_tool.GAR``
is importable."""

from __future__ import annotations

import json

import pytest
from eval_support import GAR_BENCH, SHARED, load_json

import gar_tool.cli as cli
from gar_tool.evaluation.benchmarks import get_benchmark
from gar_tool.evaluation.gar_bench import load_annotations, load_predictions

CHECKPOINT = SHARED / "fixtures" / "gar-tiny" / "checkpoint"


@pytest.mark.slow
def test_run_tiny_checkpoint_on_shared_images(tmp_path, monkeypatch, capsys):
    if not CHECKPOINT.is_dir():
        pytest.fail("../shared/fixtures/gar-tiny/checkpoint must be beside the checkout")
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("eval_cmd",))
    out = tmp_path / "vqa.json"
    argv = ["eval", "run", "--benchmark", "gar-bench-vqa", "--data", str(GAR_BENCH), "--model", str(CHECKPOINT),
            "--limit", "2", "--max-new-tokens", "2", "--out", str(out), "--device", "cpu", "--dtype", "float32",
            "--no-progress"]
    assert cli.main(argv) == 0
    assert "2 of 424 items have predictions" in capsys.readouterr().out
    bench = get_benchmark("gar-bench-vqa")
    preds = load_predictions(out, bench, annotations=load_annotations(GAR_BENCH, bench), allow_partial=True)
    shared = [s["image"] for s in sorted(load_json(GAR_BENCH / "images" / "SUBSET.json"), key=lambda s: int(s["index"]))]
    assert [p["image"] for p in preds] == shared[:2]
    assert all(isinstance(p["model_output"], str) and p["model_output"] == p["model_output"].strip() for p in preds)
    assert cli.main(argv) == 0  # rerun: everything is resumed, nothing recomputed
    assert "(0 new, 2 from an earlier run)" in capsys.readouterr().out
    assert cli.main(["eval", "score", "--benchmark", "gar-bench-vqa", "--pred", str(out), "--allow-partial",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["total"] == 2
