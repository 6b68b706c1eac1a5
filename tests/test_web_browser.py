"""The web page in a real browser: headless Chromium (Debian's package, driven by Playwright) against
a live ``gar serve`` app on 127.0.0.1 with the tiny random GAR, Grounding DINO and SAM, and the real
planner agent driven by a scripted chat model.

A person's path through the page: a bad upload (readable error, the page goes on), upload, drag a
box (the mask preview is drawn where the mask is), click points, find things by name, ask GAR with
``<PromptN>`` inserted by clicking regions, describe, ask the planner and watch its steps arrive
before its answer, see the cited regions highlighted, download the result JSON and the overlay.
Then the error paths — a path the server may not read, a box outside the image, no detector, an
unreachable planner — on a phone-size touch screen, the page working after each. No JavaScript errors, nothing requested from anywhere but the server.
Screenshots go to ``out/web-screenshots/`` (``GAR_TEST_SCREENSHOTS`` overrides).
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from langchain_core.messages import AIMessage

from conftest import REPO
from gar_tool.regions.rle import rle_decode, rle_encode
from gar_tool.integrations.http.server import create_app
from gar_tool.tools import GARToolkit, ImageInputConfig
from grounding_fixtures import tiny_dino_dir, tiny_sam_dir  # noqa: F401  (session fixtures)
from server_support import LiveServer
from web_support import Browser, screenshot

IMAGES = REPO / "examples" / "images"
PHOTO = IMAGES / "coffee.jpg"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
TIMEOUT = 60_000  # ms: a tiny GAR answer on a loaded 2-core machine can take seconds


def _toolkit(tiny_gar, dino, sam):
    from gar_tool import GAR
    from gar_tool.gar.batching import MicroBatcher
    from gar_tool.grounding import GroundingDetector, load_segmenter

    segmenter = None if sam is None else load_segmenter(str(sam), device="cpu")
    detector = None if dino is None else GroundingDetector.from_pretrained(str(dino), segmenter=segmenter, device="cpu")
    gar = MicroBatcher(GAR(tiny_gar.model, tiny_gar.processor), max_batch=8, max_wait=0.01)
    return GARToolkit(gar, detector, segmenter if segmenter is not None else False, max_new_tokens=4,
                      inputs=ImageInputConfig(allowed_roots=[IMAGES]))


def scripted_planner(gate: threading.Event):
    """The planner agent over the served toolkit, its chat model scripted: ground two things,
    ask GAR how they relate, then (once ``gate`` is set) answer citing the first."""
    from gar_agents import Planner
    from gar_agents.scripted import ScriptedChatModel, call
    from planner_support import ids_in_last_tool_message

    def relate(messages, bound):
        a, b = ids_in_last_tool_message(messages)[:2]
        return AIMessage("", tool_calls=[call("gar_relate", regions=[a, b], question="Is <Prompt0> on <Prompt1>?")])

    def answer(messages, bound):
        gate.wait(timeout=60)  # the page must show the steps before the answer exists
        first = ids_in_last_tool_message(messages)[0]
        return AIMessage(f"The cup is {first}; GAR was asked how it relates to the other region.")

    steps = [AIMessage("", tool_calls=[call("gar_ground", phrases="a cup. a spoon.", box_threshold=0.0,
                                            max_regions=2)]), relate, answer]
    return lambda kit: Planner(kit, ScriptedChatModel(steps=steps), max_steps=4)


@pytest.fixture(scope="module")
def full_server(tiny_gar, tiny_dino_dir, tiny_sam_dir):  # noqa: F811
    gate = threading.Event()
    kit = _toolkit(tiny_gar, tiny_dino_dir, tiny_sam_dir)
    app = create_app(kit, planner=scripted_planner(gate), model_names={
        "gar": "tiny-gar", "detector": "tiny-grounding-dino", "segmenter": "tiny-sam", "planner": "scripted"})
    with LiveServer(app, max_seconds=600) as srv:
        srv.gate = gate
        yield srv
    kit.gar.close()


@pytest.fixture(scope="module")
def bare_server(tiny_gar):
    """GAR only (no detector, no segmenter), and a planner whose model endpoint does not answer."""
    import socket

    from gar_agents import Planner

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    kit = _toolkit(tiny_gar, None, None)
    planner = (lambda k: Planner(k, "openai:stub-model", base_url=f"http://127.0.0.1:{dead}/v1", retries=0,
                                 timeout=10))
    app = create_app(kit, planner=planner, model_names={"gar": "tiny-gar", "planner": "openai:stub-model"})
    with LiveServer(app, max_seconds=600) as srv:
        yield srv
    kit.gar.close()


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


# ------------------------------------------------------------------------------- helpers
def _json_of(response) -> dict:
    assert response.ok, response.text()
    return response.json()


PHOTO_SIZE = Image.open(PHOTO).size  # (width, height)


def _screen_xy(page, xy: tuple[float, float]) -> tuple[float, float]:
    """Image pixel (x, y) → the page coordinates of its centre on the canvas."""
    box = page.locator("#canvas").bounding_box()
    return (box["x"] + (xy[0] + 0.5) * box["width"] / PHOTO_SIZE[0],
            box["y"] + (xy[1] + 0.5) * box["height"] / PHOTO_SIZE[1])


def _drag(page, frm: tuple[float, float], to: tuple[float, float]) -> None:
    """Drag the mouse on the canvas between two image pixels."""
    (x0, y0), (x1, y1) = _screen_xy(page, frm), _screen_xy(page, to)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


def _canvas_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#canvas").screenshot())).convert("RGB"), dtype=np.float32)


def _assert_drawn_where(mask: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
    """The canvas changed inside the mask and not outside it (borders of 3 screen pixels left out)."""
    h, w = before.shape[:2]
    big = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
    inner = np.asarray(big.filter(ImageFilter.MinFilter(7))) > 0
    outer = np.asarray(big.filter(ImageFilter.MaxFilter(7))) == 0
    diff = np.abs(after - before).mean(axis=2)
    assert inner.sum() > 500 and outer.sum() > 500, (inner.sum(), outer.sum())
    assert diff[inner].mean() > 20, diff[inner].mean()
    assert diff[outer].mean() < 2, diff[outer].mean()


def _network_errors(page) -> list[str]:
    return [t for kind, t in page.console_messages if kind == "error" and "Failed to load resource" in t]


def _assert_clean(page, url: str, expected_http_errors: list[int]) -> None:
    """No JavaScript error; console errors only for the HTTP errors the test caused on purpose;
    nothing requested from anywhere but the server (data: / blob: URLs are the page's own)."""
    assert page.page_errors == []
    others = [t for kind, t in page.console_messages if kind == "error" and t not in _network_errors(page)]
    assert others == []
    statuses = sorted(int(t.split("status of ")[1].split()[0]) for t in _network_errors(page))
    assert statuses == sorted(expected_http_errors), _network_errors(page)
    foreign = [u for u in page.requested if not u.startswith((url + "/", "data:", "blob:"))]
    assert foreign == []


# ------------------------------------------------------------------------------- the tests
def test_rle_decoder_of_the_page_matches_pycocotools(browser, full_server):
    """The page draws masks from the API's COCO RLE strings with its own decoder (rle.js)."""
    rng = np.random.RandomState(7)
    mask = np.zeros((150, 230), dtype=bool)
    mask[10:140, 20:200] = True  # long runs: multi-character counts
    mask[rng.rand(150, 230) < 0.05] ^= True  # short runs, negative deltas
    rle = rle_encode(mask)
    page = browser.page(**DESKTOP)
    page.goto(full_server.url + "/")
    got = page.evaluate("""async (rle) => {
        const m = await import('/static/rle.js');
        const d = m.decodeRle(rle);
        const listed = m.decodeRle({size: rle.size, counts: m.runLengths(rle.counts)});
        return [d.width, d.height, d.area, Array.from(d.bits).join(''), Array.from(listed.bits).join('')];
    }""", rle)
    assert got[:3] == [230, 150, int(mask.sum())]
    assert got[3] == got[4] == "".join("1" if v else "0" for v in rle_decode(rle).ravel())
    page.context.close()


def test_a_person_uses_the_page(browser, full_server, tmp_path):
    url = full_server.url
    page = browser.page(**DESKTOP)
    page.set_default_timeout(TIMEOUT)
    page.goto(url + "/")
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_contain_text("segmenter: tiny-sam")
    expect(page.locator("#status")).to_contain_text("planner: scripted")

    # a file that is no image: a readable message, and the page goes on
    page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture"}])
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("is not a readable image")

    # upload the photo
    with page.expect_response(lambda r: r.url.endswith("/v1/images")) as up:
        page.set_input_files("#file", str(PHOTO))
    info = _json_of(up.value)
    assert (info["width"], info["height"]) == PHOTO_SIZE
    expect(page.locator("#canvas")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()  # a successful action clears the old message
    page.wait_for_timeout(200)  # the image is drawn on decode
    before = _canvas_pixels(page)

    # drag a box: the segmenter's preview is drawn exactly over its mask, then stored as r1
    with page.expect_response(lambda r: r.url.endswith("/v1/segment")) as seg:
        _drag(page, (150, 60), (420, 330))
    preview = _json_of(seg.value)
    assert preview["stored"] is False and preview["region"]["id"] is None
    expect(page.locator("#pending-text")).to_contain_text(
        "Segmenter mask" if preview["segmented"] else f"No segmenter mask: {preview['region']['source']}")
    _assert_drawn_where(rle_decode(preview["region"]["rle"]), before, _canvas_pixels(page))
    with page.expect_response(lambda r: r.url.endswith("/v1/segment")) as seg:
        page.click("#pending-add")
    first = _json_of(seg.value)["region"]
    assert first["id"] == "r1" and first["rle"] == preview["region"]["rle"]
    expect(page.locator("#regions li")).to_have_count(1)
    expect(page.locator("#regions li").first).to_contain_text(f"r1 · {first['source']}")
    expect(page.locator("#pending")).to_be_hidden()

    # click points (one background point) → r2
    page.click("#modes [data-mode=points]")
    with page.expect_response(lambda r: r.url.endswith("/v1/segment")):
        page.mouse.click(*_screen_xy(page, (480, 200)))
    page.check("#negative")
    with page.expect_response(lambda r: r.url.endswith("/v1/segment")) as seg:
        page.mouse.click(*_screen_xy(page, (560, 40)))
    prompt = seg.value.request.post_data_json["region"]
    assert prompt == {"points": [[480, 200], [560, 40]], "labels": [1, 0]}
    page.click("#pending-add")
    expect(page.locator("#regions li")).to_have_count(2)

    # find things by name
    page.fill("#phrases", "a cup. a spoon.")
    page.fill("#threshold", "0")
    page.fill("#max-regions", "2")
    with page.expect_response(lambda r: "/v1/ground" in r.url) as gr:
        page.click("#ground-btn")
    found = _json_of(gr.value)["output"]["regions"]
    assert gr.value.request.post_data_json == {"image": info["image_id"], "phrases": "a cup. a spoon.",
                                               "box_threshold": 0, "max_regions": 2}
    assert len(found) == 2, "box_threshold 0 keeps every detection, max_regions the best 2"
    expect(page.locator("#regions li")).to_have_count(2 + len(found))
    for r in found:
        expect(page.locator(f"#regions li[data-id={r['id']}]")).to_contain_text(r["label"])

    # ask GAR: r1 and r2 are ticked (new regions are); clicking them inserts <Prompt0>, <Prompt1>
    page.fill("#gar-question", "")
    page.click("#chips .chip[data-id=r1]")
    page.keyboard.type(" is next to ")
    page.click("#chips .chip[data-id=r2]")
    page.keyboard.type("?")
    expect(page.locator("#gar-question")).to_have_value("<Prompt0> is next to <Prompt1>?")
    with page.expect_response(lambda r: "/v1/relate" in r.url) as rel:
        page.click("#relate-btn")
    relate = _json_of(rel.value)
    assert rel.value.request.post_data_json["regions"] == ["r1", "r2"]
    expect(page.locator("#gar-answer")).to_contain_text(relate["output"]["answer_with_ids"].strip()[:40])

    # describe one region
    page.uncheck("#regions li[data-id=r2] input[type=checkbox]")
    with page.expect_response(lambda r: "/v1/describe" in r.url) as des:
        page.click("#describe-btn")
    described = _json_of(des.value)
    expect(page.locator("#gar-answer")).to_contain_text("GAR on r1:")
    expect(page.locator("#gar-answer")).to_contain_text(described["output"]["description"].strip()[:40])

    # ask the planner: its steps are on the page while it has not answered yet
    page.fill("#plan-question", "Is the cup on the saucer?")
    page.click("#plan-btn")
    expect(page.locator("#plan-steps li .tool", has_text="gar_ground")).to_have_count(1)
    expect(page.locator("#plan-steps li.done", has_text="gar_relate")).to_have_count(1)
    assert page.locator("#plan-answer").inner_text() == ""
    screenshot(page, "planner-running")
    full_server.gate.set()
    expect(page.locator("#plan-answer")).to_contain_text("The cup is r")
    cited = page.locator("#plan-answer .chip").first.inner_text()
    expect(page.locator(f"#regions li[data-id={cited}]")).to_have_class("cited")
    expect(page.locator("#show-all")).to_be_visible()
    steps_text = page.locator("#plan-steps").inner_text()
    assert steps_text.index("gar_ground") < steps_text.index("gar_relate") < steps_text.index("answer")

    # downloads: the planner's result and its overlay
    with page.expect_download() as dl:
        page.click("#download-json")
    result = json.loads(Path(dl.value.path()).read_text())
    assert result["cited"] == [cited] and result["answer"].startswith(f"The cup is {cited}")
    assert [s["tool"] for s in result["steps"]] == ["gar_ground", "gar_relate"]
    with page.expect_download() as dl:
        page.click("#download-overlay")
    overlay = Image.open(dl.value.path())
    assert overlay.format == "PNG" and overlay.width >= PHOTO_SIZE[0] and overlay.height > PHOTO_SIZE[1]

    screenshot(page, "page-desktop")
    page.click("#show-all")
    expect(page.locator("#show-all")).to_be_hidden()
    _assert_clean(page, url, expected_http_errors=[422])  # the bad upload
    page.context.close()


def test_errors_are_readable_and_the_page_keeps_working_on_a_phone(browser, bare_server):
    from playwright.sync_api import expect

    url = bare_server.url
    page = browser.page(**PHONE)
    page.set_default_timeout(TIMEOUT)
    page.goto(url + "/")
    expect(page.locator("#status")).to_contain_text("detector: not loaded")
    expect(page.locator("#status")).to_contain_text("segmenter: not loaded")

    # a path the server may not read
    page.fill("#open-ref", "/etc/passwd")
    page.click("#open-form button")
    expect(page.locator("#error-text")).to_contain_text("/etc/passwd")

    # open an image by its path on the server, then tap points: no segmenter, so discs
    page.fill("#open-ref", str(PHOTO))
    page.click("#open-form button")
    expect(page.locator("#canvas")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] <= 390 and canvas["width"] >= 300

    # a region outside the image
    page.fill("#box-text", "500, 300, 700, 450")
    page.click("#box-form button")
    expect(page.locator("#error-text")).to_contain_text("lies outside the image (width 600, height 400)")
    expect(page.locator("#pending")).to_be_hidden()
    page.click("#modes [data-mode=points]")
    with page.expect_response(lambda r: r.url.endswith("/v1/segment")) as seg:
        page.touchscreen.tap(*_screen_xy(page, (300, 200)))
    assert _json_of(seg.value)["region"]["source"] == "points-disc"
    expect(page.locator("#pending-text")).to_contain_text("No segmenter mask: points-disc")
    page.click("#pending-add")
    expect(page.locator("#regions li")).to_have_count(1)

    # the detector is not loaded: the server's sentence says so
    page.fill("#phrases", "a cup")
    page.click("#ground-btn")
    expect(page.locator("#error-text")).to_contain_text("gar_ground is not available")
    expect(page.locator("#error-text")).to_contain_text("--detector")

    # the planner's model endpoint does not answer
    page.fill("#plan-question", "Where is the cup?")
    page.click("#plan-btn")
    expect(page.locator("#error-text")).to_contain_text("The planner failed")
    expect(page.locator("#plan-steps li.failed")).to_contain_text("planner model")
    assert page.locator("#plan-btn").is_enabled()

    # ... and the page still works
    page.click("#error-close")
    with page.expect_response(lambda r: "/v1/describe" in r.url) as des:
        page.click("#describe-btn")
    expect(page.locator("#gar-answer")).to_contain_text(_json_of(des.value)["output"]["description"].strip()[:30])
    expect(page.locator("#error")).to_be_hidden()
    screenshot(page, "page-phone")
    _assert_clean(page, url, expected_http_errors=[422, 422, 501])
    page.context.close()
