"""``gar eval score|run``: benchmark scoring, LLM re-judging and GAR inference runs.

Examples::

    gar eval score --benchmark gar-bench-vqa --pred gar_1b_vqa.json [--json]
    gar eval score --benchmark gar-bench-caption-simple --pred gar_1b_simple_eval.json
    gar eval score --benchmark gar-bench-caption-simple --pred gar_1b_simple.json \\
        --judge openai:gpt-4o-2024-11-20 --data GAR-Bench/ --out gar_1b_simple_eval.json
    gar eval score --benchmark dlc-bench --pred gar_1b_eval_gpt.json [--data DLC-Bench/]
    gar eval run --benchmark gar-bench-vqa --data GAR-Bench/ --model HaochenWang/GAR-1B --out vqa.json
    gar eval run --benchmark videorefer-bench-q --data VideoRefer-Bench-Q/ --model HaochenWang/GAR-8B \\
        --out videorefer.jsonl [--mode single|multi] [--frames 16] [--tracker sam2]
    gar eval score --benchmark videorefer-bench-q --pred videorefer.jsonl [--data VideoRefer-Bench-Q/]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gar_tool.errors import GARError, InputError
from gar_tool.evaluation.benchmarks import BENCHMARKS, Benchmark, get_benchmark

_NAMES = ", ".join(BENCHMARKS)
_DLC_IMAGES = ("DLC-Bench images are not shipped with its annotations: fetch the benchmark's images "
               "from NVIDIA's describe-anything DLC-Bench release (hf download nvidia/DLC-Bench "
               "--repo-type dataset --include 'images/*' --local-dir DIR) next to annotations/.")
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def register(subparsers: Any) -> None:
    """Add ``eval`` with its ``score`` and ``run`` sub-commands."""
    p = subparsers.add_parser("eval", help="score / run benchmarks (GAR-Bench, DLC-Bench, VideoRefer-Bench-Q)",
                              description="Benchmarks: " + _NAMES)
    sub = p.add_subparsers(dest="eval_command", metavar="{score,run}")
    sub.required = True

    s = sub.add_parser("score", help="score a prediction or judged file; optionally re-judge with an LLM",
                       description="Score predictions with the paper's rules. VQA: exact match. Captions "
                       "and DLC-Bench: from the judge's verdicts in the file, or re-judged with --judge.")
    s.add_argument("--benchmark", required=True, help=f"one of: {_NAMES}")
    s.add_argument("--pred", required=True, help="prediction file (JSON), or a judged file")
    s.add_argument("--json", action="store_true", help="print the scores as JSON")
    s.add_argument("--data", help="benchmark folder (annotations/, images/): cross-checks the predictions "
                   "against the annotations; needed to judge (the judge sees the images)")
    s.add_argument("--allow-partial", action="store_true", help="accept fewer items than the benchmark has")
    g = s.add_argument_group("LLM judge (captions, DLC-Bench)")
    g.add_argument("--judge", metavar="PROVIDER:MODEL", help="re-judge with this model, e.g. openai:gpt-4o")
    g.add_argument("--judge-base-url", help=f"OpenAI-compatible server (default $OPENAI_BASE_URL or {DEFAULT_BASE_URL})")
    g.add_argument("--judge-api-key-env", metavar="VAR", help="environment variable holding the API key "
                   "(default OPENAI_API_KEY; without it no key is sent)")
    g.add_argument("--judge-text-only", action="store_true", help="GAR-Bench captions: send only the "
                   "prompt, no images (not the paper's protocol)")
    g.add_argument("--judge-max-calls", type=int, metavar="N", help="stop after N judge requests")
    g.add_argument("--out", help="write the judged file here (and resume from <out>.progress.jsonl)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.set_defaults(func=score_command)

    r = sub.add_parser("run", help="run GAR over a benchmark and write predictions",
                       description="Run GAR over a benchmark, resumably (rerun the same command after an "
                       "interruption). " + _DLC_IMAGES)
    r.add_argument("--benchmark", required=True, help=f"one of: {_NAMES}")
    r.add_argument("--data", required=True, help="benchmark folder: annotations/ and images/")
    r.add_argument("--model", required=True, help="GAR checkpoint: local directory or hub id")
    r.add_argument("--out", help="output JSON (default: <benchmark>-predictions.json)")
    r.add_argument("--limit", type=int, help="stop once N items have predictions")
    r.add_argument("--compat", choices=("default", "original"), default="default",
                   help="original: the official code's behaviour (items with >5 regions passed as is); "
                   "default: such multiple-choice items are asked in chunks")
    r.add_argument("--device", help="torch device (default: the runtime's choice)")
    r.add_argument("--dtype", help="float32 | bfloat16 | float16 (default: the runtime's choice)")
    r.add_argument("--max-new-tokens", type=int, default=1024, help="generation budget (original: 1024)")
    r.add_argument("--json", action="store_true", help="print the run summary as JSON")
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    v = r.add_argument_group("video benchmarks (VideoRefer-Bench-Q)")
    v.add_argument("--frames", type=int, default=16, help="frames per item (default 16, the benchmark's protocol)")
    v.add_argument("--mode", choices=("single", "multi"), default="single",
                   help="single: the key frame's masks (VideoRefer's default); multi: the annotated masks")
    v.add_argument("--tracker", metavar="sam2|DIR", help="single mode: propagate the key-frame masks with SAM 2")
    a = r.add_argument_group("planner agent instead of GAR alone (GAR-Bench VQA)")
    a.add_argument("--agent", metavar="SPEC", help="planner model: openai:MODEL, ollama:MODEL, "
                   "anthropic:MODEL or hf:REPO_OR_DIR; the agent answers with the gar tools over --model")
    a.add_argument("--agent-base-url", help="OpenAI-compatible server for an openai: agent")
    a.add_argument("--agent-max-steps", type=int, default=6, help="tool steps per item (default 6)")
    r.set_defaults(func=run_command)


# ------------------------------------------------------------------------------------------- score
def score_command(args: argparse.Namespace) -> int:
    """``gar eval score``: print the scores (table or JSON); exit code 0."""
    bench = get_benchmark(args.benchmark)
    if args.judge_max_calls is not None and args.judge_max_calls < 1:
        raise InputError(f"--judge-max-calls must be positive, got {args.judge_max_calls}")
    if bench.kind == "videorefer-q":
        result, text = _score_videorefer(args, bench)
    elif bench.kind == "vqa":
        if args.judge:
            raise InputError("gar-bench-vqa is scored by exact match; --judge applies to captions and dlc-bench")
        result, text = _score_vqa(args, bench)
    elif bench.kind == "dlc":
        result, text = _score_dlc(args, bench)
    else:
        result, text = _score_captions(args, bench)
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


def _score_vqa(args: argparse.Namespace, bench: Benchmark) -> tuple[dict, str]:
    from gar_tool.evaluation.gar_bench import load_annotations, load_predictions
    from gar_tool.evaluation.scoring import format_vqa, score_vqa

    ann = load_annotations(args.data, bench) if args.data else None
    preds = load_predictions(args.pred, bench, annotations=ann, allow_partial=args.allow_partial)
    score = score_vqa(preds)
    return score.as_dict(), format_vqa(score, bench.title) + _partial_note(len(preds), bench.size, ann)


def _score_captions(args: argparse.Namespace, bench: Benchmark) -> tuple[dict, str]:
    from gar_tool.evaluation.gar_bench import load_annotations, load_predictions
    from gar_tool.evaluation.scoring import format_captions, score_captions

    ann = load_annotations(args.data, bench) if args.data else None
    if args.judge:
        from gar_tool.evaluation.gar_bench_judge import judge_captions

        if not args.data and not args.judge_text_only:
            raise InputError("re-judging shows the judge the image and region crops: pass the GAR-Bench "
                             "folder as --data, or --judge-text-only (not the paper's protocol)")
        preds = load_predictions(args.pred, bench, annotations=ann, allow_partial=args.allow_partial)
        with _make_judge(args) as judge:
            preds = judge_captions(preds, bench, judge, data_dir=None if args.judge_text_only else args.data,
                                   out=args.out, show_progress=not args.no_progress)
    else:
        preds = load_predictions(args.pred, bench, annotations=ann, judged=True,
                                 allow_partial=args.allow_partial)
    score = score_captions(preds)
    return score.as_dict(), format_captions(score, bench.title) + _partial_note(len(preds), bench.size, ann)


def _score_dlc(args: argparse.Namespace, bench: Benchmark) -> tuple[dict, str]:
    from gar_tool.evaluation.dlc_bench import (
        format_dlc,
        load_dlc,
        load_dlc_judged,
        load_dlc_predictions,
        summarize_dlc,
    )

    data = load_dlc(args.data) if args.data else None
    keys = list(data.qa) if data is not None else None
    note = ""
    if args.judge:
        from gar_tool.evaluation.dlc_judge import judge_dlc

        if data is None:
            raise InputError("judging DLC-Bench needs its folder (qa.json, class_names.json, images/) as --data. "
                             + _DLC_IMAGES)
        if args.judge_text_only:
            raise InputError("--judge-text-only is not supported for dlc-bench (the paper's judge sees the images)")
        preds = load_dlc_predictions(args.pred, keys, expected=bench.size, allow_partial=args.allow_partial)
        with _make_judge(args) as judge:
            results = judge_dlc(preds, data, judge, out=args.out, show_progress=not args.no_progress)
        results = {k: v for k, v in results.items() if k in preds}
    else:
        results = load_dlc_judged(args.pred, keys, expected=bench.size, allow_partial=args.allow_partial)
        if data is not None:
            from gar_tool.evaluation.dlc_judge import rescore

            stored = summarize_dlc(results)
            results = rescore(results, data)
            same = summarize_dlc(results) == stored
            note = ("\nrescored from the stored judge replies with qa.json: "
                    + ("identical to the stored scores" if same else "DIFFERS from the stored scores"))
    summary = summarize_dlc(results)
    return summary.as_dict(), format_dlc(summary) + note


def _score_videorefer(args: argparse.Namespace, bench: Benchmark) -> tuple[dict, str]:
    from gar_tool.evaluation.videorefer import format_score, load_items, load_predictions, score

    if args.judge:
        raise InputError("videorefer-bench-q is scored by its answer letters; --judge does not apply")
    items = load_items(args.data, bench.annotation_file) if args.data else None
    records = load_predictions(args.pred, items=items, expected=bench.size, allow_partial=args.allow_partial)
    s = score(records)
    return s.as_dict(), format_score(s) + _partial_note(len(records), bench.size, items)


def _partial_note(n: int, size: int, ann: Any) -> str:
    total = len(ann) if ann is not None else size
    return f"\n(partial: {n} of {total} items scored)" if n < total else ""


def _make_judge(args: argparse.Namespace) -> Any:
    from gar_tool.evaluation.judge import ChatJudge, parse_judge_spec

    spec = parse_judge_spec(args.judge)
    var = args.judge_api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(var) or None
    if args.judge_api_key_env and key is None:
        raise InputError(f"--judge-api-key-env {var}: environment variable {var} is not set")
    base = args.judge_base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    if args.out is None:
        print("note: without --out the judge's replies are not saved", file=sys.stderr)
    return ChatJudge(spec.model, base, key, max_calls=args.judge_max_calls)


# --------------------------------------------------------------------------------------------- run
def run_command(args: argparse.Namespace) -> int:
    """``gar eval run``: run GAR, write predictions, print a summary; exit code 0."""
    bench = get_benchmark(args.benchmark)
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be a positive number of items, got {args.limit}")
    if args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be positive, got {args.max_new_tokens}")
    out = Path(args.out or f"{bench.name}-predictions.json")
    _check_data(bench, args.data)  # cheap checks before the model is loaded
    if args.agent and bench.kind == "dlc":
        raise InputError("--agent runs multiple-choice GAR-Bench items; DLC-Bench runs GAR alone")
    if bench.kind == "videorefer-q":
        return _run_videorefer(args, Path(args.out or f"{bench.name}-predictions.jsonl"))
    gar = load_gar(args.model, device=args.device, dtype=args.dtype, compat=args.compat)
    if args.agent:
        gar = load_agent_predictor(gar, args.agent, base_url=args.agent_base_url, max_steps=args.agent_max_steps)
    progress = not args.no_progress
    if bench.kind == "dlc":
        from gar_tool.evaluation.dlc_run import run_dlc

        stats = run_dlc(gar, args.data, out, limit=args.limit, max_new_tokens=args.max_new_tokens,
                        model_name=args.model, show_progress=progress)
    else:
        from gar_tool.evaluation.gar_bench_run import run_gar_bench

        stats = run_gar_bench(gar, bench, args.data, out, limit=args.limit,
                              max_new_tokens=args.max_new_tokens,
                              oversized="pass" if args.compat == "original" else "chunk",
                              model_name=args.model if not args.agent else f"{args.model} + agent {args.agent}",
                              show_progress=progress)
    print(json.dumps(stats.as_dict(), indent=2) if args.json else "\n".join(stats.lines()))
    return 0


def _run_videorefer(args: argparse.Namespace, out: Path) -> int:
    from gar_tool.evaluation.videorefer_run import run_videorefer
    from gar_tool.video.clip import check_frame_count

    if args.agent:
        raise InputError("--agent runs GAR-Bench VQA items; VideoRefer-Bench-Q runs GAR alone")
    check_frame_count(args.frames, "--frames")
    if args.tracker and args.mode != "single":
        raise InputError("--tracker propagates the key frame's masks: use it with --mode single")
    gar = load_gar(args.model, device=args.device, dtype=args.dtype, compat=args.compat)
    tracker = None
    if args.tracker:
        from gar_tool.video.tracker import load_tracker

        tracker = load_tracker(args.tracker, device=args.device, dtype=args.dtype)
    stats = run_videorefer(gar, args.data, out, mode=args.mode, frames=args.frames, tracker=tracker,
                           limit=args.limit, max_new_tokens=args.max_new_tokens, model_name=args.model,
                           show_progress=not args.no_progress)
    print(json.dumps(stats.as_dict(), indent=2) if args.json else "\n".join(stats.lines()))
    return 0


def _check_data(bench: Benchmark, data: str) -> None:
    if bench.kind == "videorefer-q":
        from gar_tool.evaluation.videorefer import load_items

        load_items(data, bench.annotation_file)
    elif bench.kind == "dlc":
        from gar_tool.evaluation.dlc_bench import load_dlc

        load_dlc(data)
    else:
        from gar_tool.evaluation.gar_bench import load_annotations

        load_annotations(data, bench)


def load_gar(model: str, **kwargs: Any) -> Any:
    """``gar_tool.GAR.from_pretrained(model, **kwargs)``, imported only now (torch is heavy)."""
    try:
        from gar_tool import GAR
    except ImportError as exc:
        raise GARError(f"the GAR runtime (gar_tool.GAR) is not available: {exc}") from None
    return GAR.from_pretrained(model, **kwargs)


def load_agent_predictor(gar: Any, spec: str, **kwargs: Any) -> Any:
    """The planner agent as a predictor, from the ``gar.predictors`` entry point (``agents``)."""
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="gar.predictors") if ep.name == "planner"]
    if not eps:
        raise GARError("--agent needs the agents package installed (entry point gar.predictors:planner)")
    return eps[0].load()(gar, spec, **kwargs)


__all__ = ["register", "score_command", "run_command", "load_gar", "load_agent_predictor"]
