"""DLC-Bench files: annotations, prediction files, judged files and the summary rule.

DLC-Bench (NVIDIA describe-anything; GAR re-distributes the annotations) has 100 objects in 77
Objects365 images. Layout of the folder given as ``--data``::

    annotations/annotations.json   COCO style: images (id, file_name, height, width), annotations
                                   (id, image_id, segmentation = COCO RLE), categories
    annotations/qa.json            object id -> list of judge questions (positive / negative)
    annotations/class_names.json   object id -> class name
    images/objects365_v2_*.jpg     NOT distributed with the annotations: download them with
                                   ``hf download nvidia/DLC-Bench --repo-type dataset
                                   --include "images/*" --local-dir DIR`` (the benchmark's images
                                   from NVIDIA's describe-anything DLC-Bench release); an
                                   ``annotations/images/`` folder, as in GAR's instructions, works too.

Files: predictions ``{object_id: description}`` (GAR's ``model_outputs/gar_1b.json``); judged
results ``{object_id: {"pred", "response", "score", "score_pos", "score_neg", ...}}`` (GAR's
``gar_1b_eval_gpt.json``), optionally with ``avg_pos`` / ``avg_neg`` entries.

Summary rule (GAR's ``eval_gpt_with_image.py``, the GPT-4o-with-images judge), over the objects of
``qa.json``: ``Pos = mean(score_pos)``; ``Neg = sum(score_neg that are not None) / number of
objects`` (objects without negative questions count as 0 — none exist in the release); printed
``Avg = (Pos + Neg) / 2`` — the mean of the two averages, *not* the mean of per-object ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gar_tool.errors import InputError
from gar_tool.evaluation.files import read_json

#: Keys of a judged file that are summaries, not objects.
SUMMARY_KEYS = ("avg_pos", "avg_neg")


@dataclass
class DLCData:
    """A DLC-Bench folder, loaded.

    Attributes:
        objects: object id (string) -> COCO annotation, in the original inference order (images in
            file order, then their annotations in file order).
        images: image id -> COCO image record (``file_name``, ``height``, ``width``).
        qa: object id -> judge questions.
        class_names: object id -> class name.
        image_dir: folder holding the images, or ``None`` when no candidate folder exists.
    """

    objects: dict[str, dict[str, Any]]
    images: dict[int, dict[str, Any]]
    qa: dict[str, list[dict[str, Any]]]
    class_names: dict[str, str]
    image_dir: Path | None

    def image_path(self, key: str) -> Path | None:
        """Path of the image of object ``key`` (``None`` when no image folder was found)."""
        if self.image_dir is None:
            return None
        return self.image_dir / self.images[self.objects[key]["image_id"]]["file_name"]


def load_dlc(data_dir: str | Path) -> DLCData:
    """Read a DLC-Bench folder (see the module docstring); ``InputError`` naming what is wrong."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"DLC-Bench folder not found: {str(root)!r}")
    ann_dir = root / "annotations" if (root / "annotations" / "annotations.json").is_file() else root
    coco = read_json(ann_dir / "annotations.json", "DLC-Bench annotations.json")
    qa = read_json(ann_dir / "qa.json", "DLC-Bench qa.json")
    names = read_json(ann_dir / "class_names.json", "DLC-Bench class_names.json")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list):
        raise InputError("DLC-Bench annotations.json: expected a COCO object with 'images' and 'annotations' lists")
    if not isinstance(qa, dict) or not isinstance(names, dict):
        raise InputError("DLC-Bench qa.json and class_names.json must map object ids to values")
    try:
        images = {int(im["id"]): im for im in coco["images"]}
        by_image: dict[int, list[dict]] = {i: [] for i in images}
        for ann in coco["annotations"]:
            by_image[int(ann["image_id"])].append(ann)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"DLC-Bench annotations.json is malformed ({exc!r})") from None
    objects = {str(a["id"]): a for i in images for a in by_image[i]}
    missing = [k for k in qa if k not in objects or k not in names]
    if missing:
        raise InputError(f"DLC-Bench: qa.json objects without annotation or class name: {missing[:5]}")
    image_dir = next((d for d in (root / "images", ann_dir / "images") if d.is_dir()), None)
    return DLCData(objects, images, qa, names, image_dir)


def load_dlc_predictions(path: str | Path, keys: Sequence[str] | None = None, *, expected: int = 100,
                         allow_partial: bool = False) -> dict[str, str]:
    """Read ``{object_id: description}``; check ids against ``keys`` (or the count ``expected``)."""
    data = read_json(path, "prediction file")
    name = Path(path).name
    if not isinstance(data, dict):
        raise InputError(f"{name}: expected a JSON object {{object_id: description}} (DLC-Bench), "
                         f"got {type(data).__name__}")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        got = type(data[bad[0]]).__name__
        hint = " (a judged file? score it without --judge)" if got == "dict" else ""
        raise InputError(f"{name}: object {bad[0]!r}: expected a description string, got {got}{hint}")
    _check_keys(list(data), keys, expected, allow_partial, name)
    return data


