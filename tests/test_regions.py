"""Region prompts: every constructor, the canonical form, and the errors users will hit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gar_tool.errors import RegionError
from gar_tool.regions.forms import coerce_region, coerce_regions, load_regions_json, parse_spec
from gar_tool.regions.region import Region, Regions
from gar_tool.regions.rle import rle_decode, rle_encode

SIZE = (60, 80)  # (H, W)


def _mask(y0, y1, x0, x1, size=SIZE):
    m = np.zeros(size, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("arr", [
    _mask(5, 10, 20, 30),
    _mask(5, 10, 20, 30).astype(np.uint8),
    _mask(5, 10, 20, 30).astype(np.uint8) * 255,
    _mask(5, 10, 20, 30).astype(np.float32),
    _mask(5, 10, 20, 30).astype(np.int64),
])
def test_from_mask_accepts_common_encodings(arr):
    r = Region.from_mask(arr, SIZE)
    assert r.mask.dtype == np.bool_ and r.mask.shape == SIZE
    assert r.box == (20.0, 5.0, 30.0, 10.0)  # x2/y2 exclusive
    assert r.area == 50


@pytest.mark.parametrize("arr, size, message", [
    (np.zeros(SIZE, bool), SIZE, "empty"),
    (_mask(0, 5, 0, 5), (61, 80), "does not match"),
    (np.full(SIZE, np.nan), SIZE, "NaN"),
    (np.full(SIZE, 0.5), SIZE, "only 0 and 1"),
    (np.zeros((2, 3, 4, 5), bool), SIZE, "2-D"),
    (np.array([["a"]]), None, "dtype"),
])
def test_from_mask_rejects(arr, size, message):
    with pytest.raises(RegionError, match=message):
        Region.from_mask(arr, size)


def test_rle_round_trip_compressed_and_uncompressed():
    m = _mask(3, 40, 7, 61)
    rle = rle_encode(m)
    assert isinstance(rle["counts"], str) and rle["size"] == list(SIZE)
    assert (Region.from_rle(rle, SIZE).mask == m).all()
    # Uncompressed: column-major run lengths starting with a zero-run.
    flat = m.flatten(order="F").astype(int)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    assert (rle_decode({"size": list(SIZE), "counts": runs}) == m).all()


@pytest.mark.parametrize("rle, message", [
    ({"size": [60, 80]}, "one dict"),
    ([{"size": [1, 1], "counts": "1"}], "regions-json"),
    ({"size": [60], "counts": "abc"}, "size"),
    ({"size": [60, 80], "counts": ""}, "not a COCO encoding"),
    ({"size": [60, 80], "counts": "\u00ff\u00ff"}, "alphabet"),
    ({"size": [60, 80], "counts": [1, 2, 3]}, "sum to 6"),
    ({"size": [60, 80], "counts": 17}, "string or a list"),
])
def test_malformed_rle(rle, message):
    with pytest.raises(RegionError, match=message):
        rle_decode(rle)


def test_box_is_its_rectangle_without_segmenter():
    r = Region.from_box([10.5, 4, 20, 9.2], SIZE)
    assert r.source == "box-rect"
    assert r.box == (10.0, 4.0, 20.0, 10.0)  # every pixel the box touches


@pytest.mark.parametrize("box, message", [
    ([10, 10, 5, 20], "inverted"),
    ([10, 10, 10, 20], "empty or inverted"),
    ([-1, 0, 5, 5], "outside"),
    ([0, 0, 81, 5], "outside"),
    ([0, 0, float("nan"), 5], "non-finite"),
    ([0, 0, 5], "4 numbers"),
    (["a", 0, 5, 5], "not a number"),
])
def test_bad_boxes(box, message):
    with pytest.raises(RegionError, match=message):
        Region.from_box(box, SIZE)


def test_points_become_discs_and_negative_points_are_ignored():
    r = Region.from_points([[40, 30], [5, 5]], SIZE, labels=[1, 0], radius=4)
    assert r.source == "points-disc"
    assert r.mask[30, 40] and r.mask[30, 44] and not r.mask[30, 45]
    assert not r.mask[5, 5]
    with pytest.raises(RegionError, match="outside"):
        Region.from_points([[80, 10]], SIZE)
    with pytest.raises(RegionError, match="positive"):
        Region.from_points([[10, 10]], SIZE, labels=[0])
    with pytest.raises(RegionError, match="labels"):
        Region.from_points([[10, 10]], SIZE, labels=[1, 1])


def test_polygon_and_scribble():
    poly = Region.from_polygon([[10, 10], [50, 10], [50, 40], [10, 40]], SIZE)
    assert poly.box == (10.0, 10.0, 51.0, 41.0)
    stroke = Region.from_scribble([[5, 50], [70, 50]], SIZE, width=3)
    assert stroke.mask[50, 40] and not stroke.mask[10, 40]
    with pytest.raises(RegionError, match="at least 3"):
        Region.from_polygon([[1, 1], [2, 2]], SIZE)


def test_segmenter_is_used_for_boxes_when_given():
    calls = []

    class FakeSegmenter:
        def segment(self, image, boxes=None, points=None, point_labels=None):
            calls.append((boxes, points, point_labels))
            return Regions([Region.from_mask(_mask(1, 2, 1, 2), source="sam")])

    r = Region.from_box([0, 0, 10, 10], SIZE, image="img", segmenter=FakeSegmenter(), label="cup")
    assert r.area == 1 and r.label == "cup" and calls == [([[0.0, 0.0, 10.0, 10.0]], None, None)]
    with pytest.raises(RegionError, match="needs the image"):
        Region.from_box([0, 0, 10, 10], SIZE, segmenter=FakeSegmenter())


def test_mask_file_and_specs(tmp_path):
    m = _mask(10, 20, 30, 50)
    Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / "m.png")
    rle_path = tmp_path / "r.json"
    rle_path.write_text(json.dumps(rle_encode(m)))
    for spec in (f"mask:{tmp_path / 'm.png'}", f"rle:{rle_path}", f"rle:{json.dumps(rle_encode(m))}",
                 "box:30,10,50,20", "polygon:30,10;49,10;49,19;30,19"):
        assert (parse_spec(spec, SIZE).mask == m).all(), spec
    pts = parse_spec("points:40,15;0,0,0", SIZE)
    assert pts.mask[15, 40] and not pts.mask[0, 0]
    (tmp_path / "list.json").write_text(json.dumps([rle_encode(m), rle_encode(~m)]))
    regs = load_regions_json(tmp_path / "list.json", SIZE)
    assert len(regs) == 2 and regs.masks.shape == (2, *SIZE)


@pytest.mark.parametrize("spec, message", [
    ("box", "KIND:VALUE"),
    ("circle:1,2,3", "unknown region kind"),
    ("mask:/nonexistent.png", "not found"),
    ("rle:{not json", "not valid JSON"),
    ("points:1;2", "X,Y"),
])
def test_bad_specs(spec, message):
    with pytest.raises(RegionError, match=message):
        parse_spec(spec, SIZE)


def test_wire_dicts_and_regions_collection():
    m = _mask(0, 10, 0, 10)
    regs = coerce_regions([{"box": [0, 0, 10, 10], "label": "a"}, {"rle": rle_encode(m)}, rle_encode(m),
                           {"points": [[5, 5]], "labels": [1]}, {"polygon": [[0, 0], [9, 0], [9, 9]]}, m], SIZE)
    assert len(regs) == 6 and regs[0].label == "a"
    assert regs.boxes.shape == (6, 4)
    assert len(regs[np.array([True, False, True, False, False, False])]) == 2
    with pytest.raises(RegionError, match="exactly one"):
        coerce_region({"box": [0, 0, 1, 1], "points": [[0, 0]]}, SIZE)
    with pytest.raises(RegionError, match="different sizes"):
        Regions([Region.from_mask(m), Region.from_mask(_mask(0, 1, 0, 1, (5, 5)))])
    with pytest.raises(RegionError, match="image is"):
        coerce_region(Region.from_mask(m), (5, 5))
