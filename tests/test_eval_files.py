"""Evaluation outputs are written atomically with the permissions the user's umask gives (not the
0600 of a temporary file)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from gar_tool.evaluation.files import atomic_write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_mode_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        out = tmp_path / "sub" / "preds.json"
        atomic_write_json(out, [{"answer": "A"}])
        first = stat.S_IMODE(out.stat().st_mode)
        atomic_write_json(out, [{"answer": "B"}])  # replacing keeps the same rule
        second = stat.S_IMODE(out.stat().st_mode)
    finally:
        os.umask(old)
    assert first == second == mode
    assert json.loads(out.read_text()) == [{"answer": "B"}]
    assert [p.name for p in out.parent.iterdir()] == ["preds.json"]  # no temporary file left behind
