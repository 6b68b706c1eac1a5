"""SessionStore: content ids, region ids, LRU eviction by count and bytes, clear errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from gar_tool.regions.region import Region
from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.store import SessionStore, compute_image_id
from tools_support import rgb


def img(seed: int, h: int = 10, w: int = 10) -> Image.Image:
    return Image.fromarray(rgb(h, w, seed))


def box_region(h: int = 10, w: int = 10, x: int = 0, **meta) -> Region:
    return Region.from_box([x, 0, x + 2, 2], (h, w), **meta)


def test_image_id_is_content_hash():
    a = img(1)
    store = SessionStore()
    e1, e2 = store.put_image(a), store.put_image(Image.fromarray(np.asarray(a).copy()))
    assert e1.image_id == e2.image_id == compute_image_id(a)
    assert e1.image_id.startswith("img_") and len(e1.image_id) == 16
    assert store.put_image(img(2)).image_id != e1.image_id
    # same pixels, different shape -> different id
    flat = Image.fromarray(np.asarray(a).reshape(5, 20, 3))
    assert compute_image_id(flat) != e1.image_id
    assert store.stats()["images"] == 2


def test_region_ids_increase_and_are_never_reused():
    store = SessionStore()
    iid = store.put_image(img(1)).image_id
    ids = [store.put_region(iid, box_region(x=i)).id for i in range(3)]
    assert ids == ["r1", "r2", "r3"]
    store.forget(["r3"])
    assert store.put_region(iid, box_region(x=5)).id == "r4"
    got = store.get_region("r2", iid)
    assert got.id == "r2" and got.box == (1.0, 0.0, 3.0, 2.0)
    assert [r.id for r in store.regions_of(iid)] == ["r1", "r2", "r4"]


def test_dedupe_reuses_the_id_of_an_identical_mask_of_the_same_image():
    store = SessionStore()
    a, b = store.put_image(img(1)).image_id, store.put_image(img(2)).image_id
    r1 = store.put_region(a, box_region(), dedupe=True)
    assert store.put_region(a, box_region(), dedupe=True).id == r1.id
    assert store.put_region(a, box_region()).id == "r2"  # detections: always a fresh id
    assert store.put_region(b, box_region(), dedupe=True).id == "r3"  # other image


def test_lru_eviction_by_image_count_evicts_their_regions():
    store = SessionStore(max_images=2)
    a = store.put_image(img(1)).image_id
    store.put_region(a, box_region())
    b = store.put_image(img(2)).image_id
    store.get_image(a)  # a is now the most recently used
    c = store.put_image(img(3)).image_id
    assert store.image_ids() == [a, c]
    with pytest.raises(ToolInputError, match=f"image_id '{b}' has expired"):
        store.get_image(b)
    d = store.put_image(img(4)).image_id  # evicts a and its region r1
    assert store.image_ids() == [c, d]
    with pytest.raises(ToolInputError, match="region id 'r1' has expired"):
        store.get_region("r1")


def test_lru_eviction_by_bytes():
    one = 10 * 10 * 3
    store = SessionStore(max_image_bytes=2 * one + 1)
    ids = [store.put_image(img(i)).image_id for i in range(3)]
    assert store.image_ids() == ids[1:] and store.stats()["image_bytes"] == 2 * one
    big = store.put_image(img(9, 20, 20))  # larger than the whole budget: kept alone
    assert store.image_ids() == [big.image_id]

    store = SessionStore(max_region_bytes=250)  # a 10x10 mask is 100 bytes
    iid = store.put_image(img(1)).image_id
    for x in range(4):
        store.put_region(iid, box_region(x=x))
    assert store.region_ids() == ["r3", "r4"] and store.stats()["region_bytes"] == 200


def test_lru_eviction_by_region_count_and_recency():
    store = SessionStore(max_regions=2)
    iid = store.put_image(img(1)).image_id
    store.put_region(iid, box_region(x=0))
    store.put_region(iid, box_region(x=1))
    store.get_region("r1")  # touch r1: r2 becomes the oldest
    store.put_region(iid, box_region(x=2))
    assert store.region_ids() == ["r1", "r3"]


@pytest.mark.parametrize("rid, message", [
    ("r7", "region id 'r7' is unknown in this session"),
    ("dog", "'dog' is not a region id"),
])
def test_unknown_region_ids(rid, message):
    store = SessionStore()
    with pytest.raises(ToolInputError, match=message) as info:
        store.get_region(rid)
    assert "gar_ground" in str(info.value) and "box" in str(info.value)


@pytest.mark.parametrize("image_id, message", [
    ("img_000000000000", "image_id 'img_000000000000' is unknown in this session"),
    ("img_xyz", "'img_xyz' is not an image_id"),
])
def test_unknown_image_ids(image_id, message):
    with pytest.raises(ToolInputError, match=message) as info:
        SessionStore().get_image(image_id)
    assert "send the image itself again" in str(info.value)


def test_region_with_another_image_is_refused():
    store = SessionStore()
    a, b = store.put_image(img(1)).image_id, store.put_image(img(2)).image_id
    store.put_region(a, box_region())
    with pytest.raises(ToolInputError, match=f"region 'r1' belongs to image {a} \\(10x10\\), not to the image given"):
        store.get_region("r1", b)
    with pytest.raises(ToolInputError, match="region mask is 5x5"):
        store.put_region(a, Region.from_box([0, 0, 2, 2], (5, 5)))


def test_clear_keeps_ids_retired():
    store = SessionStore()
    iid = store.put_image(img(1)).image_id
    store.put_region(iid, box_region())
    store.clear()
    assert store.stats() == {"images": 0, "image_bytes": 0, "regions": 0, "region_bytes": 0}
    with pytest.raises(ToolInputError, match="expired"):
        store.get_region("r1")
    iid = store.put_image(img(1)).image_id
    assert store.put_region(iid, box_region()).id == "r2"


def test_bad_limits():
    with pytest.raises(ValueError, match="max_images must be a positive integer"):
        SessionStore(max_images=0)


def test_concurrent_puts_get_unique_ids():
    store = SessionStore()
    iid = store.put_image(img(1, 40, 40)).image_id
    got: list[str] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for j in range(20):
            r = store.put_region(iid, Region.from_box([k, j, k + 1, j + 1], (40, 40)))
            with lock:
                got.append(r.id)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 160
    assert sorted(int(r[1:]) for r in got) == list(range(1, 161))
