"""The small GAR trained here (``examples/shapes-gar``) answers about new shapes-world scenes,
through the Python API, the four tools and the HTTP server, with nothing downloaded.

The scenes are drawn with a seed no training or benchmark data used; each check scores many
answers against the scene's own geometry, with a bar below what the model measured (its
evaluation table is in ``examples/shapes-gar/TRAINING.md``), so a broken load, prompt or
preprocessing path fails here.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from conftest import REPO
from gar_tool.regions.rle import rle_encode
from gar_tool.shapes import SHAPES_DETECTOR
from gar_tool.shapes.questions import pair_items, single_items
from gar_tool.shapes.world import sample_scene
from tools_support import b64, png_bytes

MODEL = REPO / "examples" / "shapes-gar"
# Bars: the shares these checks measured with the shipped model, less a margin (TRAINING.md).
DESCRIBE_BAR = 0.45  # whole caption "a small green circle" (measured 22/37; the shape word is the weak part)
SIZE_COLOUR_BAR = 0.9  # its size and colour words (measured 37/37)
SINGLE_BAR = 0.75  # colour / shape / size short answers (measured 76/90)
BIGGER_BAR = 0.65  # "Is <Prompt0> bigger than <Prompt1>?" (measured 14/18)
TOOLS_BAR = 0.7  # gar_describe + gar_relate answers after gar_ground (measured 65/81)
SEED = 20261201  # not a seed of the training records or the benchmarks


def _scenes(n: int):
    rng = np.random.default_rng(SEED)
    return [sample_scene(rng) for _ in range(n)], rng


@pytest.fixture(scope="module")
def gar():
    from gar_tool import GAR

    return GAR.from_pretrained(str(MODEL), device="cpu")


def test_the_shipped_model_is_small_and_in_the_released_layout():
    files = {p.name for p in MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= files
    assert (MODEL / "model.safetensors").stat().st_size < 20 * 2 ** 20
    cfg = json.loads((MODEL / "config.json").read_text())
    assert cfg["model_type"] == "GAR" and cfg["roi_double_scale"] is False


def test_describe_names_colour_shape_and_size(gar):
    scenes, _ = _scenes(12)
    asked = [(r, k) for r in scenes for k in range(len(r.scene.shapes))]
    answers = gar.describe([r.image for r, _ in asked], [{"mask": r.masks[k]} for r, k in asked],
                           max_new_tokens=8)
    right = sum(a.text.strip() == r.scene.shapes[k].caption for a, (r, k) in zip(answers, asked))
    parts = sum(a.text.split()[1:3] == r.scene.shapes[k].caption.split()[1:3] for a, (r, k) in zip(answers, asked))
    print(f"describe: {right}/{len(asked)}, size and colour {parts}/{len(asked)}")
    assert right / len(asked) >= DESCRIBE_BAR, (right, len(asked), [a.text for a in answers[:6]])
    assert parts / len(asked) >= SIZE_COLOUR_BAR, (parts, len(asked))


def test_relate_answers_single_region_and_bigger_questions(gar):
    """Short answers. The two-region kinds other than ``bigger`` are at chance level for this
    model (TRAINING.md), so they are not asked here."""
    scenes, rng = _scenes(30)
    items = []
    for r in scenes:
        items += [(r, it) for it in single_items(r, int(rng.integers(len(r.scene.shapes))), rng)]
        if len(r.scene.shapes) >= 2:
            i, j = (int(v) for v in rng.choice(len(r.scene.shapes), size=2, replace=False))
            items += [(r, it) for it in pair_items(r, i, j, rng) if it.kind == "bigger"]
    for arity, bar in ((1, SINGLE_BAR), (2, BIGGER_BAR)):
        chosen = [(r, it) for r, it in items if it.arity == arity]
        answers = gar.relate([r.image for r, _ in chosen], [[{"mask": r.masks[k]} for k in it.shapes] for r, it in chosen],
                             [it.open_question for _, it in chosen], max_new_tokens=4)
        right = sum(a.text.strip() == it.open_answer for a, (_, it) in zip(answers, chosen))
        print(f"arity {arity}: {right}/{len(chosen)}")
        assert len(chosen) >= 15 and right / len(chosen) >= bar, (arity, right, len(chosen))


def test_the_four_tools_work_offline_on_a_scene():
    from gar_tool.tools import GARToolkit, ImageInputConfig

    kit = GARToolkit.load(model=str(MODEL), detector=SHAPES_DETECTOR, inputs=ImageInputConfig(allowed_roots=[]),
                          max_new_tokens=8)
    assert {"gar_describe", "gar_relate", "gar_ground", "gar_measure"} <= set(kit.available_tools())
    scenes, rng = _scenes(40)
    right = asked = 0
    for r in scenes:
        shapes = r.scene.shapes
        if len(shapes) < 2 or len({(s.colour, s.kind) for s in shapes}) < len(shapes):
            continue  # every shape named uniquely by colour and kind
        a, b = shapes[0], shapes[1]
        found = kit.call("gar_ground", {"image": b64(png_bytes(r.image)), "phrases": f"{a.colour} {a.kind}. {b.colour} {b.kind}"}
                         ).artifact
        ids = {reg.label: reg.id for reg in found.regions}
        if set(ids) != {f"{a.colour} {a.kind}", f"{b.colour} {b.kind}"}:
            continue  # the classical detector missed one (its own test scores it)
        said = kit.call("gar_describe", {"image": found.image_id, "region": ids[f"{a.colour} {a.kind}"]}).artifact
        right += said.description.strip() == a.caption
        asked += 1
        rel = kit.call("gar_relate", {"image": found.image_id, "question": "What colour is <Prompt0>?",
                                      "regions": [ids[f"{b.colour} {b.kind}"]]}).artifact
        right += rel.answer.strip() == b.colour
        asked += 1
        for it in pair_items(r, 0, 1, rng):
            if it.kind == "bigger":  # when the answer is clear
                rel = kit.call("gar_relate", {"image": found.image_id, "question": it.open_question,
                                              "regions": [ids[f"{a.colour} {a.kind}"], ids[f"{b.colour} {b.kind}"]]}).artifact
                right += rel.answer.strip() == it.open_answer
                asked += 1
        m = kit.call("gar_measure", {"image": found.image_id, "regions": list(ids.values())}).artifact
        assert len(m.regions) == 2
    print(f"tools: {right}/{asked}")
    assert asked >= 20 and right / asked >= TOOLS_BAR, (right, asked)


def test_gar_serve_answers_over_http():
    from gar_tool.integrations.http.server import create_app
    from gar_tool.tools import GARToolkit, ImageInputConfig

    kit = GARToolkit.load(model=str(MODEL), inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=8)
    scenes, _ = _scenes(24)

    async def go():
        transport = httpx.ASGITransport(app=create_app(kit))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            out = []
            for r in scenes:
                resp = await c.post("/v1/describe", json={"image": b64(png_bytes(r.image)), "region": {"rle": rle_encode(r.masks[0])}})
                assert resp.status_code == 200, resp.text
                said = resp.json()["output"]["description"].split()
                out.append(said[1:3] == r.scene.shapes[0].caption.split()[1:3])  # size and colour
            return out

    hits = asyncio.run(go())
    print(f"http: {sum(hits)}/{len(hits)}")
    assert sum(hits) / len(hits) >= SIZE_COLOUR_BAR, hits
