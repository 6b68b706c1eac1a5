"""Ablation in miniature: what GAR's mechanisms are worth on the shapes world, for one budget.

Every variant starts from the same untrained checkpoint and trains on the same records, in the
same order, for the same number of steps (``gar_tool.training.train``); then answers the
held-out single- and two-region multiple-choice benchmarks with ``gar eval``'s runner and
exact-match rule. Accuracy is split by region size (an item is *small* when its smallest region
covers under 2 % of the image).

Variants:

* ``full`` — mask patch embedding + RoI replay, RoI box scaled once (``roi_double_scale=false``);
* ``double-scale`` — the same with the box scaled twice, as the released GAR weights were trained
  (the replayed window then sits near the top-left corner of the feature map);
* ``no-replay`` — crop tokens keep their own embeddings (no RoI features), in training and in
  evaluation;
* ``no-mask`` — the mask patch embedding is held at zero (the mask never enters the vision tower).

Run (each step is skipped when its output exists, so an interrupted run resumes)::

    .venv/bin/python benchmarks/ablation.py --work out/ablation --records 24000 --steps 750 --threads 1
    .venv/bin/python benchmarks/ablation.py --work /tmp/abl --records 64 --steps 2 --items 12   # smoke

Prints a Markdown table (and writes ``WORK/results.json``) with the thread count, the machine's
load average and the CPU's vector extensions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from batch_throughput import cpu_isa

VARIANTS = ("full", "double-scale", "no-replay", "no-mask")


def no_replay_class() -> type:
    """A GARModel whose crop tokens are never overwritten by RoI features."""
    from gar_tool.gar.modeling import GARModel

    class NoReplayGAR(GARModel):
        def build_inputs_embeds(self, input_ids, image_features, replay, replay_sample, replay_token_ids):
            return super().build_inputs_embeds(input_ids, image_features, replay[:0], replay_sample[:0],
                                               replay_token_ids[:0])

    return NoReplayGAR


def as_variant(model: Any, variant: str) -> Any:
    """``model`` (a GARModel) turned into ``variant`` (the weights are shared)."""
    import torch

    if variant == "no-replay":
        return no_replay_class()(model.mllm, model.mask_patch_embedding, model.settings)
    if variant == "no-mask":
        with torch.no_grad():
            model.mask_patch_embedding.weight.zero_()
    return model


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    from gar_tool.shapes.checkpoint import init_checkpoint
    from gar_tool.shapes.dataset import write_bench, write_jsonl

    paths = {"data": work / "data" / "train.jsonl", "init": work / "init",
             "single": work / "bench-single", "pair": work / "bench-pair"}
    if not paths["data"].is_file():
        write_jsonl(work / "data", args.records, seed=args.seed, turns=args.turns)
    if not (paths["init"] / "model.safetensors").is_file():
        init_checkpoint(paths["init"], **json.loads(args.init))
    for name, arity, seed in (("single", 1, args.seed + 1), ("pair", 2, args.seed + 2)):
        if not (paths[name] / "annotations").is_dir():
            write_bench(paths[name], args.items, seed=seed, arity=arity)
    return paths


def train_variant(variant: str, paths: dict[str, Path], out: Path, args: argparse.Namespace) -> float:
    from gar_tool.training import TrainConfig, train

    cfg = TrainConfig(data=str(paths["data"]), model=str(paths["init"]), out=str(out), lr=args.lr,
                      batch_size=args.batch_size, micro_batch=args.batch_size, max_steps=args.steps,
                      warmup=args.warmup, max_tiles=None, logging_steps=max(1, args.steps // 20),
                      save_steps=max(1, args.steps // 4), seed=args.seed, progress=False,
                      roi_double_scale=variant == "double-scale",
                      freeze=("mask-embedding",) if variant == "no-mask" else ())
    resume = "latest" if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()) else None
    t0 = time.perf_counter()
    train(TrainConfig(**{**cfg.__dict__, "resume": resume}), prepare_model=lambda m: as_variant(m, variant))
    return time.perf_counter() - t0


def evaluate(variant: str, ckpt: Path, paths: dict[str, Path], work: Path) -> dict[str, dict[str, list[int]]]:
    from gar_tool.evaluation.benchmarks import get_benchmark
    from gar_tool.evaluation.gar_bench_run import run_gar_bench
    from gar_tool.gar.checkpoint import load_gar_model
    from gar_tool.gar.predictor import GAR

    model, processor, _ = load_gar_model(str(ckpt), device="cpu", dtype="float32")
    gar = GAR(as_variant(model, variant), processor, name=f"{variant}:{ckpt}")
    out: dict[str, dict[str, list[int]]] = {}
    for bench in ("single", "pair"):
        pred = work / f"pred-{variant}-{bench}.json"
        run_gar_bench(gar, get_benchmark("gar-bench-vqa"), paths[bench], pred, max_new_tokens=4,
                      model_name=gar.name, show_progress=False)
        tally: dict[str, list[int]] = {"small": [0, 0], "large": [0, 0], "all": [0, 0]}
        for item in json.loads(pred.read_text()):
            ok = int(item["model_output"].strip().lower() == item["answer"].lower())
            for key in (item["size_split"], "all"):
                tally[key][0] += ok
                tally[key][1] += 1
        out[bench] = tally
    return out


def _pct(t: list[int]) -> str:
    return f"{100 * t[0] / t[1]:.1f}" if t[1] else "–"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="folder for data, checkpoints and results")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--records", type=int, default=24000, help="training questions")
    p.add_argument("--turns", type=int, default=3, help="questions per training conversation")
    p.add_argument("--items", type=int, default=300, help="items per benchmark")
    p.add_argument("--steps", type=int, default=750)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.03)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", default="{}", help="init_checkpoint keyword arguments (JSON)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; expected some of {VARIANTS}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work, args)
    results: dict[str, Any] = {"args": vars(args), "threads": args.threads, "cpu_isa": cpu_isa(),
                               "variants": {}}
    for v in variants:
        out = work / v
        seconds = None if (out / "training_log.json").is_file() else train_variant(v, paths, out, args)
        acc = evaluate(v, out, paths, work)
        results["variants"][v] = {"train_seconds": seconds, **acc, "load_average": os.getloadavg()}
        (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"# {args.steps} steps × batch {args.batch_size} from one untrained checkpoint, "
          f"{args.records} training questions; {args.items} held-out items per benchmark; "
          f"{args.threads} thread(s), CPU {cpu_isa()}, load average {os.getloadavg()[0]:.1f}")
    print("| variant | 1 region, small | 1 region, large | 1 region, all | 2 regions, small | "
          "2 regions, large | 2 regions, all | train time |")
    print("|---|---|---|---|---|---|---|---|")
    for v, r in results["variants"].items():
        s, q = r["single"], r["pair"]
        secs = r["train_seconds"]
        print(f"| {v} | {_pct(s['small'])} | {_pct(s['large'])} | {_pct(s['all'])} | {_pct(q['small'])} | "
              f"{_pct(q['large'])} | {_pct(q['all'])} | {'(earlier run)' if secs is None else f'{secs / 60:.0f} min'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
