"""The episode benchmark runs end to end (tiny preset; its timings are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_episode_benchmark_tiny_preset_runs():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "episode.py"), "--preset", "tiny",
                          "--new-tokens", "3", "--ks", "1,3"], capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("| 3 |") for line in lines)
    assert any(line.startswith("8 region sets:") for line in lines)
    # every arm decoded the same number of tokens per question (end-of-turn ignored)
    assert "steps 6" in out.stdout  # k=3 original-style: 3 questions x (3 tokens - 1 from the prefill)
