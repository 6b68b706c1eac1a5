"""The ablation benchmark runs end to end on a two-step curriculum (its accuracies and timings
are printed, never asserted; the table's shape and the held-out split are)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_ablation_benchmark_tiny_curriculum_runs(tmp_path):
    init = json.dumps({"hidden_size": 32, "num_layers": 1, "num_heads": 1, "num_kv_heads": 1,
                       "intermediate_size": 64, "vision_width": 32, "vision_depth": 1, "vision_heads": 1})
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ablation.py"), "--work", str(tmp_path),
                          "--stages", "colour:1@1/colour:1,shape:1@1", "--items", "9", "--init", init],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| variant | colour, small | colour, large | shape, small")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["full", "double-scale", "no-replay", "no-mask"]
    res = json.loads((tmp_path / "results.json").read_text())
    # 9 items balanced over colour / shape / size: the 6 colour and shape ones are asked
    assert res["variants"]["full"]["accuracy"]["all/all"][1] == 6
    head = next(line for line in out.stdout.splitlines() if line.startswith("# curriculum"))
    assert "thread(s), CPU" in head and "load average" in head
    scored = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ablation.py"), "--work", str(tmp_path),
                             "--score", str(tmp_path / "full"), "--items", "6"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert scored.returncode == 0, scored.stderr[-2000:]
    kinds = [line.split("|")[1].strip() for line in scored.stdout.splitlines() if line.startswith("| ")][1:]
    assert kinds == ["colour", "shape", "size", "left", "above", "bigger", "same-colour", "same-shape", "count", "all"]


def test_ablation_rejects_a_malformed_stage():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ablation.py"), "--work", "/nonexistent/x",
                          "--stages", "colour:1"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 2 and "expected MIX@STEPS" in out.stderr
