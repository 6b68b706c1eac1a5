"""Training records: both formats load; every bad record gives the documented error (record and
field named), is fatal by default and is skipped and counted on request."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from gar_tool.errors import InputError
from gar_tool.regions.rle import rle_encode
from gar_tool.training.encoding import ConversationEncoder
from gar_tool.training.records import RecordError, load_records
from train_support import shapes_ckpt  # noqa: F401  (fixture)

H, W = 60, 80


@pytest.fixture(scope="module")
def check(shapes_ckpt):  # noqa: F811
    from gar_tool.gar.processing import GARProcessor

    return ConversationEncoder(GARProcessor.from_pretrained(shapes_ckpt)).validator(max_length=400)


def _mask(x1, y1, x2, y2):
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return m


def good_record() -> dict:
    return {"image": "img.png",
            "regions": [rle_encode(_mask(5, 5, 20, 20)), {"box": [40, 10, 70, 50]}],
            "conversations": [{"from": "human", "value": "Is <Prompt0> to the left of <Prompt1>?"},
                              {"from": "gpt", "value": "yes"}]}


def _write(tmp_path, records) -> str:
    Image.fromarray(np.full((H, W, 3), 200, np.uint8)).save(tmp_path / "img.png")
    path = tmp_path / "train.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def _edit(**changes):
    rec = good_record()
    for key, value in changes.items():
        if value is _DROP:
            rec.pop(key)
        else:
            rec[key] = value
    return rec


_DROP = object()
_TURNS = good_record()["conversations"]

# (case, record, field named in the error, words the message must contain)
BAD = [
    ("no image", _edit(image=_DROP), "image", "missing"),
    ("image file missing", _edit(image="nope.png"), "image", "file not found"),
    ("image not a picture", _edit(image="train.jsonl"), "image", "not a readable image"),
    ("bad data uri", _edit(image="data:image/png;base64,@@@"), "image", "malformed data URI"),
    ("no regions", _edit(regions=_DROP), "mask_rle", "neither"),
    ("both region fields", _edit(mask_rle=[rle_encode(_mask(1, 1, 4, 4))]), "mask_rle", "exactly one"),
    ("empty region list", _edit(regions=[]), "regions", "non-empty list"),
    ("rle of another size", _edit(regions=[rle_encode(np.ones((10, 10), bool)), {"box": [1, 1, 5, 5]}]),
     "regions", "does not match the image"),
    ("malformed rle", _edit(regions=[{"size": [H, W], "counts": "zz"}, {"box": [1, 1, 5, 5]}]), "regions", "RLE"),
    ("box outside", _edit(regions=[{"box": [1, 1, 5, 5]}, {"box": [70, 10, 500, 50]}]), "regions", "box"),
    ("no conversations", _edit(conversations=_DROP), "conversations", "missing"),
    ("turn without value", _edit(conversations=[{"from": "human"}]), "conversations", "turn 0"),
    ("unknown role", _edit(conversations=[{"from": "system", "value": "x"}] + _TURNS), "conversations", "turn 0"),
    ("two human turns", _edit(conversations=[_TURNS[0], _TURNS[0], _TURNS[1]]), "conversations", "expected 'gpt'"),
    ("ends with human", _edit(conversations=_TURNS + [_TURNS[0]]), "conversations", "ends with a human turn"),
    ("empty answer", _edit(conversations=[_TURNS[0], {"from": "gpt", "value": " "}]), "conversations", "empty"),
    ("unknown prompt", _edit(conversations=[{"from": "human", "value": "Is <Prompt2> red?"}, _TURNS[1]]),
     "conversations", "<Prompt2>"),
    ("unnamed region", _edit(conversations=[{"from": "human", "value": "Is <Prompt0> red?"}, _TURNS[1]]),
     "conversations", "never named"),
    ("caption with two regions", _edit(conversations=[{"from": "human", "value": "Describe it."}, _TURNS[1]]),
     "conversations", "names no region"),
    ("too many regions", _edit(regions=[{"box": [k, 0, k + 2, 2]} for k in range(0, 12, 2)],
                               conversations=[{"from": "human", "value": " ".join(f"<Prompt{k}>" for k in range(6))},
                                              _TURNS[1]]), "conversations", "5 region slots"),
    ("special token in text", _edit(conversations=[
        {"from": "human", "value": "<Prompt0> <|image|> <Prompt1>"}, _TURNS[1]]), "conversations", "special tokens"),
    ("too long", _edit(conversations=[_TURNS[0], {"from": "gpt", "value": "yes " * 500}]), "length", "more than"),
]


@pytest.mark.parametrize("case,record,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_record_is_fatal_and_named(tmp_path, check, case, record, field, words):
    path = _write(tmp_path, [good_record(), record])
    with pytest.raises(RecordError) as info:
        load_records(path, check)
    err = info.value
    assert isinstance(err, InputError)
    assert err.where == "train.jsonl line 2" and err.field == field
    assert str(err).startswith(f"train.jsonl line 2: field {field!r}: ")
    assert words in str(err), str(err)


def test_bad_records_are_skipped_and_counted(tmp_path, check):
    records = [good_record(), BAD[1][1], "{not json", good_record(), BAD[-1][1], BAD[13][1]]
    out = load_records(_write(tmp_path, records), check, on_error="skip")
    assert [r.where for r in out.records] == ["train.jsonl line 1", "train.jsonl line 4"]
    assert out.skipped == {"image": 1, "<json>": 1, "length": 1, "conversations": 1}
    assert out.num_skipped == 4 and len(out.errors) == 4
    assert out.errors[1].startswith("train.jsonl line 3: field '<json>': not valid JSON")
    assert "skipped 4" in out.summary()


def test_nothing_usable_is_an_error(tmp_path, check):
    with pytest.raises(InputError, match="no usable training record.*1 skipped"):
        load_records(_write(tmp_path, [BAD[0][1]]), check, on_error="skip")


def test_not_a_data_source(tmp_path, check):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="datasets folder .* or a .jsonl manifest"):
        load_records(tmp_path / "x.csv", check)
    with pytest.raises(InputError, match="not a datasets folder"):
        load_records(tmp_path, check)


def test_record_lengths_and_region_forms(tmp_path, check):
    rec = good_record()
    rec["regions"][1] = "box:40,10,70,50"  # a CLI spec string is a region form too
    mask_png = tmp_path / "m.png"
    Image.fromarray((_mask(30, 30, 50, 55) * 255).astype(np.uint8)).save(mask_png)
    caption = {"image": "img.png", "regions": ["mask:m.png"],  # relative to the manifest
               "conversations": [{"from": "human", "value": "Describe this masked region in detail."},
                                 {"from": "gpt", "value": "a small red square"}]}
    out = load_records(_write(tmp_path, [rec, caption]), check)
    assert len(out.records) == 2 and not out.skipped
    a, b = out.records
    assert a.size == (H, W) and len(a.regions) == 2 and a.length > 0
    assert b.load_regions()[0].box == (30.0, 30.0, 50.0, 55.0)
    assert np.asarray(a.load_image()).shape == (H, W, 3)


def test_datasets_folder_in_the_original_format(tmp_path, check):
    """A save_to_disk folder with GAR's columns (image feature, mask_rle as a list or a single
    dict, conversations) gives the same records as the JSONL manifest."""
    import datasets

    img = np.full((H, W, 3), 200, np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    rec = good_record()
    rles = [rle_encode(_mask(5, 5, 20, 20)), rle_encode(_mask(40, 10, 70, 50))]
    ds = datasets.Dataset.from_dict({"image": [str(tmp_path / "img.png")], "mask_rle": [rles],
                                     "conversations": [rec["conversations"]]})
    ds = ds.cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "ds"))
    got = load_records(tmp_path / "ds", check)
    assert len(got.records) == 1 and got.records[0].where == "ds row 0"
    rec["regions"] = copy.deepcopy(rles)
    want = load_records(_write(tmp_path, [rec]), check).records[0]
    assert got.records[0].length == want.length
    np.testing.assert_array_equal(got.records[0].load_regions().masks, want.load_regions().masks)
    np.testing.assert_array_equal(np.asarray(got.records[0].load_image()), img)
