"""Ablation in miniature: what GAR's mechanisms are worth on the shapes world, for one budget.

Every variant starts from the same untrained checkpoint and trains through the same curriculum
(``--stages``: each stage a question mix and a step count, on fresh records, starting from the
previous stage's model; ``gar_tool.training.train``), for the same number of steps; then answers
held-out short-answer questions about single regions of new scenes (exact match of the answer
word). Accuracy is split by region size (*small*: the region covers under 2 % of the image).

The curriculum is the start of the shipped model's (``examples/shapes-gar/TRAINING.md``): a
mixture of every question kind from the start leaves a model this small stuck at chance on
colour and shape for more than 1,000 steps (it learns size, readable from the mask alone), while
colour alone is learned in about 100 steps.

Variants:

* ``full`` — mask patch embedding + RoI replay, RoI box scaled once (``roi_double_scale=false``);
* ``double-scale`` — the same with the box scaled twice, as the released GAR weights were trained
  (the replayed window then sits near the top-left corner of the feature map);
* ``no-replay`` — crop tokens keep their own embeddings (no RoI features), in training and in
  evaluation;
* ``no-mask`` — the mask patch embedding is held at zero (the mask never enters the vision tower).

Run (each step is skipped when its output exists, so an interrupted run resumes)::

    .venv/bin/python benchmarks/ablation.py --work out/ablation --threads 1
    .venv/bin/python benchmarks/ablation.py --work /tmp/abl --stages colour:1@2 --items 12   # smoke
    .venv/bin/python benchmarks/ablation.py --work /tmp/x --score examples/shapes-gar   # one model, every kind

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

from gar_tool.runtime import cpu_isa

VARIANTS = ("full", "double-scale", "no-replay", "no-mask")
#: The first two stages of the shipped model's curriculum: colour alone, then colour and shape.
DEFAULT_STAGES = "colour:1@200/colour:1,shape:2@300"
#: The shipped model's geometry (``python -m gar_tool.shapes init`` keyword arguments).
DEFAULT_INIT = '{"hidden_size": 128, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "tie_embeddings": false}'


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


def parse_stages(text: str) -> list[tuple[dict[str, float], int]]:
    """``"colour:1@200/colour:1,shape:2@300"`` → ``[({"colour": 1.0}, 200), ({...}, 300)]``."""
    from gar_tool.shapes.dataset import parse_mix

    stages = []
    for part in text.split("/"):
        mix_text, sep, steps = part.partition("@")
        if not sep or not steps.isdigit() or int(steps) <= 0:
            raise ValueError(f"stage {part!r}: expected MIX@STEPS, e.g. colour:1,shape:2@300")
        stages.append((parse_mix(mix_text), int(steps)))
    return stages


def prepare(work: Path, args: argparse.Namespace, stages: list[tuple[dict[str, float], int]]) -> dict[str, Path]:
    from gar_tool.shapes.checkpoint import init_checkpoint
    from gar_tool.shapes.dataset import write_jsonl

    paths = {"init": work / "init"}
    for k, (mix, steps) in enumerate(stages):
        paths[f"data{k}"] = work / f"data{k}" / "train.jsonl"
        if not paths[f"data{k}"].is_file():
            write_jsonl(work / f"data{k}", steps * args.batch_size, seed=args.seed + 10 * k, mix=mix,
                        multiple_choice=0.0)
    if not (paths["init"] / "model.safetensors").is_file():
        init_checkpoint(paths["init"], **json.loads(args.init))
    return paths


def train_variant(variant: str, paths: dict[str, Path], out: Path, stages: list[tuple[dict[str, float], int]],
                  args: argparse.Namespace) -> float:
    """Train ``variant`` through every stage; the last stage's model ends up in ``out``."""
    from gar_tool.training import TrainConfig, train

    t0 = time.perf_counter()
    start = paths["init"]
    for k, (_, steps) in enumerate(stages):
        stage_out = out if k == len(stages) - 1 else out.parent / f"{out.name}-stage{k}"
        if not (stage_out / "training_log.json").is_file():
            cfg = TrainConfig(data=str(paths[f"data{k}"]), model=str(start), out=str(stage_out), lr=args.lr,
                              batch_size=args.batch_size, micro_batch=args.batch_size, max_steps=steps,
                              warmup=args.warmup, scheduler="constant_with_warmup", max_tiles=4,
                              logging_steps=max(1, steps // 10), save_steps=10 * steps, seed=args.seed,
                              progress=False, roi_double_scale=variant == "double-scale",
                              freeze=("mask-embedding",) if variant == "no-mask" else ())
            train(cfg, prepare_model=lambda m: as_variant(m, variant))
        start = stage_out
    return time.perf_counter() - t0


def held_out(n: int, seed: int, kinds: set[str], arities: tuple[int, ...] = (1,)) -> list[tuple[Any, Any]]:
    """``(rendered scene, item)`` pairs: ``n`` questions per arity, those of ``kinds`` kept."""
    from gar_tool.shapes.dataset import bench_items

    return [(r, it) for a in arities for r, it in bench_items(n, seed + a, arity=a) if it.kind in kinds]


def evaluate(variant: str, ckpt: Path, items: list[tuple[Any, Any]]) -> dict[str, list[int]]:
    """Exact-match tallies ``{"colour/small": [right, asked], ...}`` of ``variant`` at ``ckpt``."""
    from gar_tool.gar.checkpoint import load_gar_model
    from gar_tool.gar.predictor import GAR
    from gar_tool.gar.protocol import DecodeOptions
    from gar_tool.shapes.world import SMALL_FRACTION

    model, processor, _ = load_gar_model(str(ckpt), device="cpu", dtype="float32")
    gar = GAR(as_variant(model, variant), processor, name=f"{variant}:{ckpt}")
    requests = [gar.request(r.image, [{"mask": r.masks[k]} for k in it.shapes], it.open_question) for r, it in items]
    answers = []
    for i in range(0, len(requests), 16):
        answers += gar.answer(requests[i:i + 16], DecodeOptions(max_new_tokens=4))
    tally: dict[str, list[int]] = {}
    for (r, it), a in zip(items, answers):
        size = "small" if min(r.areas[k] for k in it.shapes) < SMALL_FRACTION else "large"
        ok = int(a.text.strip().lower() == it.open_answer.lower())
        for key in (f"{it.kind}/{size}", f"{it.kind}/all", f"all/{size}", "all/all"):
            t = tally.setdefault(key, [0, 0])
            t[0] += ok
            t[1] += 1
    return tally


def _pct(t: list[int]) -> str:
    return f"{100 * t[0] / t[1]:.1f}" if t[1] else "–"


def score(model: Path, args: argparse.Namespace) -> int:
    """``--score``: short-answer accuracy of ``model`` per kind, by region size."""
    from gar_tool.shapes.questions import PAIR_KINDS, SINGLE_KINDS

    items = held_out(args.items, args.seed + 2000, set(SINGLE_KINDS) | set(PAIR_KINDS), arities=(1, 2))
    acc = evaluate("full", model, items)
    print(f"# {model}: {len(items)} held-out short-answer questions; {args.threads} thread(s), CPU {cpu_isa()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| kind | small regions | large regions | all |")
    print("|---|---|---|---|")
    for kind in (*SINGLE_KINDS, *PAIR_KINDS, "all"):
        cells = [f"{_pct(acc.get(f'{kind}/{s}', [0, 0]))} ({acc.get(f'{kind}/{s}', [0, 0])[1]})"
                 for s in ("small", "large", "all")]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="folder for data, checkpoints and results")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--stages", default=DEFAULT_STAGES, help=f"curriculum, MIX@STEPS/... (default {DEFAULT_STAGES})")
    p.add_argument("--items", type=int, default=600, help="held-out items drawn (colour, shape and size; "
                   "only the kinds the stages train are asked)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", default=DEFAULT_INIT, help=f"init_checkpoint keyword arguments (JSON; default {DEFAULT_INIT})")
    p.add_argument("--score", metavar="DIR", help="no training: score the model in DIR on held-out short-answer "
                   "questions of every kind (single and two regions) and print the table")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; expected some of {VARIANTS}")
    try:
        stages = parse_stages(args.stages)
    except ValueError as e:
        p.error(str(e))
    if args.score:
        return score(Path(args.score), args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work, args, stages)
    kinds = {k for mix, _ in stages for k in mix}
    items = held_out(args.items, args.seed + 1000, kinds)
    results: dict[str, Any] = {"args": vars(args), "threads": args.threads, "cpu_isa": str(cpu_isa()),
                               "variants": {}}
    for v in variants:
        out = work / v
        seconds = None if (out / "training_log.json").is_file() else train_variant(v, paths, out, stages, args)
        acc = evaluate(v, out, items)
        results["variants"][v] = {"train_seconds": seconds, "accuracy": acc, "load_average": os.getloadavg()}
        (work / "results.json").write_text(json.dumps(results, indent=2))
    steps = sum(n for _, n in stages)
    print(f"# curriculum {args.stages} ({steps} steps × batch {args.batch_size}) from one untrained checkpoint; "
          f"{len(items)} held-out questions; {args.threads} thread(s), CPU {cpu_isa()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    cols = [f"{k}/{s}" for k in sorted(kinds) for s in ("small", "large")] + ["all/small", "all/large", "all/all"]
    print("| variant | " + " | ".join(c.replace("/", ", ") for c in cols) + " | train time |")
    print("|---|" + "---|" * (len(cols) + 1))
    for v, r in results["variants"].items():
        acc, secs = r["accuracy"], r["train_seconds"]
        cells = [f"{_pct(acc.get(c, [0, 0]))} ({acc.get(c, [0, 0])[1]})" for c in cols]
        print(f"| {v} | " + " | ".join(cells) + f" | {'(earlier run)' if secs is None else f'{secs / 60:.0f} min'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
