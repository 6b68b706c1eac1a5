"""The per-tile reuse measurement of the episode benchmark runs end to end on the tiny preset with
a 4x4 grid (its timings are printed, never asserted; the tower's tile counts are)."""

from __future__ import annotations

import re

from test_dtype_isa import _benchmark


def test_tile_reuse_rows(capsys):
    code = _benchmark().main(["--preset", "tiny", "--tiles", "16", "--tile-size", "112", "--parts", "tiles",
                              "--new-tokens", "2", "--dtype", "float32"])
    out = capsys.readouterr().out
    assert code == 0
    head = out.splitlines()[0]
    assert "dtype float32" in head and "CPU vector ISA" in head and "load average" in head
    assert len(re.findall(r"^region set \w\w: tiles touched per region \[[12], [12]\]", out, re.M)) == 8
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| ")}
    # 8 x 17 tiles without per-tile reuse; with it: 17 for the first pair, then the thumbnail, the
    # new objects' tiles and (once) the mask-free versions of the tiles earlier objects covered:
    # AB 17, CD 1+3+3, EF 1+3, then the thumbnail alone for the 5 pairs of known objects = 33
    assert rows["tiles through the tower"][:3] == ["136", "136", "33"]
    for name in ("whole requests (s)", "vision phase (s)"):
        assert all(re.fullmatch(r"[\d.]+x", c) for c in rows[name][3:5]), rows[name]
