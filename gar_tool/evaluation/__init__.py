"""Benchmark harness: run GAR on GAR-Bench / DLC-Bench, judge captions with an LLM, score.

Modules (one job each; nothing here imports torch — the model is injected or imported lazily by
the CLI):

=====================  ==========================================================================
``benchmarks``         the known benchmarks (CLI names, annotation files, sizes)
``gar_bench``          GAR-Bench annotations, question strings, prediction-file validation
``letters``            strict answer matching (the paper's) and a lenient letter parser
``scoring``            VQA accuracy per type, caption accuracy from judge verdicts, tables
``chunking``           multiple-choice items with more regions than prompt slots, asked in chunks
``runner``             the predictor protocols and the resumable inference loop
``gar_bench_run``      GAR over GAR-Bench → published prediction format
``dlc_bench``          DLC-Bench annotations, prediction / judged files, the summary rule
``dlc_run``            GAR over DLC-Bench → ``{object_id: description}``
``judge``              judge prompt templates (``prompts/``) and the OpenAI-compatible client
``judge_images``       the focal crops the judge is shown
``gar_bench_judge``    re-judging GAR-Bench captions
``dlc_judge``          DLC-Bench judging and per-object scoring
``files``              JSON I/O, atomic writes, the JSONL progress log
``progress``           progress bars on stderr
=====================  ==========================================================================
"""

from __future__ import annotations

from gar_tool.evaluation.benchmarks import BENCHMARKS, Benchmark, get_benchmark

__all__ = ["BENCHMARKS", "Benchmark", "get_benchmark"]
