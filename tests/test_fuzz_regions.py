"""Property-based fuzzing (hypothesis) of region parsing, RLE decoding and region-spec strings:
whatever arrives, the answer is a Region or a RegionError / InputError — no other exception, no
allocation beyond the image. Bounded in time: a fixed number of examples per test, no deadline
flakiness on a loaded machine, the example database off (nothing written to the checkout)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gar_tool.errors import InputError
from gar_tool.regions.forms import coerce_region, parse_spec
from gar_tool.regions.region import Region
from gar_tool.regions.rle import rle_decode, rle_encode, runs_total

SIZE = (24, 32)  # (H, W): small, so a wrongly accepted input cannot cost much
FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.integers(-50, 80), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.just(1e300), st.booleans())
scalars = st.one_of(numbers, st.text(max_size=4), st.none())
json_like = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                         max_leaves=25)
pairs = st.lists(st.one_of(st.lists(numbers, min_size=0, max_size=3), numbers, st.text(max_size=3)), max_size=8)


def _accepts(fn):
    """Call ``fn``; a Region is fine, an InputError (RegionError, ...) is fine, anything else fails."""
    try:
        out = fn()
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert isinstance(out, Region) and out.mask.shape == SIZE and out.mask.any()
    return out


@FUZZ
@given(st.dictionaries(st.sampled_from(["box", "points", "labels", "polygon", "scribble", "rle", "mask", "label",
                                        "score", "id", "size", "counts"]), json_like, max_size=4))
def test_region_dicts(d):
    _accepts(lambda: coerce_region(d, SIZE))


@FUZZ
@given(pairs, st.one_of(st.none(), st.lists(scalars, max_size=8), scalars))
def test_points_and_labels(points, labels):
    _accepts(lambda: Region.from_points(points, SIZE, labels))


@FUZZ
@given(pairs)
def test_polygons_and_scribbles(points):
    _accepts(lambda: Region.from_polygon(points, SIZE))
    _accepts(lambda: Region.from_scribble(points, SIZE))


@FUZZ
@given(st.one_of(json_like, st.lists(numbers, max_size=6)))
def test_boxes(box):
    _accepts(lambda: Region.from_box(box, SIZE))


spec_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda kind, body: f"{kind}:{body}", st.sampled_from(["box", "points", "polygon", "scribble", "rle",
                                                                     "mask", "BOX", " points "]),
              st.text(alphabet="0123456789.,;-+eE naif{}[]\":", max_size=40)),
)


@FUZZ
@given(spec_text)
def test_spec_strings(spec):
    _accepts(lambda: parse_spec(spec, SIZE))


@FUZZ
@given(st.one_of(st.binary(max_size=40), st.text(alphabet="0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                                                           "abcdefghijklmno", max_size=40)),
       st.one_of(st.just([24, 32]), st.lists(st.integers(-3, 10**6), min_size=0, max_size=3), json_like))
def test_compressed_rle(counts, size):
    _accepts(lambda: Region.from_rle({"size": size, "counts": counts}, SIZE))


@FUZZ
@given(st.lists(st.one_of(st.integers(-5, 10**12), st.floats(), st.text(max_size=2)), max_size=12))
def test_uncompressed_rle(counts):
    _accepts(lambda: Region.from_rle({"size": list(SIZE), "counts": counts}, SIZE))


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 7))
def test_rle_round_trip_and_run_total(seed, h, w):
    """For every real mask, our run total of pycocotools' encoding is exactly h*w and decoding gives
    the mask back (so the pre-decode check never refuses a valid RLE)."""
    mask = np.random.RandomState(seed).rand(h, w) < 0.5
    enc = rle_encode(mask)
    assert runs_total(enc["counts"].encode("ascii")) == h * w
    assert np.array_equal(rle_decode(enc), mask)
