"""``gar describe`` / ``gar relate`` end to end on the fixture checkpoint and real GAR-Bench images."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURE, GAR_BENCH, REPO, need_shared
from gar_tool.cli import main
from gar_tool.regions.rle import rle_decode
from grounding_fixtures import tiny_sam_dir  # noqa: F401  (session fixture)


def _vqa_item(image_name):
    items = json.loads((GAR_BENCH / "annotations" / "GAR-Bench-VQA.json").read_text())
    return next(it for it in items if it["image"].endswith(image_name) and 2 <= len(it["mask_rles"]) <= 5)


@pytest.fixture(scope="module")
def bench_item(tmp_path_factory):
    need_shared()
    names = sorted(p.name for p in (GAR_BENCH / "images").glob("*.png"))
    for name in names:
        try:
            item = _vqa_item(name)
        except StopIteration:
            continue
        path = tmp_path_factory.mktemp("bench") / "regions.json"
        path.write_text(json.dumps(item["mask_rles"]))
        return GAR_BENCH / "images" / name, item, path
    pytest.fail("no multi-region GAR-Bench item among the shared images")


def test_describe_json_on_fixture(capsys, fixture_ckpt):
    case = FIXTURE / "cases" / "a_single_640x480"
    rle = json.loads((case / "masks_rle.json").read_text())[0]
    code = main(["describe", str(case / "image.png"), "--region", "rle:" + json.dumps(rle),
                 "--model", str(fixture_ckpt), "--compat", "original", "--max-new-tokens", "16", "--json"])
    out = json.loads(capsys.readouterr().out)
    expected = json.loads((case / "case.json").read_text())["generation"]["generated_ids"]
    assert code == 0 and out["token_ids"] == expected and out["finish_reason"] == "length"
    mask = rle_decode(rle)  # the region the CLI reports is the RLE's mask
    ys, xs = np.nonzero(mask)
    assert out["regions"][0]["prompt"] == "<Prompt0>" and out["regions"][0]["area"] == int(mask.sum())
    assert out["regions"][0]["box"] == [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def test_relate_on_gar_bench_image(capsys, fixture_ckpt, gar_default, bench_item):
    """The CLI answers exactly what the Python API answers for the same inputs."""
    image, item, regions_json = bench_item
    n = len(item["mask_rles"])
    question = "Which is bigger: " + ", ".join(f"<Prompt{i}>" for i in range(n)) + "?"
    code = main(["relate", str(image), question, "--regions-json", str(regions_json),
                 "--model", str(fixture_ckpt), "--max-new-tokens", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    api = gar_default.relate(str(image), item["mask_rles"], question, max_new_tokens=3)
    assert code == 0 and out["token_ids"] == api.token_ids and out["text"] == api.text
    assert [r["area"] for r in out["regions"]] == [int(rle_decode(r).sum()) for r in item["mask_rles"]]
    code = main(["describe", str(image), "--region", "box:10,10,120,90", "--model", str(fixture_ckpt),
                 "--max-new-tokens", "2"])
    api = gar_default.describe(str(image), {"box": [10, 10, 120, 90]}, max_new_tokens=2)
    assert code == 0 and capsys.readouterr().out.strip() == api.text


@pytest.mark.parametrize("argv, message", [
    (["describe", "{img}", "--region", "box:1,2,3"], "4 numbers"),
    (["describe", "/nonexistent.png", "--region", "box:1,2,3,4"], "not found"),
    (["describe", "{img}", "--region", "box:0,0,5000,10"], "outside the image"),
    (["describe", "{img}", "--region", "box:1,1,9,9", "--max-new-tokens", "0"], "max-new-tokens"),
    (["relate", "{img}", "<Prompt0> vs <Prompt1>", "--region", "box:1,1,9,9"], "only 1 region"),
    (["relate", "{img}", "no prompts", "--region", "box:1,1,9,9"], "names no region"),
    (["relate", "{img}", "<Prompt0>?"], "at least one --region"),
    (["describe", "{img}", "--region", "box:1,1,9,9", "--model", "/no/such/dir"], "no such checkpoint"),
    (["describe", "{img}", "--region", "box:1,1,9,9", "--model", "someone/uncached-gar"], "--model DIR"),
])
def test_bad_input_exits_2_with_one_line(capsys, fixture_ckpt, bench_item, argv, message):
    image = str(bench_item[0])
    argv = [a.replace("{img}", image) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(fixture_ckpt)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_console_script_runs_out_of_process(fixture_ckpt, bench_item):
    """The installed entry point, as a user runs it (usage errors exit 2 too)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    gar = [sys.executable, "-m", "gar_tool.cli"]
    bad = subprocess.run(gar + ["describe"], capture_output=True, text=True, env=env, cwd=REPO)
    assert bad.returncode == 2 and "required" in bad.stderr
    ok = subprocess.run(gar + ["describe", str(bench_item[0]), "--region", "points:50,60;80,90",
                               "--model", str(fixture_ckpt), "--max-new-tokens", "2", "--json"],
                        capture_output=True, text=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["regions"][0]["source"] == "points-disc"
    # config.json has an auto_map: loading must not ask about remote code (stdin is closed here)
    assert "trust_remote_code" not in ok.stderr and "custom code" not in ok.stderr


def test_segmenter_turns_box_and_point_specs_into_masks(capsys, fixture_ckpt, bench_item, tiny_sam_dir):  # noqa: F811
    image = str(bench_item[0])
    code = main(["relate", image, "Is <Prompt0> near <Prompt1>?", "--region", "box:20,30,200,160",
                 "--region", "points:300,200", "--segmenter", str(tiny_sam_dir), "--model", str(fixture_ckpt),
                 "--max-new-tokens", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    # SAM masks (or, if the random SAM returns an empty mask, the flagged rectangle / disc fallback)
    assert [r["source"] for r in out["regions"]][0] in ("sam", "box-rect")
    assert out["regions"][1]["source"] in ("sam", "points-disc")
    assert any(r["source"] == "sam" for r in out["regions"])
