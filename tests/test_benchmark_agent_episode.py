"""The agent-episode benchmark runs end to end (tiny preset): both arms answer, the table and the
ratio are printed (timings are printed, never asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow  # a cold-started subprocess
def test_agent_episode_benchmark_tiny_preset_runs():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "agent_episode.py"), "--preset", "tiny",
                          "--new-tokens", "2"], capture_output=True, text=True, timeout=300, cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "ours: 10 tool calls in 2 turns, stopped answer, total" in text  # ground, then 9 calls in one reply
    assert "original-style: 10 tool calls in 10 turns, stopped answer, total" in text
    assert re.search(r"^\| 8 GAR questions \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$", text, re.M)
    assert re.search(r"^episode speed-up: [\d.]+x \(target >= 4x: (met|MISSED)\)", text, re.M)
    assert "same observations in both arms: True" in text  # fp32: batching changes no answer
    assert re.search(r"# machine: 1 torch thread\(s\), \d+ CPUs, load average", text)
