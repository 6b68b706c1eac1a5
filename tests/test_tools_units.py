"""Tools as units: the registry, calls run together (``call_many``) with the results of one at a
time, GAR calls of concurrent tools micro-batched, the zoom tool, and the typed components."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gar_tool.gar.batching import MicroBatcher
from gar_tool.limits import limit
from gar_tool.tools import Detector, GARToolkit, ImageInputConfig, Segmenter, ToolFailure, ToolInputError
from gar_tool.tools.builtin.zoom import MAX_ZOOM, OUTLINE, crop_box
from gar_tool.tools.registry import TOOLS, get_tool
from gar_tool.tools.specs import TOOL_NAMES
from gar_tool.tools.unit import ToolUnit
from tools_support import FakeDetector, FakeGAR, FakeSegmenter, b64, png_bytes, rgb

H, W = 90, 120
ARR = rgb(H, W, 11)
IMAGE = b64(png_bytes(ARR))
NO_PATHS = ImageInputConfig(allowed_roots=[])


def kit(**kw) -> GARToolkit:
    det = FakeDetector({"a cup": [([5, 5, 40, 40], 0.9), ([60, 10, 90, 50], 0.5)], "a plate": [([10, 50, 110, 85], 0.8)]})
    kw.setdefault("gar", FakeGAR())
    return GARToolkit(detector=kw.pop("detector", det), inputs=NO_PATHS, max_new_tokens=3, **kw)


def test_registry_has_one_unit_per_tool_and_no_method_dispatch():
    assert tuple(TOOLS) == TOOL_NAMES and all(isinstance(u, ToolUnit) for u in TOOLS.values())
    assert all(get_tool(n).spec.name == n for n in TOOL_NAMES)
    with pytest.raises(ToolInputError, match="unknown tool 'describe'; tools are gar_describe"):
        GARToolkit().call("describe", {})  # a method name is not a tool name
    assert isinstance(FakeDetector({}), Detector) and isinstance(FakeSegmenter(), Segmenter)


CALLS = [
    ("gar_ground", {"image": IMAGE, "phrases": "a cup. a plate."}),
    ("gar_describe", {"image": IMAGE, "region": {"box": [1, 1, 30, 30]}}),
    ("gar_relate", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}, {"box": [50, 40, 100, 80]}],
                    "question": "Is <Prompt0> above <Prompt1>?"}),
    ("gar_describe", {"image": IMAGE, "region": "r77"}),                       # unknown id: an error
    ("gar_fly", {}),                                                           # unknown tool: an error
    ("gar_measure", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}, {"polygon": [[60, 60], [90, 60], [75, 85]]}]}),
    ("gar_ground", {"image": IMAGE, "phrases": ["a plate"]}),
    ("gar_zoom", {"image": IMAGE, "region": {"box": [50, 40, 100, 80]}}),
]


def _view(outcome):
    if isinstance(outcome, Exception):
        return type(outcome).__name__, str(outcome)
    return outcome.tool, outcome.content, outcome.structured(), outcome.image and outcome.image.data


def test_call_many_gives_the_results_of_one_at_a_time_in_order():
    one_kit, many_kit = kit(), kit()
    one = []
    for name, args in CALLS:
        try:
            one.append(one_kit.call(name, args))
        except (ToolInputError, ToolFailure) as err:
            one.append(err)
    seen = []
    many = many_kit.call_many(CALLS, on_result=lambda i, o: seen.append(i))
    assert [_view(o) for o in many] == [_view(o) for o in one]
    assert seen == list(range(len(CALLS)))
    ids = [r["id"] for o in many if not isinstance(o, Exception) for r in o.structured().get("regions", [])]
    assert ids[:3] == ["r1", "r2", "r3"]  # detections of the first call got the first ids, as one at a time
    assert isinstance(many[3], ToolInputError) and isinstance(many[4], ToolInputError)
    assert many_kit.store.region_ids() == one_kit.store.region_ids()


def test_concurrent_gar_calls_share_a_batch_and_answer_as_alone(tiny_gar):
    from gar_tool import GAR

    calls = [("gar_describe", {"image": IMAGE, "region": {"box": [1, 1, 30, 30]}}),
             ("gar_describe", {"image": IMAGE, "region": {"box": [50, 40, 100, 80]}, "instruction": "What colour?"}),
             ("gar_relate", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}, {"box": [50, 40, 100, 80]}],
                             "question": "Is <Prompt0> above <Prompt1>?"})]
    alone = GARToolkit(GAR(tiny_gar.model, tiny_gar.processor), inputs=NO_PATHS, max_new_tokens=4)
    expected = [alone.call(n, a).structured() for n, a in calls]
    batcher = MicroBatcher(GAR(tiny_gar.model, tiny_gar.processor), max_batch=8, max_wait=0.05)
    try:
        together = GARToolkit(batcher, inputs=NO_PATHS, max_new_tokens=4).call_many(calls)
        assert batcher.batches_run == 1
    finally:
        batcher.close()
    assert [o.structured() for o in together] == expected


def test_call_many_asks_gar_once_for_all_its_questions_even_without_a_batcher():
    k = kit()
    out = k.call_many([("gar_describe", {"image": IMAGE, "region": {"box": [1, 1, 30, 30]}}),
                       ("gar_measure", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}]}),
                       ("gar_relate", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}, {"box": [50, 40, 100, 80]}],
                                       "question": "Is <Prompt0> above <Prompt1>?"}),
                       ("gar_describe", {"image": IMAGE, "region": {"box": [50, 40, 100, 80]}})])
    (only,) = k.gar.calls  # one answer() call: the two describes and the relate together
    assert only[1]["questions"] == [None, "Is <Prompt0> above <Prompt1>?", None]
    assert [o.artifact.description for o in (out[0], out[3])] == ["region of 841 px", "region of 2000 px"]
    assert out[2].artifact.answer == "saw 2: Is <Prompt0> above <Prompt1>?"


class _FailsOnRelate(FakeGAR):
    def answer(self, requests, options=None):
        if any(r.question is not None for r in requests):
            raise RuntimeError("relate broke")
        return super().answer(requests, options)


def test_a_failure_of_the_shared_gar_call_stays_with_the_call_that_caused_it():
    k = kit(gar=_FailsOnRelate())
    out = k.call_many([("gar_describe", {"image": IMAGE, "region": {"box": [1, 1, 30, 30]}}),
                       ("gar_relate", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}], "question": "Is <Prompt0> red?"})])
    assert out[0].artifact.description == "region of 841 px"
    assert isinstance(out[1], ToolFailure) and "relate broke" in str(out[1])


def test_a_model_failure_in_call_many_stays_with_its_call():
    k = kit(gar=FakeGAR(fail=RuntimeError("device lost")))
    out = k.call_many([("gar_describe", {"image": IMAGE, "region": {"box": [1, 1, 30, 30]}}),
                       ("gar_measure", {"image": IMAGE, "regions": [{"box": [1, 1, 30, 30]}]})])
    assert isinstance(out[0], ToolFailure) and "the model failed (RuntimeError: device lost)" in str(out[0])
    assert isinstance(out[0].__cause__, RuntimeError) and out[1].artifact.geometry[0].area_px == 29 * 29


def _jpeg(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    return np.asarray(img.convert("RGB"))


def test_zoom_returns_the_outlined_crop_as_image_content():
    k = kit(gar=None, detector=None)
    res = k.zoom({"image": IMAGE, "region": {"box": [40, 30, 60, 50]}, "padding": 0.5})
    out = res.artifact
    assert out.crop_box == [30, 20, 70, 60] and out.region.id == "r1" and out.mime_type == "image/jpeg"
    assert out.scale == MAX_ZOOM and (out.width, out.height) == (160, 160)  # a small crop is enlarged 4x
    pixels = _jpeg(res.image.data)
    assert pixels.shape == (160, 160, 3)
    edge = pixels[40, 40:120]  # the top edge of the box, 40 px into the picture (10 image px * 4)
    assert np.abs(edge.astype(int) - OUTLINE).max(axis=1).min() < 60  # the outline colour is drawn there
    assert "Zoomed view of r1 (box [40, 30, 60, 50])" in res.content and "crop [30, 20, 70, 60]" in res.content
    d = res.to_dict()
    assert d["image"]["mime_type"] == "image/jpeg" and len(d["image"]["base64"]) > 100
    from gar_tool.tools import ToolResult

    back = ToolResult.from_dict(d)
    assert back.image.data == res.image.data and back.artifact == out


def test_zoom_output_is_bounded_and_clipped():
    big = rgb(750, 1000, 3)
    k = GARToolkit(inputs=NO_PATHS)
    res = k.zoom({"image": b64(png_bytes(big)), "region": {"box": [0, 0, 1000, 750]}})
    assert res.artifact.crop_box == [0, 0, 1000, 750] and max(res.artifact.width, res.artifact.height) == limit("zoom_side")
    assert res.artifact.scale < 1
    tiny = k.zoom({"image": IMAGE, "region": {"box": [0, 0, 2, 2]}, "padding": 0}).artifact
    assert tiny.crop_box == [0, 0, 17, 17]  # at least MIN_CROP (32) around the centre, clipped at the corner
    assert crop_box((10, 10, 20, 20), 0.0, (100, 100)) == (0, 0, 31, 31)
    with pytest.raises(ToolInputError, match="padding: Input should be less than or equal to 2"):
        k.zoom({"image": IMAGE, "region": {"box": [0, 0, 5, 5]}, "padding": 5})


def test_zoom_uses_stored_regions_and_their_mask():
    k = kit()
    k.ground({"image": IMAGE, "phrases": "a plate"})
    res = k.zoom({"image": IMAGE, "region": "r1"})
    assert res.artifact.region.label == "a plate" and res.artifact.crop_box == [0, 41, 120, 90]


@pytest.mark.parametrize("name, args, message", [
    ("gar_relate", {"image": IMAGE, "regions": [{"box": [0, 0, 5, 5]}] * 33, "question": "<Prompt0>"},
     "regions: 33 regions, more than the limit of 32 (regions_per_call)"),
    ("gar_relate", {"image": IMAGE, "regions": [{"box": [0, 0, 5, 5]}], "question": "<Prompt0> " * 600},
     "question: 6000 characters, more than the limit of 4000 (question_chars)"),
    ("gar_describe", {"image": IMAGE, "region": {"box": [0, 0, 5, 5]}, "instruction": "x" * 2001},
     "instruction: 2001 characters, more than the limit of 2000 (instruction_chars)"),
    ("gar_ground", {"image": IMAGE, "phrases": ". ".join(f"thing {i}" for i in range(65))},
     "phrases: 65 phrases given, more than the phrases_per_call limit of 64"),
    ("gar_ground", {"image": IMAGE, "phrases": ["a " + "very " * 60 + "red cup"]},
     "characters long, more than the phrase_chars limit of 256"),
    ("gar_measure", {"image": IMAGE, "regions": [{"points": [[1, 1]] * 65}]},
     "regions.0.points: 65 points, more than the limit of 64 (points_per_region)"),
    ("gar_measure", {"image": IMAGE, "regions": [{"polygon": [[1, 1], [5, 1], [3, 4]] * 1400}]},
     "regions.0.polygon: 4200 vertices, more than the limit of 4096 (polygon_vertices)"),
])
def test_size_limits_are_validated_and_named(name, args, message):
    k = kit()
    with pytest.raises(ToolInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        k.call(name, args)
    assert k.gar.calls == [] and k.detector.calls == []  # refused before any model ran


def test_zoom_picture_reaches_every_adapter():
    """MCP: an image block (whatever include_overlay says); HTTP: {"image": {mime_type, base64}};
    LangChain: a standard image content block next to the text."""
    import anyio
    from fastapi.testclient import TestClient
    from langchain_core.messages import ToolMessage
    from mcp import Client

    from gar_tool.integrations.http.server import create_app
    from gar_tool.integrations.langchain import get_tools
    from gar_tool.integrations.mcp import create_server

    k = kit()
    args = {"image": IMAGE, "region": {"box": [40, 30, 60, 50]}}

    async def mcp_call():
        async with Client(create_server(k, include_overlay=False)) as client:
            return await client.call_tool("gar_zoom", args)
    res = anyio.run(mcp_call)
    assert not res.is_error and [b.type for b in res.content] == ["text", "image"]
    assert res.content[1].mime_type == "image/jpeg" and _jpeg(__import__("base64").b64decode(res.content[1].data)).shape == (128, 128, 3)
    assert res.structured_content["crop_box"] == [34, 24, 66, 56]  # 20 px box + 25 % each side, at least 32 px

    with TestClient(create_app(k), base_url="http://127.0.0.1") as c:
        body = c.post("/v1/zoom", json=args).json()
    assert body["tool"] == "gar_zoom" and body["image"]["mime_type"] == "image/jpeg"
    assert body["image"]["base64"] == res.content[1].data  # the same picture

    (zoom,) = get_tools(k, names=["gar_zoom"], include_overlay=False)
    msg = zoom.invoke({"type": "tool_call", "id": "z1", "name": "gar_zoom", "args": args})
    assert isinstance(msg, ToolMessage) and msg.status == "success"
    text, image = msg.content
    assert text["type"] == "text" and "Zoomed view of r1" in text["text"]
    assert image == {"type": "image", "base64": body["image"]["base64"], "mime_type": "image/jpeg"}
    assert "gar_zoom" not in [t.name for t in get_tools(k)] and "gar_zoom" in [t.name for t in get_tools(k, vision=True)]
