"""VideoRefer-Bench-Q: annotations, the question GAR is asked, frames and tracks per item, scoring.

Layout of the benchmark folder (``--data``; DAMO-NLP-SG/VideoRefer-Bench, videos from DAVIS 2017
and MeViS, downloaded separately)::

    VideoRefer-Bench-Q.json        1000 items: id, video, Question, type, options, Answer,
                                   frame_idx, annotation
    DAVIS/JPEGImages/480p/<name>/  frame folders (``item["video"]`` is relative to the folder;
    MeViS/valid_u/JPEGImages/<id>/ a video file works too)

``annotation[k]`` is object ``k``: ``{FRAME: {"segmentation": COCO RLE | null}}`` keyed by source
frame index (as a string) — 32 uniformly annotated frames per object; ``frame_idx`` is the frame
of the "single-frame mask" mode. The ``k``-th ``<region>`` of ``Question`` (written
``<objectN><region>``) is object ``k``.

How GAR answers an item (ours — GAR's repository has no VideoRefer script):

* the question is GAR's own multiple-choice format (as GAR-Bench-VQA): ``<objectN><region>`` →
  ``<Prompt{k}>``, then ``"Question: ...\\nOptions:\\n(A) ...\\nAnswer with the correct option's
  letter directly."``;
* ``mode="single"`` (VideoRefer's default): ``frames`` frames sampled uniformly from the video,
  ``frame_idx`` taking the place of the nearest sample; each object's mask on that frame only
  (other frames unknown), or, with a ``tracker``, that mask propagated by SAM 2 over the samples;
* ``mode="multi"``: ``frames`` frames sampled uniformly among the annotated ones, with their masks
  (``null`` = absent); an object masked on none of them gets one of its own frames in.

Scoring is VideoRefer's ``eval_videorefer_bench_q.py`` rule: the answer letter is the ``(X)`` in
``Answer``; the prediction's letter is its first ``(X)``, else its first ``X)``, else its first
character once ``.`` are removed; compared case-insensitively; accuracy per ``type`` and over all
items. (An empty prediction, which makes the original script fail, counts as wrong.) A lenient
letter parse (:func:`gar_tool.evaluation.letters.parse_letter`) is reported beside it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Sequence

from gar_tool.errors import InputError, PromptError
from gar_tool.evaluation.files import read_json
from gar_tool.evaluation.gar_bench import vqa_question
from gar_tool.evaluation.letters import parse_letter
from gar_tool.evaluation.scoring import Tally, VQAScore
from gar_tool.regions.refs import prompt_token

Mode = Literal["single", "multi"]
ANNOTATION_FILE = "VideoRefer-Bench-Q.json"
FIELDS: dict[str, type | tuple[type, ...]] = {"id": (int, str), "video": str, "Question": str, "type": str,
                                              "options": list, "Answer": str, "frame_idx": (str, int),
                                              "annotation": list}
_REGION_RE = re.compile(r"(?:<object\d+>)?<region>")
_PAREN_RE = re.compile(r"\(([A-Z])\)")
_CLOSE_RE = re.compile(r"([A-Z])\)")


def load_items(data_dir: str | Path, annotation_file: str = ANNOTATION_FILE) -> list[dict[str, Any]]:
    """Read and validate the annotation file in ``data_dir``."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"benchmark folder not found: {str(root)!r}")
    path = root / annotation_file
    data = read_json(path, "VideoRefer-Bench-Q annotation file")
    if not isinstance(data, list):
        raise InputError(f"{str(path)!r}: expected a JSON list of items, got {type(data).__name__}")
    seen: set[str] = set()
    for i, item in enumerate(data):
        check_item(item, f"{path.name} item {i}")
        if str(item["id"]) in seen:
            raise InputError(f"{path.name}: id {item['id']!r} occurs twice")
        seen.add(str(item["id"]))
    return data


def check_item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(item).__name__}")
    missing = [f for f in FIELDS if f not in item]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)} (an item has {', '.join(FIELDS)})")
    for name, typ in FIELDS.items():
        if not isinstance(item[name], typ):
            raise InputError(f"{where}: field {name!r} has the wrong type ({type(item[name]).__name__})")
    for k, obj in enumerate(item["annotation"]):
        if not isinstance(obj, dict) or not obj:
            raise InputError(f"{where}: annotation[{k}] must map frame indices to {{'segmentation': ...}}")
        for frame, entry in obj.items():
            if not str(frame).isdigit() or not isinstance(entry, dict) or "segmentation" not in entry:
                raise InputError(f"{where}: annotation[{k}][{frame!r}] must be {{'segmentation': RLE or null}}")


def gar_question(item: dict[str, Any]) -> str:
    """The question GAR is asked: ``<region>`` mentions → ``<Prompt{k}>``, GAR's MC format."""
    count = 0

    def prompt(_: re.Match) -> str:
        nonlocal count
        count += 1
        return prompt_token(count - 1)

    text = _REGION_RE.sub(prompt, item["Question"])
    if count != len(item["annotation"]):
        raise PromptError(f"item {item['id']}: the question has {count} <region> mention(s) but "
                          f"{len(item['annotation'])} annotated object(s)")
    return vqa_question(text, item["options"])


def key_frame_indices(total: int, frames: int, key: int) -> tuple[list[int], int]:
    """``frames`` uniform sample indices of ``total`` with ``key`` in place of the nearest one;
    returns the indices and the position of ``key`` among them."""
    from gar_tool.video.clip import uniform_indices

    if not 0 <= key < total:
        raise InputError(f"frame_idx {key} is outside the video's {total} frames")
    idx = uniform_indices(total, frames)
    if key not in idx:
        nearest = min(range(len(idx)), key=lambda i: abs(idx[i] - key))
        idx[nearest] = key
        idx = sorted(set(idx))
    return idx, idx.index(key)


