"""The offline shapes-world detector: finds shapes by colour, kind and size words; gar_ground and
gar ground use it with --detector shapes-world."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gar_tool.errors import InputError
from gar_tool.shapes import SHAPES_DETECTOR
from gar_tool.shapes.detector import ShapesDetector
from gar_tool.shapes.world import COLOURS, Scene, Shape, render, sample_scene
from tools_support import b64, png_bytes


def _scene():
    shapes = (Shape("circle", "red", "large", (10, 10, 80, 80), COLOURS["red"]),
              Shape("square", "blue", "medium", (120, 20, 160, 60), COLOURS["blue"]),
              Shape("triangle", "red", "medium", (130, 90, 175, 135), COLOURS["red"]))
    return render(Scene(200, 150, (225, 222, 220), shapes, 0))


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_phrases_pick_shapes_by_colour_kind_and_size():
    r = _scene()
    det = ShapesDetector()
    found = det.detect(r.image, "red shape. blue square")
    assert sorted(x.label for x in found) == ["blue square", "red shape", "red shape"]
    blue = next(x for x in found if x.label == "blue square")
    assert _iou(blue.mask, r.masks[1]) > 0.95 and blue.source == "shapes-detector"
    circle = det.detect(r.image, "circle")
    assert len(circle) == 1 and _iou(circle[0].mask, r.masks[0]) > 0.95 and circle[0].score > 0.8
    assert [x.label for x in det.detect(r.image, ["medium red triangle"])] == ["medium red triangle"]
    assert len(det.detect(r.image, "green star")) == 0
    assert len(det.detect(r.image, "red shape", max_regions=1)) == 1
    with pytest.raises(InputError):
        det.detect(r.image, "red shape", max_regions=0)


def test_names_most_shapes_of_random_scenes():
    """Scored against the rendered masks: the detector is a heuristic and says so."""
    rng = np.random.default_rng(11)
    det = ShapesDetector()
    hits = named = total = 0
    for _ in range(20):
        r = sample_scene(rng)
        blobs = det.blobs(r.image)
        for s, m in zip(r.scene.shapes, r.masks):
            total += 1
            best = max(blobs, key=lambda b: _iou(b.mask, m), default=None)
            if best is not None and _iou(best.mask, m) > 0.8:
                hits += 1
                named += (best.colour, best.kind, best.size) == (s.colour, s.kind, s.size)
    assert hits / total > 0.85 and named / hits > 0.85, (hits, named, total)


def test_gar_ground_tool_runs_offline_with_the_shapes_detector():
    from gar_tool.tools import GARToolkit
    from gar_tool.tools.inputs import ImageInputConfig

    kit = GARToolkit.load(detector=SHAPES_DETECTOR, inputs=ImageInputConfig(allowed_roots=[]))
    assert kit.available_tools() == ["gar_ground", "gar_measure", "gar_zoom"]
    out = kit.call("gar_ground", {"image": b64(png_bytes(_scene().image)), "phrases": "blue square. red circle"}).artifact
    assert sorted(r.label for r in out.regions) == ["blue square", "red circle"]
    m = kit.call("gar_measure", {"image": out.image_id, "regions": [r.id for r in out.regions]}).artifact
    assert len(m.regions) == 2


def test_gar_ground_command_with_the_shapes_detector(tmp_path, capsys):
    from gar_tool.cli import main

    path = tmp_path / "scene.png"
    Image.fromarray(_scene().image).save(path)
    assert main(["ground", str(path), "blue square", "--detector", SHAPES_DETECTOR, "--json"]) == 0
    regions = json.loads(capsys.readouterr().out)["regions"]
    assert [r["label"] for r in regions] == ["blue square"]
    assert regions[0]["box"] == [120, 20, 161, 61]