def load_dlc_judged(path: str | Path, keys: Sequence[str] | None = None, *, expected: int = 100,
                    allow_partial: bool = False) -> dict[str, dict[str, Any]]:
    """Read a judged DLC-Bench file; returns the per-object entries (summary keys dropped)."""
    data = read_json(path, "judged file")
    name = Path(path).name
    if not isinstance(data, dict):
        raise InputError(f"{name}: expected a JSON object {{object_id: result}} (a DLC-Bench judged "
                         f"file), got {type(data).__name__}")
    objs = {k: v for k, v in data.items() if k not in SUMMARY_KEYS}
    for k, v in objs.items():
        if isinstance(v, str):
            raise InputError(f"{name}: object {k!r} holds a description, not judge results: this is "
                             "a prediction file; judge it with --judge PROVIDER:MODEL")
        if not isinstance(v, dict) or not isinstance(v.get("score_pos"), (int, float)) \
                or not (v.get("score_neg") is None or isinstance(v.get("score_neg"), (int, float))):
            raise InputError(f"{name}: object {k!r}: expected an object with numeric 'score_pos' and "
                             "'score_neg' (number or null)")
    _check_keys(list(objs), keys, expected, allow_partial, name)
    if keys is not None:
        objs = {k: objs[k] for k in keys if k in objs}
    return objs


def _check_keys(found: list[str], keys: Sequence[str] | None, expected: int, allow_partial: bool,
                name: str) -> None:
    if keys is not None:
        unknown = [k for k in found if k not in set(keys)]
        if unknown:
            raise InputError(f"{name}: {len(unknown)} object id(s) not in DLC-Bench qa.json, e.g. {unknown[0]!r}")
        expected = len(keys)
    elif any(not k.isdigit() for k in found):
        raise InputError(f"{name}: object ids must be integers, found {next(k for k in found if not k.isdigit())!r}")
    if len(found) != expected and not (allow_partial and 0 < len(found) < expected):
        raise InputError(f"{name}: expected {expected} DLC-Bench objects, got {len(found)}"
                         + (" (pass --allow-partial to score a subset)" if len(found) < expected else ""))


@dataclass(frozen=True)
class DLCSummary:
    """The summary of a judged run (unrounded; the original prints three decimals)."""

    pos: float
    neg: float
    objects: int
    recognition_failed: int
    mean_object_score: float

    @property
    def avg(self) -> float:
        """``(Pos + Neg) / 2``, the number the paper reports as Avg."""
        return (self.pos + self.neg) / 2

    def as_dict(self) -> dict[str, Any]:
        """``{"overall": {"pos", "neg", "avg"}}`` rounded to 3 decimals, plus unrounded values."""
        return {"overall": {"pos": round(self.pos, 3), "neg": round(self.neg, 3), "avg": round(self.avg, 3)},
                "unrounded": {"pos": self.pos, "neg": self.neg, "avg": self.avg},
                "objects": self.objects, "recognition_failed": self.recognition_failed,
                "mean_object_score": self.mean_object_score}


def summarize_dlc(results: dict[str, dict[str, Any]]) -> DLCSummary:
    """Apply the original summary rule to per-object results (see the module docstring)."""
    if not results:
        raise InputError("no DLC-Bench objects to summarise")
    n = len(results)
    pos = sum(r["score_pos"] for r in results.values()) / n
    neg = sum(r["score_neg"] for r in results.values() if r["score_neg"] is not None) / n
    scores = [r["score"] for r in results.values() if isinstance(r.get("score"), (int, float))]
    return DLCSummary(pos=pos, neg=neg, objects=n,
                      recognition_failed=sum(r.get("recognition_result") is False for r in results.values()),
                      mean_object_score=sum(scores) / len(scores) if scores else float("nan"))


def format_dlc(summary: DLCSummary) -> str:
    """The original's summary lines, plus object counts."""
    s = summary
    return (f"DLC-Bench: {s.objects} objects, recognition judged wrong for {s.recognition_failed}\n"
            f"Average Positive Score: {s.pos:.3f}\n"
            f"Average Negative Score: {s.neg:.3f}\n"
            f"Summary (Pos\tNeg\tAvg(Pos, Neg)):\t{s.pos:.3f},\t{s.neg:.3f},\t{s.avg:.3f}")


__all__ = ["SUMMARY_KEYS", "DLCData", "load_dlc", "load_dlc_predictions", "load_dlc_judged", "DLCSummary",
           "summarize_dlc", "format_dlc"]
