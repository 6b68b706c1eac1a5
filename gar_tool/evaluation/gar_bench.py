"""GAR-Bench files: annotations, the question strings GAR is asked, and prediction files.

Layout of a GAR-Bench folder (``--data``; see ``shared/data/gar-bench/README.md``)::

    annotations/GAR-Bench-VQA.json               424 items: image, mask_rles, question, choices,
                                                 answer (letter), type
    annotations/GAR-Bench-Caption-Simple.json     97 items: image, mask_rles, question, answer
    annotations/GAR-Bench-Caption-Detailed.json  107 items: image, mask_rles, subject_name,
                                                 object_name, predicate_name
    images/vqa_0.png, ...                        ``item["image"]`` is relative to the folder

``mask_rles[k]`` is the COCO RLE of ``<Prompt{k}>``. A prediction file (as written by the original
``evaluation/GAR-Bench/inference.py`` and by ``gar eval run``) is the annotation list, in order,
with ``model_output`` added to every item; a judged caption file also has ``eval_result``. Items are
matched to annotations by their ``image`` field, which is unique within each annotation file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gar_tool.errors import InputError
from gar_tool.evaluation.benchmarks import Benchmark, Kind
from gar_tool.evaluation.files import read_json

#: ``<PromptN>`` references in a question or option.

#: Question of the detailed-caption task (``--mode detailed`` of the original inference script).
DETAILED_QUESTION = "Describe <Prompt0> in detail, including the relationship with <Prompt1>."

#: Instruction appended to every VQA question by the original inference script.
VQA_INSTRUCTION = "\nAnswer with the correct option's letter directly."

#: Fields every annotation item of a kind must have, with their JSON types.
ANNOTATION_FIELDS: dict[Kind, dict[str, type]] = {
    "vqa": {"image": str, "mask_rles": list, "question": str, "choices": list, "answer": str, "type": str},
    "caption-simple": {"image": str, "mask_rles": list, "question": str, "answer": str},
    "caption-detailed": {"image": str, "mask_rles": list, "subject_name": str, "object_name": str,
                         "predicate_name": str},
}

_JSON_TYPE: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}


def vqa_question(question: str, choices: Sequence[str]) -> str:
    """The VQA question exactly as the original GAR-Bench inference script builds it.

    ``"Question: {question}\\nOptions:"``, then ``"\\n" + choice`` per choice, then
    ``"\\nAnswer with the correct option's letter directly."``.
    """
    return f"Question: {question}\nOptions:" + "".join(f"\n{c}" for c in choices) + VQA_INSTRUCTION


def build_question(item: dict[str, Any], kind: Kind) -> str:
    """The question string GAR is asked for one annotation item of a GAR-Bench task."""
    if kind == "vqa":
        return vqa_question(item["question"], item["choices"])
    if kind == "caption-simple":
        return item["question"]
    if kind == "caption-detailed":
        return DETAILED_QUESTION
    raise InputError(f"not a GAR-Bench task: {kind!r}")


def check_item(item: Any, kind: Kind, where: str, extra: dict[str, type] | None = None) -> None:
    """``InputError`` unless ``item`` is an object with the fields of ``kind`` (plus ``extra``)."""
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(item).__name__}")
    fields = {**ANNOTATION_FIELDS[kind], **(extra or {})}
    missing = [f for f in fields if f not in item]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)} "
                         f"(a {kind} item has {', '.join(fields)})")
    for name, typ in fields.items():
        if not isinstance(item[name], typ):
            raise InputError(f"{where}: field {name!r} must be {_JSON_TYPE[typ]}, "
                             f"got {type(item[name]).__name__}")


def load_annotations(data_dir: str | Path, bench: Benchmark) -> list[dict[str, Any]]:
    """Read and validate the annotation file of ``bench`` from the folder ``data_dir``."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"benchmark folder not found: {str(root)!r}")
    path = root / bench.annotation_file
    data = read_json(path, f"{bench.title} annotation file")
    if not isinstance(data, list):
        raise InputError(f"{str(path)!r}: expected a JSON list of items, got {type(data).__name__}")
    for i, item in enumerate(data):
        check_item(item, bench.kind, f"{path.name} item {i}")
        for k, rle in enumerate(item["mask_rles"]):
            if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
                raise InputError(f"{path.name} item {i}: mask_rles[{k}] must be a COCO RLE "
                                 '{"size": [h, w], "counts": ...}')
    _unique_images(data, str(path))
    return data


def _unique_images(items: Sequence[dict[str, Any]], where: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item["image"] in seen:
            raise InputError(f"{where}: items {seen[item['image']]} and {i} share the image "
                             f"{item['image']!r}; every item must have its own")
        seen[item["image"]] = i


def load_predictions(path: str | Path, bench: Benchmark, *, annotations: Sequence[dict] | None = None,
                     judged: bool = False, allow_partial: bool = False) -> list[dict[str, Any]]:
    """Read a GAR-Bench prediction file and check that it belongs to ``bench``.

    Args:
        path: JSON list of items with ``model_output`` (and ``eval_result`` when ``judged``).
        bench: the GAR-Bench task the file is scored as.
        annotations: when given, every prediction must match an annotation item (by ``image``) in
            all annotation fields, and the result follows the annotation order.
        judged: require the judge's ``eval_result`` string on every item.
        allow_partial: accept fewer items than the benchmark has (e.g. a ``--limit`` run).

    Raises:
        InputError: not JSON / not a list / missing or mistyped fields / duplicate or unknown
            items / wrong number of items, each message naming expected vs. found.
    """
    data = read_json(path, "prediction file")
    name = Path(path).name
    if not isinstance(data, list):
        hint = " (a DLC-Bench file? use --benchmark dlc-bench)" if isinstance(data, dict) else ""
        raise InputError(f"{name}: expected a JSON list of {bench.title} items, got "
                         f"{type(data).__name__}{hint}")
    extra: dict[str, type] = {"model_output": str}
    if judged:
        extra["eval_result"] = str
    for i, item in enumerate(data):
        check_item(item, bench.kind, f"{name} item {i}", extra)
    _unique_images(data, name)
    expected = len(annotations) if annotations is not None else bench.size
    if annotations is not None:
        data = _match(data, annotations, name, bench)
    if len(data) != expected and not (allow_partial and 0 < len(data) < expected):
        how = "" if allow_partial else " (pass --allow-partial to score a subset)"
        raise InputError(f"{name}: expected {expected} {bench.title} predictions, got {len(data)}"
                         f"{how if len(data) < expected else ''}")
    return data


def _match(preds: list[dict], annotations: Sequence[dict], name: str, bench: Benchmark) -> list[dict]:
    index = {a["image"]: i for i, a in enumerate(annotations)}
    fields = [f for f in ANNOTATION_FIELDS[bench.kind] if f != "image"]
    order = []
    for i, p in enumerate(preds):
        j = index.get(p["image"])
        if j is None:
            raise InputError(f"{name} item {i}: image {p['image']!r} is not in the {bench.title} annotations")
        for f in fields:
            if p[f] != annotations[j][f]:
                raise InputError(f"{name} item {i} ({p['image']}): field {f!r} differs from the "
                                 f"annotation: expected {str(annotations[j][f])[:80]!r}, "
                                 f"found {str(p[f])[:80]!r}")
        order.append((j, p))
    return [p for _, p in sorted(order, key=lambda t: t[0])]


__all__ = [
    "DETAILED_QUESTION", "VQA_INSTRUCTION", "ANNOTATION_FIELDS", "vqa_question",
    "build_question", "check_item", "load_annotations", "load_predictions",
]
