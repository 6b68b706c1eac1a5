"""A ``gar batch`` manifest over small random images: relate items with given boxes, items whose
regions come from phrases, describe items, and two bad items (missing image, region outside)."""

from __future__ import annotations

import json
from pathlib import Path

from tools_support import rgb, write_png


def write_manifest(folder: Path, n: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        write_png(folder / f"im{i:02d}.png", rgb(56 + i, 80, 100 + i))
        if i % 3 == 0:
            rows.append({"id": f"item-{i}", "image": f"im{i:02d}.png", "question": "Is <Prompt0> left of <Prompt1>?",
                         "regions": [{"box": [4, 4, 40, 40]}, {"box": [30, 18, 76, 54]}]})
        elif i % 3 == 1:
            rows.append({"id": f"item-{i}", "image": f"im{i:02d}.png", "phrases": "a dog. a cat.",
                         "question": "Is <Prompt0> near <Prompt1>?"})
        else:
            rows.append({"id": f"item-{i}", "image": f"im{i:02d}.png", "regions": [{"box": [8, 8, 48, 50]}]})
    rows.append({"id": "missing", "image": "nope.png", "regions": [{"box": [1, 1, 5, 5]}]})
    rows.append({"id": "outside", "image": "im00.png", "regions": [{"box": [1, 1, 500, 5]}]})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
