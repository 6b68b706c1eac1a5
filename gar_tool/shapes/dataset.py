"""Shapes-world data on disk: training records (JSONL manifest or ``datasets`` folder) and
held-out multiple-choice benchmarks in GAR-Bench's VQA layout.

Training records are single-turn conversations, one question each, drawn so that every
(question kind, answer) pair is equally frequent within its kind: the answer prior carries no
information. Each question is asked in its open form (short answer) or its multiple-choice form
(answer: a letter); region captions (``"a small red circle"``) are asked with GAR's describe
instruction and no ``<PromptN>``. Several records share one scene.

A benchmark folder (``gar eval run --benchmark gar-bench-vqa --data DIR``) has
``annotations/GAR-Bench-VQA.json`` and ``images/``; every item has its own scene and, besides
GAR-Bench's fields, ``area_fractions`` (visible area of each region / image area) and
``size_split`` (``"small"`` when its smallest region is under
:data:`~gar_tool.shapes.world.SMALL_FRACTION` of the image, else ``"large"``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from gar_tool.regions.refs import DESCRIBE_INSTRUCTION
from gar_tool.regions.rle import rle_encode
from gar_tool.shapes.questions import PAIR_KINDS, SINGLE_KINDS, Item, scene_items
from gar_tool.shapes.world import COLOURS, KINDS, SIZES, SMALL_FRACTION, Rendered, sample_scene

#: Possible open answers of each kind (the buckets that are balanced).
ANSWERS: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS), "shape": KINDS, "size": SIZES, "left": ("yes", "no"), "above": ("yes", "no"),
    "bigger": ("yes", "no"), "same-colour": ("yes", "no"), "same-shape": ("yes", "no"),
    "count": ("0", "1", "2"),
}
#: Share of training records per kind ("describe" = region captions).
DEFAULT_MIX: dict[str, float] = {
    "describe": 0.10, "colour": 0.10, "shape": 0.10, "size": 0.10,
    "left": 0.10, "above": 0.10, "bigger": 0.10, "same-colour": 0.10, "same-shape": 0.05, "count": 0.05,
}


@dataclass(frozen=True)
class Example:
    """One training conversation about one rendered scene: questions about the same regions
    (``shapes``, scene indices in ``<PromptN>`` order), each asked open or multiple-choice.
    A question of ``None`` is the region caption of ``shapes[0]`` (GAR's describe instruction)."""

    scene: Rendered
    scene_id: int
    shapes: tuple[int, ...]
    questions: tuple[tuple[Item | None, bool], ...]

    def conversation(self) -> list[dict[str, str]]:
        from gar_tool.evaluation.gar_bench import vqa_question

        turns = []
        for it, multiple_choice in self.questions:
            if it is None:
                q, a = DESCRIBE_INSTRUCTION, self.scene.scene.shapes[self.shapes[0]].caption
            elif multiple_choice:
                q, a = vqa_question(it.question, it.choices), it.answer
            else:
                q, a = it.open_question, it.open_answer
            turns += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        return turns

    def rles(self) -> list[dict]:
        return [rle_encode(self.scene.masks[k]) for k in self.shapes]


def parse_mix(text: str) -> dict[str, float]:
    """``"colour:1,shape:2"`` → ``{"colour": 1.0, "shape": 2.0}`` (a kind alone has share 1).
    Raises ``ValueError`` naming the bad part: an unknown kind or a share that is not a positive
    finite number."""
    out: dict[str, float] = {}
    for part in text.split(","):
        kind, sep, share = part.strip().partition(":")
        if kind not in DEFAULT_MIX:
            raise ValueError(f"unknown question kind {kind!r}; expected some of {sorted(DEFAULT_MIX)}")
        try:
            value = float(share) if sep else 1.0
        except ValueError:
            raise ValueError(f"{part!r}: the share must be a number (kind:share)") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{part!r}: the share must be a positive number")
        out[kind] = value
    return out


def _quotas(total: int, mix: dict[str, float]) -> dict[tuple[str, str], int]:
    """Examples wanted per (kind, answer): ``total`` split by ``mix``, then evenly over answers
    (largest remainders first, so the quotas sum to ``total``)."""
    weight = sum(mix.values())
    raw = {kind: total * share / weight for kind, share in mix.items()}
    counts = {kind: int(v) for kind, v in raw.items()}
    for kind in sorted(raw, key=lambda k: counts[k] - raw[k])[:total - sum(counts.values())]:
        counts[kind] += 1
    out = {}
    for kind, n in counts.items():
        answers = KINDS if kind == "describe" else ANSWERS[kind]
        for k, a in enumerate(answers):
            out[(kind, a)] = n // len(answers) + (1 if k < n % len(answers) else 0)
    return out


def examples(total: int, seed: int, *, mix: dict[str, float] | None = None, per_scene: int = 4,
             multiple_choice: float = 0.5, turns: int = 1) -> Iterator[Example]:
    """Training conversations holding ``total`` questions in all, with the kind shares of ``mix``
    (default :data:`DEFAULT_MIX`) and answers balanced within each kind; at most ``per_scene``
    conversations from one scene.

    With ``turns > 1`` a conversation asks up to that many questions of different kinds about
    the same regions (its first turn is GAR's inference prompt; later turns follow it as chat
    turns). Captions are always alone: they would give away the colour, shape and size answers.
    """
    if turns < 1:
        raise ValueError(f"turns must be >= 1, got {turns}")
    rng = np.random.default_rng(seed)
    left = _quotas(total, mix or DEFAULT_MIX)
    scene_id = 0
    while any(left.values()):
        r = sample_scene(rng)
        items = scene_items(r, rng)
        groups: dict[tuple[int, ...], list[Item]] = {}
        for it in items:
            groups.setdefault(it.shapes, []).append(it)
        candidates: list[tuple[tuple[int, ...], Item | None]] = [((i,), None) for i in range(len(r.scene.shapes))]
        candidates += [(it.shapes, it) for it in items]
        taken = 0
        for k in rng.permutation(len(candidates)):
            shapes, first = candidates[k]
            key = _key(r, shapes, first)
            if taken >= per_scene or not left.get(key):
                continue
            left[key] -= 1
            asked = [(first, bool(rng.random() < multiple_choice))]
            if first is not None:
                kinds = {first.kind}
                for j in rng.permutation(len(groups.get(shapes, []))):
                    it = groups[shapes][j]
                    if len(asked) >= turns:
                        break
                    if it.kind not in kinds and left.get(_key(r, shapes, it)):
                        left[_key(r, shapes, it)] -= 1
                        kinds.add(it.kind)
                        asked.append((it, bool(rng.random() < multiple_choice)))
            taken += 1
            yield Example(r, scene_id, shapes, tuple(asked))
        scene_id += 1


def _key(r: Rendered, shapes: tuple[int, ...], item: Item | None) -> tuple[str, str]:
    return ("describe", r.scene.shapes[shapes[0]].kind) if item is None else (item.kind, item.open_answer)


def _png(image: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_jsonl(out: str | Path, total: int, seed: int, **kw: Any) -> Path:
    """Write ``total`` records as ``out/train.jsonl`` + ``out/images/*.png``; returns the manifest."""
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    manifest = root / "train.jsonl"
    written: set[int] = set()
    with manifest.open("w") as f:
        for ex in examples(total, seed, **kw):
            name = f"images/scene_{ex.scene_id:07d}.png"
            if ex.scene_id not in written:
                Image.fromarray(ex.scene.image).save(root / name)
                written.add(ex.scene_id)
            f.write(json.dumps({"image": name, "regions": ex.rles(), "conversations": ex.conversation()}) + "\n")
    return manifest


def write_dataset(out: str | Path, total: int, seed: int, **kw: Any) -> Path:
    """Write ``total`` records as a ``datasets`` folder (``save_to_disk``) with GAR's original
    columns ``image`` (PNG), ``mask_rle`` and ``conversations``."""
    import datasets

    rows: dict[str, list] = {"image": [], "mask_rle": [], "conversations": []}
    for ex in examples(total, seed, **kw):
        rows["image"].append({"bytes": _png(ex.scene.image), "path": None})
        rows["mask_rle"].append(ex.rles())
        rows["conversations"].append(ex.conversation())
    features = datasets.Features({
        "image": datasets.Image(),
        "mask_rle": [{"size": [datasets.Value("int64")], "counts": datasets.Value("string")}],
        "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
    })
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(out))
    return Path(out)


def bench_items(n: int, seed: int, arity: int) -> Iterator[tuple[Rendered, Item]]:
    """``n`` held-out multiple-choice items with ``arity`` regions (1 or 2), one scene each,
    balanced over kinds and, within a kind, over answers."""
    if arity not in (1, 2):
        raise ValueError(f"arity must be 1 or 2, got {arity}")
    kinds = SINGLE_KINDS if arity == 1 else PAIR_KINDS
    left = _quotas(n, {k: 1.0 for k in kinds})
    rng = np.random.default_rng(seed)
    while any(left.values()):
        r = sample_scene(rng)
        items = [it for it in scene_items(r, rng) if it.arity == arity and left.get((it.kind, it.open_answer))]
        if items:
            it = items[int(rng.integers(len(items)))]
            left[(it.kind, it.open_answer)] -= 1
            yield r, it


def write_bench(out: str | Path, n: int, seed: int, arity: int) -> Path:
    """Write a GAR-Bench-VQA style folder of ``n`` items; returns the annotation file."""
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    items = []
    for i, (r, it) in enumerate(bench_items(n, seed, arity)):
        name = f"images/vqa_{i}.png"
        Image.fromarray(r.image).save(root / name)
        areas = [round(float(r.areas[k]), 5) for k in it.shapes]
        items.append({"image": name, "mask_rles": [rle_encode(r.masks[k]) for k in it.shapes],
                      "question": it.question, "choices": list(it.choices), "answer": it.answer,
                      "type": it.kind, "area_fractions": areas,
                      "size_split": "small" if min(areas) < SMALL_FRACTION else "large"})
    path = root / "annotations" / "GAR-Bench-VQA.json"
    path.write_text(json.dumps(items, indent=1))
    return path


__all__ = ["ANSWERS", "DEFAULT_MIX", "parse_mix", "Example", "examples", "write_jsonl", "write_dataset",
           "bench_items", "write_bench"]
