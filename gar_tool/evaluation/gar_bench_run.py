"""Running GAR over GAR-Bench (``gar eval run --benchmark gar-bench-vqa|...``).

Per item, as GAR's ``evaluation/GAR-Bench/inference.py`` does: open the image, decode
``mask_rles[k]`` as ``<Prompt{k}>``, build the question (:func:`gar_bench.build_question`), generate
greedily, decode *with* special tokens, ``strip()``, and drop the trailing ``<|eot_id|>``. The output file is the annotation list (items run so far, in benchmark order) with
``model_output`` added — the format of the published ``gar_1b_vqa.json``, scored by
``gar eval score``.

Items with more regions than ``predictor.prompt_slots``:

* ``oversized="pass"`` (``--compat original``): all regions are passed as the original did (the
  runtime in original mode treats ``<Prompt5>``+ like the official code: plain text, no region);
* ``oversized="chunk"`` (``--compat default``): VQA items are asked in chunks
  (:mod:`gar_tool.evaluation.chunking`); caption items cannot be split and fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from gar_tool.errors import InputError, PromptError
from gar_tool.evaluation.benchmarks import Benchmark
from gar_tool.evaluation.chunking import ask_in_chunks
from gar_tool.evaluation.files import atomic_write_json, open_run_log
from gar_tool.evaluation.gar_bench import build_question, load_annotations
from gar_tool.evaluation.runner import Answer, RegionPredictor, RunStats, Task, run_loop

Oversized = Literal["pass", "chunk"]


def gar_bench_text(answer: Answer) -> str:
    """The answer text as the original GAR-Bench script keeps it.

    The original decodes with special tokens kept, ``strip()``s and removes the trailing
    ``<|eot_id|>``; :class:`gar_tool.GAR` answers are decoded the same way (``<PromptN>`` mentions
    kept, end-of-turn token dropped), so only the ``strip()`` is repeated here.
    """
    return answer.text.strip()


def _regions(item: dict[str, Any], size: tuple[int, int]) -> Any:
    from gar_tool.regions.region import Region, Regions

    return Regions([Region.from_rle(rle, image_size=size) for rle in item["mask_rles"]])


def run_gar_bench(predictor: RegionPredictor, bench: Benchmark, data_dir: str | Path, out: str | Path, *,
                  limit: int | None = None, max_new_tokens: int = 1024, oversized: Oversized = "chunk",
                  model_name: str = "", show_progress: bool = True) -> RunStats:
    """Predict the items of a GAR-Bench task, resumably, and write ``out``.

    Args:
        predictor: ``relate(image, regions, question, max_new_tokens=)`` + ``prompt_slots``.
        bench: a GAR-Bench task (VQA, caption-simple or caption-detailed).
        data_dir: GAR-Bench folder (``annotations/`` + ``images/``).
        out: output JSON; ``<out>.progress.jsonl`` logs finished items (rerun to resume).
        limit: stop once this many items have predictions (missing images do not count).
        max_new_tokens: generation budget (the original: 1024).
        oversized: ``"pass"`` or ``"chunk"`` for items with more regions than prompt slots.
        model_name: recorded in the progress log header (a resume with another model is refused).
    """
    if oversized not in ("pass", "chunk"):
        raise InputError(f"oversized must be 'pass' or 'chunk', got {oversized!r}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be positive, got {max_new_tokens}")
    items = load_annotations(data_dir, bench)
    root = Path(data_dir)
    slots = int(predictor.prompt_slots)
    header = {"task": "run", "benchmark": bench.name, "model": model_name, "oversized": oversized,
              "max_new_tokens": max_new_tokens}
    log = open_run_log(out, header)
    stats = RunStats(benchmark=bench.title, total=len(items), out=str(out))
    counters = {"oversized": 0, "chunked": 0, "unresolved": 0, "passed_through": 0}

    def work(task: Task) -> dict[str, Any]:
        from gar_tool.evaluation.judge_images import open_rgb

        item = task.item
        pixels = open_rgb(task.image)  # stored pixel grid, no EXIF rotation (masks refer to it)
        regions = _regions(item, pixels.shape[:2])
        if len(regions) <= slots or oversized == "pass":
            ans = predictor.relate(pixels, regions, build_question(item, bench.kind),
                                   max_new_tokens=max_new_tokens)
            how = "direct" if len(regions) <= slots else "passed_through"
            return {"model_output": gar_bench_text(ans), "handling": how, "regions": len(regions)}
        if bench.kind != "vqa":
            raise PromptError(f"{len(regions)} regions do not fit {slots} prompt slots and only "
                              "multiple-choice items can be chunked; use --compat original")

        def ask(question: str, ids: list[int]) -> str:
            ans = predictor.relate(pixels, _pick(regions, ids), question, max_new_tokens=max_new_tokens)
            return gar_bench_text(ans)

        res = ask_in_chunks(item["question"], item["choices"], slots, ask)
        return {"model_output": res.model_output, "handling": "chunked" if res.resolved else "unresolved",
                "regions": len(regions), "calls": res.calls, "replies": res.replies, "reason": res.reason}

    tasks = [Task(item["image"], root / item["image"], item) for item in items]
    try:
        run_loop(tasks, work, log, stats, limit=limit, show_progress=show_progress, desc=bench.title)
    finally:
        records = log.records
        done = [{**item, "model_output": records[item["image"]]["model_output"]}
                for item in items if item["image"] in records]
        if done:
            atomic_write_json(out, done)  # also on interruption: a valid (partial) file
    for key in {t.key for t in tasks}.intersection(records):
        how = records[key].get("handling", "direct")
        if how != "direct":
            counters["oversized"] += 1
            counters[how] = counters.get(how, 0) + 1
    stats.counters = counters
    if counters["oversized"]:
        stats.notes.append(
            f"{counters['oversized']} item(s) have more than {slots} regions: "
            + (f"{counters['passed_through']} passed through as the original code did (<Prompt{slots}>+ "
               "are plain text)" if oversized == "pass" else
               f"{counters['chunked']} answered in chunks, {counters['unresolved']} unresolved "
               "(empty answer, scored wrong)"))
    return stats


def _pick(regions: Any, ids: list[int]) -> Any:
    from gar_tool.regions.region import Regions

    return Regions([regions[i] for i in ids])


__all__ = ["Oversized", "gar_bench_text", "run_gar_bench"]
