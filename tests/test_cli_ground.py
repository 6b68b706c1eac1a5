"""``gar ground`` end to end on the tiny checkpoints and a GAR-Bench photo (in-process)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from gar_tool.cli import main
from gar_tool.regions.rle import rle_decode
from grounding_fixtures import real_image, tiny_dino_dir, tiny_sam_dir  # noqa: F401


@pytest.fixture(scope="module")
def models(tiny_dino_dir, tiny_sam_dir) -> list[str]:
    return ["--detector", str(tiny_dino_dir), "--segmenter", str(tiny_sam_dir), "--device", "cpu"]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_regions_lie_in_the_image_and_decode(capsys, real_image, models, tmp_path):
    overlay = tmp_path / "overlay.png"
    code, out, err = _run(capsys, ["ground", str(real_image), "a dog. a ball.", *models, "--box-threshold", "0",
                                   "--text-threshold", "0", "--max-regions", "4", "--json", "--overlay", str(overlay)])
    assert code == 0, err
    regions = json.loads(out)["regions"]
    w, h = Image.open(real_image).size
    assert 0 < len(regions) <= 4
    assert [r["id"] for r in regions] == [f"r{i + 1}" for i in range(len(regions))]
    for r in regions:
        assert r["label"] in ("a dog", "a ball") and 0 < r["score"] <= 1 and r["source"] in ("sam", "box-rect")
        x1, y1, x2, y2 = r["box"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert isinstance(r["rle"]["counts"], str) and r["rle"]["size"] == [h, w]
        assert rle_decode(r["rle"]).shape == (h, w)
    with Image.open(overlay) as img:
        assert img.format == "PNG" and img.width >= w and img.height > h


def test_thresholds_of_one_print_an_empty_list(capsys, real_image, models):
    code, out, _ = _run(capsys, ["ground", str(real_image), "a dog", *models, "--box-threshold", "1.0",
                                 "--text-threshold", "1.0", "--json"])
    assert code == 0 and json.loads(out) == {"regions": []}


def test_human_table(capsys, real_image, tiny_dino_dir):
    code, out, _ = _run(capsys, ["ground", str(real_image), "a dog. a ball.", "--detector", str(tiny_dino_dir),
                                 "--segmenter", "none", "--box-threshold", "0", "--text-threshold", "0",
                                 "--max-regions", "2", "--device", "cpu"])
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:3] == ["id", "label", "score"] and len(lines) == 3
    assert lines[1].startswith("r1") and lines[1].rstrip().endswith("box-rect")
    code, out, _ = _run(capsys, ["ground", str(real_image), "a dog", "--detector", str(tiny_dino_dir),
                                 "--segmenter", "none", "--box-threshold", "1", "--device", "cpu"])
    assert code == 0 and out.startswith("no region found for 'a dog'")


@pytest.mark.parametrize("argv, message", [
    (["IMAGE", " . "], "no phrase to ground"),
    (["IMAGE", ""], "no phrase to ground"),
    (["MISSING", "a dog"], "image file not found"),
    (["NOT_AN_IMAGE", "a dog"], "not a readable image"),
    (["IMAGE", "a dog", "--detector", "/nonexistent/grounding-dino"], "does not exist"),
    (["IMAGE", "a dog", "--detector", "gar-agent-tests/not-cached"], "not in the Hugging Face cache"),
    (["IMAGE", "a dog", "--overlay", "/nonexistent-dir/out.png"], "--overlay: directory"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, real_image, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    paths = {"IMAGE": str(real_image), "MISSING": str(tmp_path / "missing.png"), "NOT_AN_IMAGE": str(junk)}
    code, out, err = _run(capsys, ["ground"] + [paths.get(a, a) for a in argv] + ["--segmenter", "none"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("gar ground: error: ") and message in err


@pytest.mark.parametrize("option", [["--box-threshold", "1.5"], ["--text-threshold", "nan"], ["--max-regions", "0"]])
def test_bad_options_exit_2(capsys, real_image, option):
    with pytest.raises(SystemExit) as info:
        main(["ground", str(real_image), "a dog", *option])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
