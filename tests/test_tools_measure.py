"""gar_measure geometry on hand-made masks with exact expected values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gar_tool.tools.measure import intersection_area, mask_stats, measure


def rect(h: int, w: int, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """Bool mask with columns x1..x2-1 and rows y1..y2-1 set."""
    m = np.zeros((h, w), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def test_single_rectangle_stats():
    s = mask_stats(rect(10, 20, 2, 3, 6, 5))  # 4 wide, 2 tall
    assert s.area == 8
    assert s.area_fraction == 8 / 200
    assert s.box == (2.0, 3.0, 6.0, 5.0)
    assert s.centroid == (4.0, 4.0)  # centre of the box: pixel centres at 2.5..5.5 and 3.5, 4.5


def test_single_pixel_and_l_shape_centroids():
    assert mask_stats(rect(5, 5, 0, 0, 1, 1)).centroid == (0.5, 0.5)
    m = np.zeros((4, 4), dtype=bool)
    m[0, 0] = m[0, 1] = m[1, 0] = True  # L: pixel centres (0.5,0.5), (1.5,0.5), (0.5,1.5)
    s = mask_stats(m)
    assert s.area == 3 and s.box == (0.0, 0.0, 2.0, 2.0)
    assert s.centroid == pytest.approx((2.5 / 3, 2.5 / 3), abs=1e-12)


def test_pair_relations_disjoint():
    a = rect(10, 20, 0, 0, 4, 4)  # centroid (2, 2)
    b = rect(10, 20, 10, 6, 14, 10)  # centroid (12, 8)
    m = measure([a, b])
    p = m.pairs[0]
    assert (p.a, p.b) == (0, 1)
    assert p.horizontal == "left_of" and p.vertical == "above"
    assert (p.dx, p.dy) == (10.0, 6.0)
    assert p.distance == math.hypot(10, 6)
    assert p.intersection == 0 and p.union == 32 and p.iou == 0.0
    assert p.overlap_fraction == 0.0 and p.a_inside_b == 0.0 and p.b_inside_a == 0.0


def test_pair_relations_overlap_and_containment():
    big = rect(10, 10, 0, 0, 10, 10)  # 100 px, centroid (5, 5)
    small = rect(10, 10, 6, 1, 8, 3)  # 4 px inside big, centroid (7, 2)
    half = rect(10, 10, 8, 0, 10, 4)  # columns 8-9, rows 0-3: 8 px
    m = measure([small, big, half])
    sb, sh, bh = m.pairs  # (small, big), (small, half), (big, half)
    assert (sb.a, sb.b, sh.a, sh.b, bh.a, bh.b) == (0, 1, 0, 2, 1, 2)
    assert sb.horizontal == "right_of" and sb.vertical == "above"  # small is right of and above big's centre
    assert (sb.dx, sb.dy) == (-2.0, 3.0)
    assert sb.intersection == 4 and sb.union == 100
    assert sb.iou == 0.04 and sb.overlap_fraction == 1.0 and sb.a_inside_b == 1.0 and sb.b_inside_a == 0.04
    assert sh.intersection == 0  # columns 6-7 vs 8-9
    assert bh.intersection == 8 and bh.iou == 8 / 100 and bh.a_inside_b == 8 / 100 and bh.b_inside_a == 1.0


def test_same_centroid_and_orderings_keep_list_order_on_ties():
    a = rect(10, 10, 2, 2, 6, 6)  # centroid (4, 4)
    b = rect(10, 10, 3, 3, 5, 5)  # centroid (4, 4)
    c = rect(10, 10, 0, 8, 2, 10)  # centroid (1, 9)
    m = measure([a, b, c])
    ab = m.pairs[0]
    assert ab.horizontal == "same_x" and ab.vertical == "same_y" and ab.distance == 0.0
    assert ab.a_inside_b == 4 / 16 and ab.b_inside_a == 1.0 and ab.iou == 4 / 16
    assert m.left_to_right == [2, 0, 1]
    assert m.top_to_bottom == [0, 1, 2]
    assert len(m.pairs) == 3 and m.image_size == (10, 10)


def test_intersection_only_counts_inside_both_boxes():
    a, b = rect(8, 8, 0, 0, 5, 5), rect(8, 8, 3, 3, 8, 8)
    assert intersection_area(a, b, mask_stats(a).box, mask_stats(b).box) == 4
    assert int((a & b).sum()) == 4


@pytest.mark.parametrize("masks, message", [
    ([], "at least one mask"),
    ([np.zeros((3, 3), dtype=bool)], "empty mask"),
    ([np.ones((3, 3), dtype=np.uint8)], "2-D bool array"),
    ([np.ones((3, 3), dtype=bool), np.ones((3, 4), dtype=bool)], "different shapes"),
])
def test_bad_masks(masks, message):
    with pytest.raises(ValueError, match=message):
        measure(masks)
