"""Bad input through the Python API and the CLI: tables of (input, expected error type / exit code).
Every case must end in one clear error naming what was expected — never a traceback, a raw
TypeError / ValueError / KeyError, a PIL warning, or an allocation of the declared size.
(HTTP and MCP: test_bad_inputs_servers.py.)"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from bad_input_support import ONE_PIXEL_RLE, gif_declaring, huge_rle, png16_gray, png_declaring
from conftest import REPO
from gar_tool.errors import InputError, PromptError, RegionError
from gar_tool.grounding.phrases import parse_phrases
from gar_tool.media.images import load_image
from gar_tool.regions.forms import coerce_region, parse_spec
from gar_tool.regions.region import Region
from gar_tool.regions.rle import rle_decode
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (session fixture)
from tools_support import png_bytes, rgb

SIZE = (60, 80)  # (H, W)
BOMB = png_declaring(12000, 12000)  # ~140 KB, declares 144 M pixels (PIL would warn at 89 M)


# ------------------------------------------------------------------------------- images
IMAGES = {
    "empty bytes": b"",
    "not an image": b"hello, I am text" * 4,
    "truncated PNG": png_bytes(rgb(40, 40))[:60],
    "PNG header only": png_bytes(rgb(40, 40))[:33],
    "bomb 12000x12000": BOMB,
    "bomb 50000x50000": png_declaring(50000, 50000, rows=1),
    "GIF screen 40000x40000": gif_declaring(40000, 40000),
    "zero-width PNG": png_declaring(0, 10, rows=0),
    "SVG is not decoded": b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
    "PDF is not decoded": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "float array": np.zeros((10, 10, 3), dtype=np.float32),
    "4-D array": np.zeros((2, 10, 10, 3), dtype=np.uint8),
    "array too big": np.zeros((1, 8192 * 8192 + 1), dtype=np.uint8),
    "a number": 42,
    "a dict": {"image": "x"},
    "missing path": "/nonexistent/dir/photo.png",
    "path with NUL": "photo\x00.png",
}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_load_image_refuses(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning (or any other) fails the test
        with pytest.raises(InputError) as info:
            load_image(IMAGES[name])
    assert "\n" not in str(info.value) and type(info.value) is InputError


def test_bomb_is_refused_before_decoding_in_bounded_memory():
    """In a fresh process: refusing the 12000 x 12000 bomb must not allocate its 144 MB of pixels."""
    code = (
        "import resource, sys\n"
        "from gar_tool.media.images import load_image\n"
        "from bad_input_support import png_declaring\n"
        "data = png_declaring(12000, 12000)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    load_image(data)\nexcept Exception as e:\n    print(type(e).__name__, e, file=sys.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(REPO / "tests"), env={**os.environ, "PYTHONWARNINGS": "error"})
    assert res.returncode == 0, res.stderr
    grown_kb = int(res.stdout.strip().splitlines()[-1])
    assert res.stderr.startswith("InputError ") and "144000000 pixels" in res.stderr and "Warning" not in res.stderr
    assert grown_kb < 30_000, f"refusing the bomb grew the process by {grown_kb} KB"


def test_sixteen_bit_gray_is_rescaled_not_white():
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    img = load_image(png16_gray(ramp))
    assert img.mode == "RGB" and img.size == (64, 64)
    got = np.asarray(img)[..., 0].astype(int)
    assert np.abs(got - np.rint(ramp / 257.0)).max() <= 1  # v * 255 / 65535, not clipped to 255
    assert got.min() == 0 and got.max() == 255 and (got == 255).mean() < 0.01 and 120 < got.mean() < 135
    src = Image.open(io.BytesIO(png16_gray(ramp)))  # what a plain convert("RGB") gives: clipped, nearly white
    assert src.mode == "I;16" and np.asarray(src.convert("RGB")).mean() > 250
    # 16-bit RGB PNGs were already fine and stay so; 8-bit images are untouched
    assert np.array_equal(np.asarray(load_image(png_bytes(rgb(10, 12)))), rgb(10, 12))
    i32 = Image.fromarray(ramp.astype(np.int32))
    assert np.abs(np.asarray(load_image(i32))[..., 0].astype(int) - np.rint(ramp / 257.0)).max() <= 1


def test_limits_can_be_lowered_per_call():
    data = png_bytes(rgb(40, 50))
    with pytest.raises(InputError, match=r"has 50x40 = 2000 pixels, more than the limit of 1999"):
        load_image(data, max_pixels=1999)
    with pytest.raises(InputError, match=f"is {len(data)} bytes, more than the limit of 100"):
        load_image(data, max_bytes=100)


# ------------------------------------------------------------------------------- regions (Python API)
def _call(kind, value):
    size = SIZE
    return {
        "points": lambda: Region.from_points(value, size),
        "labels": lambda: Region.from_points([[1, 2], [3, 4]], size, value),
        "polygon": lambda: Region.from_polygon(value, size),
        "scribble": lambda: Region.from_scribble(value, size),
        "box": lambda: Region.from_box(value, size),
        "mask": lambda: Region.from_mask(value, size),
        "rle": lambda: Region.from_rle(value, size),
        "dict": lambda: coerce_region(value, size),
        "size": lambda: Region.from_box([0, 0, 1, 1], value),
    }[kind]()


REGIONS = [
    ("points", [1, 2, 3, 4]),                 # a flat list
    ("points", [[1, 2, 3]]),
    ("points", "1,2"),
    ("points", [["a", 2]]),
    ("points", [[1, float("nan")]]),
    ("points", [[1, 2]] * 65),                # points_per_region
    ("points", []),
    ("points", 7),
    ("labels", ["1", "0"]),                   # labels that are not ints
    ("labels", [1, None]),
    ("labels", [1, 0.5]),
    ("labels", [True, False]),
    ("labels", 1),
    ("labels", [1]),
    ("polygon", [1, 2, 3, 4, 5, 6]),          # a flat list
    ("polygon", [[0, 0], [1, 1]]),
    ("polygon", [[0, 0], [10, 0], [10, 10]] * 1400),  # polygon_vertices
    ("polygon", [[0, 0], [10, 0], [1e9, 10]]),
    ("polygon", None),
    ("scribble", [[1, 2], "x"]),
    ("box", [1, 2, 3]),
    ("box", "0,0,10,10"),
    ("box", [10, 10, 5, 5]),
    ("box", [0, 0, 1e9, 10]),
    ("box", None),
    ("mask", [[1, 0], [1]]),                  # ragged
    ("mask", np.zeros((60, 80))),             # empty
    ("mask", np.full((60, 80), 0.5)),
    ("mask", np.ones((60, 80), dtype=object)),
    ("mask", np.ones((61, 80), dtype=bool)),
    ("rle", huge_rle(100_000, 100_000)),      # 10 G pixels declared in a few bytes
    ("rle", huge_rle(8192, 8192)),            # fits the limit, but not the 80 x 60 image
    ("rle", {"size": [60, 80], "counts": "!!!"}),
    ("rle", {"size": [60, 80], "counts": "0"}),
    ("rle", {"size": [60, 80], "counts": [1, 2]}),
    ("rle", {"size": [60, 80], "counts": [-1, 4801]}),
    ("rle", {"size": [60.0, 80], "counts": [4800]}),
    ("rle", {"size": [True, 80], "counts": [4800]}),
    ("rle", {"size": [60, 80], "counts": {"a": 1}}),
    ("rle", {"size": [60, 80]}),
    ("rle", [ONE_PIXEL_RLE]),
    ("dict", {"box": [1, 1, 5, 5], "points": [[1, 1]]}),
    ("dict", {"label": 5, "box": [1, 1, 5, 5]}),
    ("dict", {"score": "high", "box": [1, 1, 5, 5]}),
    ("dict", {"score": 3.0, "box": [1, 1, 5, 5]}),
    ("dict", {"wat": 1}),
    ("dict", 3.5),
    ("size", (60,)),
    ("size", ("60", 80)),
    ("size", (100_000, 100_000)),              # a mask of that size would be allocated
    ("size", None),
]


@pytest.mark.parametrize("kind, value", REGIONS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(REGIONS)])
def test_malformed_regions_raise_region_error(kind, value):
    with pytest.raises(RegionError) as info:
        _call(kind, value)
    assert "\n" not in str(info.value) and str(info.value)


RLE_BOMB_COMPRESSED = {"size": [100_000, 100_000], "counts": "0"}


def test_rle_declared_size_is_checked_before_decoding(monkeypatch):
    from pycocotools import mask as mask_utils

    def no_decode(*a, **k):
        raise AssertionError("pycocotools was asked to expand the mask")
    monkeypatch.setattr(mask_utils, "decode", no_decode)
    monkeypatch.setattr(mask_utils, "frPyObjects", no_decode)
    for bad in (huge_rle(100_000, 100_000), RLE_BOMB_COMPRESSED, {"size": [8192, 8192], "counts": [8192 * 8192]}):
        with pytest.raises(RegionError, match="mask_pixels|does not match"):
            rle_decode(bad, expected_size=SIZE)


# ------------------------------------------------------------------------------- specs and phrases
SPECS = [
    "box:1,2,3", "box:a,b,c,d", "box:", "points:1;2", "points:1,2,0.5", "points:1,2,7", "points:" + ";".join(["1,1"] * 65),
    "polygon:1,1;2,2", "rle:{not json", "rle:[1, 2]", "rle:/nonexistent.json", "mask:/nonexistent.png",
    "circle:1,2,3", "box", "rle:{\"size\": [99999, 99999], \"counts\": [1]}", "points:nan,1",
]


@pytest.mark.parametrize("spec", SPECS)
def test_bad_spec_strings(spec):
    with pytest.raises(RegionError):
        parse_spec(spec, SIZE)


PHRASES = [
    "", " . . ", ["a dog", 3], ["a.dog"], 42, ["x"] * 65, ". ".join(f"thing {i}" for i in range(65)),
    "a" * 300, "a " * 40_000,
]


@pytest.mark.parametrize("phrases", PHRASES, ids=range(len(PHRASES)))
def test_bad_phrases(phrases):
    with pytest.raises(InputError):
        parse_phrases(phrases)


def test_ten_thousand_phrases_are_refused_before_the_detector_runs(tiny_dino_dir):
    from gar_tool.grounding import GroundingDetector

    det = GroundingDetector.from_pretrained(str(tiny_dino_dir), device="cpu")
    calls = []
    det.model.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(InputError, match="phrases_per_call limit of 64"):
        det.detect(rgb(40, 40), [f"thing {i}" for i in range(10_000)])
    assert calls == []


def test_prompt_errors_stay_prompt_errors(tiny_gar):
    with pytest.raises(PromptError):
        tiny_gar.relate(rgb(40, 40), [{"box": [1, 1, 9, 9]}], "Is <Prompt3> red?", max_new_tokens=1)


# ------------------------------------------------------------------------------- mask files
def test_mask_file_limits_and_size_are_checked_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50000, 50000, rows=1))
    other = tmp_path / "other.png"
    other.write_bytes(png_declaring(90, 70))
    text = tmp_path / "mask.txt"
    text.write_text("not a png")
    sixteen = tmp_path / "m16.png"
    arr = np.zeros(SIZE, dtype=np.uint16)
    arr[10:20, 10:30] = 40000
    sixteen.write_bytes(png16_gray(arr))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path, message in ((bomb, "mask_pixels"), (other, "is 90x70 .* but the image is 80x60"),
                              (text, "not a readable image"), (tmp_path / "none.png", "not found")):
            with pytest.raises(RegionError, match=message):
                Region.from_mask_file(path, SIZE)
    assert Region.from_mask_file(sixteen, SIZE).area == 200  # 16-bit masks: non-zero is inside


# ------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-bad")
    (d / "ok.png").write_bytes(png_bytes(rgb(60, 80)))
    (d / "bomb.png").write_bytes(BOMB)
    (d / "maskbomb.png").write_bytes(png_declaring(50000, 50000, rows=1))
    (d / "huge.json").write_text(json.dumps([huge_rle(100_000, 100_000)]))
    (d / "text.png").write_text("plain text")
    return d


CLI = [
    (["describe", "{d}/bomb.png", "--region", "box:1,1,5,5"], "144000000 pixels"),
    (["describe", "{d}/text.png", "--region", "box:1,1,5,5"], "not a readable image"),
    (["describe", "{d}/missing.png", "--region", "box:1,1,5,5"], "not found"),
    (["describe", "{d}/ok.png", "--region", "mask:{d}/maskbomb.png"], "mask_pixels"),
    (["describe", "{d}/ok.png", "--region", "points:1,2,3,4"], "X,Y"),
    (["describe", "{d}/ok.png", "--region", "points:1,2,0.5"], "labels[0]"),
    (["describe", "{d}/ok.png", "--region", "polygon:1,2"], "vertices"),
    (["describe", "{d}/ok.png", "--region", "rle:{{\"size\": [100000, 100000], \"counts\": [1]}}"], "mask_pixels"),
    (["relate", "{d}/ok.png", "<Prompt0>?", "--regions-json", "{d}/huge.json"], "mask_pixels"),
    (["relate", "{d}/ok.png", "<Prompt0>?", "--regions-json", "{d}/text.png"], "not valid JSON"),
    (["describe", "{d}/ok.png", "--region", "box:1,1,5,5", "--model", "{d}/no-model"], "no such checkpoint"),
    (["ground", "{d}/bomb.png", "a dog"], "144000000 pixels"),
    (["ground", "{d}/ok.png", ". ".join(f"t{i}" for i in range(65))], "phrases_per_call"),
    (["ground", "{d}/ok.png", "a" * 300], "phrase_chars"),
    (["serve", "--max-image-pixels", "0"], "positive integer"),
    (["serve", "--body-timeout", "-1"], "positive number"),
    (["mcp", "--allow-dir", "{d}/nowhere"], "is not a directory"),
    (["mcp", "--model", "{d}/no-model"], "no such checkpoint"),
]


@pytest.mark.parametrize("argv, message", CLI, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(CLI)])
def test_cli_bad_input_is_exit_2_and_one_line(files, capsys, argv, message):
    from gar_tool.cli import main

    args = [a.format(d=files) for a in argv]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            code = main(args)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
