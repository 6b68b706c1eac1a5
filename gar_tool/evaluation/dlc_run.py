"""Running GAR over DLC-Bench (``gar eval run --benchmark dlc-bench``): one description per object.

As GAR's ``evaluation/DLC-Bench/inference.py``: objects in COCO order (images in file order, then
their annotations), the object's mask as the single region, GAR's describe prompt, greedy decoding,
special tokens skipped, ``strip()`` (:func:`dlc_text`). Output: ``{object_id: description}`` (the format of the
published ``gar_1b.json``), judged and scored by ``gar eval score --benchmark dlc-bench --judge``.

The images are not distributed with the annotations; see :mod:`gar_tool.evaluation.dlc_bench` for
how to download them. Objects whose image is missing are skipped and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gar_tool.errors import InputError
from gar_tool.evaluation.dlc_bench import load_dlc
from gar_tool.evaluation.files import atomic_write_json, open_run_log
from gar_tool.evaluation.runner import Answer, RegionDescriber, RunStats, Task, run_loop


def dlc_text(answer: Answer, predictor: Any) -> str:
    """The description as the original DLC-Bench script keeps it: special tokens skipped, stripped.

    :class:`gar_tool.GAR` keeps special tokens (``<PromptN>``) in ``answer.text``, so the token ids
    are re-decoded with ``skip_special_tokens=True`` when the predictor exposes
    ``processor.tokenizer``; otherwise ``answer.text.strip()`` is used.
    """
    tok = getattr(getattr(predictor, "processor", None), "tokenizer", None)
    ids = getattr(answer, "token_ids", None)
    if tok is not None and ids is not None and callable(getattr(tok, "decode", None)):
        return str(tok.decode(list(ids), skip_special_tokens=True)).strip()
    return answer.text.strip()


def run_dlc(predictor: RegionDescriber, data_dir: str | Path, out: str | Path, *, limit: int | None = None,
            max_new_tokens: int = 1024, model_name: str = "", show_progress: bool = True) -> RunStats:
    """Describe every DLC-Bench object, resumably, and write ``out`` (see the module docstring)."""
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be positive, got {max_new_tokens}")
    data = load_dlc(data_dir)
    image_dir = data.image_dir if data.image_dir is not None else Path(data_dir) / "images"
    log = open_run_log(out, {"task": "run", "benchmark": "dlc-bench", "model": model_name,
                             "max_new_tokens": max_new_tokens})
    stats = RunStats(benchmark="DLC-Bench", total=len(data.objects), out=str(out))
    if data.image_dir is None:
        stats.notes.append(f"no images folder in {str(data_dir)!r}: download the DLC-Bench images "
                           "(hf download nvidia/DLC-Bench --repo-type dataset --include 'images/*' "
                           f"--local-dir {data_dir})")

    def work(task: Task) -> dict[str, Any]:
        from gar_tool.regions.region import Region
        from gar_tool.evaluation.judge_images import open_rgb

        pixels = open_rgb(task.image)  # stored pixel grid, no EXIF rotation (masks refer to it)
        region = Region.from_rle(task.item["segmentation"], image_size=pixels.shape[:2])
        ans = predictor.describe(pixels, region, max_new_tokens=max_new_tokens)
        return {"model_output": dlc_text(ans, predictor)}

    tasks = [Task(key, image_dir / data.images[ann["image_id"]]["file_name"], ann)
             for key, ann in data.objects.items()]
    try:
        run_loop(tasks, work, log, stats, limit=limit, show_progress=show_progress, desc="DLC-Bench")
    finally:
        records = log.records
        done = {t.key: records[t.key]["model_output"] for t in tasks if t.key in records}
        if done:
            atomic_write_json(out, done)  # also on interruption: a valid (partial) file
    return stats


__all__ = ["dlc_text", "run_dlc"]