def annotated_frames(item: dict[str, Any]) -> list[int]:
    """Every source frame some object of ``item`` is annotated on, increasing."""
    return sorted({int(f) for obj in item["annotation"] for f in obj})


def multi_indices(item: dict[str, Any], frames: int) -> list[int]:
    """``frames`` frames spread uniformly over the annotated ones (all when fewer); an object that
    has a mask on none of them gets its middle masked frame in place of the nearest sample."""
    from gar_tool.video.clip import uniform_indices

    ann = annotated_frames(item)
    picked = [ann[i] for i in uniform_indices(len(ann), frames)]
    for obj in item["annotation"]:
        masked = sorted(int(f) for f, e in obj.items() if e["segmentation"] is not None)
        if masked and not set(masked) & set(picked):
            mid = masked[len(masked) // 2]
            nearest = min(range(len(picked)), key=lambda i: abs(picked[i] - mid))
            picked[nearest] = mid
            picked = sorted(set(picked))
    return picked


def object_tracks(item: dict[str, Any], clip: Any) -> list[Any]:
    """Per object a track over ``clip``'s frames from the annotation: a mask where annotated,
    absent where the segmentation is null or empty, unknown where the frame is not annotated."""
    from gar_tool.video.track import coerce_track

    tracks = []
    for k, obj in enumerate(item["annotation"]):
        frames = {i: obj[str(src)]["segmentation"] for i, src in enumerate(clip.source_indices) if str(src) in obj}
        tracks.append(coerce_track({"frames": frames}, clip, what=f"item {item['id']} object {k}"))
    return tracks


# --------------------------------------------------------------------------- predictions, scoring
def answer_letter(answer: str) -> str:
    """The ground-truth letter: the ``(X)`` in ``Answer`` (the whole string when there is none)."""
    m = _PAREN_RE.search(answer)
    return m.group(1) if m else answer


def predicted_letter(pred: str) -> str:
    """VideoRefer's parse of a prediction (module docstring); ``""`` for an empty prediction."""
    for rx in (_PAREN_RE, _CLOSE_RE):
        m = rx.search(pred)
        if m:
            return m.group(1)
    text = pred.replace(".", "")
    return text[0] if text else ""


def is_correct(pred: str, answer: str) -> bool:
    """VideoRefer's rule: the parsed letters agree, case-insensitively."""
    letter = predicted_letter(pred)
    return bool(letter) and letter.lower() == answer_letter(answer).lower()


def load_predictions(path: str | Path, *, items: Sequence[dict[str, Any]] | None = None,
                     expected: int = 1000, allow_partial: bool = False) -> list[dict[str, Any]]:
    """Read a prediction file: JSON lines (VideoRefer's format, as ``gar eval run`` writes it) or a
    JSON list, each record with ``Answer``, ``pred`` and ``type`` (and ``id`` to match ``items``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"prediction file not found: {str(p)!r}")
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        records = read_json(p, "prediction file")
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{p.name} line {n} is not JSON ({exc.msg})") from None
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not all(isinstance(r.get(f), str) for f in ("Answer", "pred", "type")):
            raise InputError(f"{p.name} record {i}: expected an object with string fields Answer, pred, type")
    if items is not None:
        by_id = {str(it["id"]): it for it in items}
        for i, r in enumerate(records):
            ref = by_id.get(str(r.get("id")))
            if ref is None:
                raise InputError(f"{p.name} record {i}: id {r.get('id')!r} is not in the annotations")
            if ref["Answer"] != r["Answer"] or ref["type"] != r["type"]:
                raise InputError(f"{p.name} record {i} (id {r['id']}): Answer/type differ from the annotation")
        expected = len(items)
    if len(records) != expected and not (allow_partial and 0 < len(records) < expected):
        raise InputError(f"{p.name}: expected {expected} VideoRefer-Bench-Q predictions, got {len(records)}"
                         + (" (pass --allow-partial to score a subset)" if len(records) < expected else ""))
    return records


def score(records: Sequence[dict[str, Any]]) -> VQAScore:
    """Accuracy per type (in order of first appearance) and overall; ``lenient`` = our letter parse."""
    out = VQAScore()
    for r in records:
        strict = is_correct(r["pred"], r["Answer"])
        options = r.get("options") or []
        lenient = parse_letter(r["pred"], options) == answer_letter(r["Answer"]).upper()
        out.overall.add(strict, lenient)
        out.by_type.setdefault(r["type"], Tally()).add(strict, lenient)
    return out


def format_score(s: VQAScore) -> str:
    rows = list(s.by_type.items()) + [("average", s.overall)]
    width = max(len(t) for t, _ in rows)
    lines = ["VideoRefer-Bench-Q: VideoRefer's letter rule; lenient = our letter parser",
             f"{'type':<{width}}  {'correct':>9}  {'accuracy':>8}  {'lenient':>7}"]
    for t, v in rows:
        if t == "average":
            lines.append("-" * len(lines[1]))
        lines.append(f"{t:<{width}}  {f'{v.correct}/{v.total}':>9}  {v.accuracy:>8.1f}  {v.lenient_accuracy:>7.1f}")
    return "\n".join(lines)


__all__ = ["Mode", "ANNOTATION_FILE", "load_items", "check_item", "gar_question", "key_frame_indices",
           "annotated_frames", "multi_indices", "object_tracks", "answer_letter", "predicted_letter",
           "is_correct", "load_predictions", "score", "format_score"]
