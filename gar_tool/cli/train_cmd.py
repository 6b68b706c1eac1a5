"""``gar train``: fine-tune GAR on a ``datasets`` folder or a JSONL manifest.

Examples::

    gar train --data my_regions/ --model HaochenWang/GAR-1B --out gar-mine --bf16
    gar train --data train.jsonl --model gar-mine --out gar-lora --lora --freeze vision
    torchrun --nproc-per-node 8 -m gar_tool.cli train --data ... --model ... --out ...   # DDP
    gar train ... --resume            # continue from the latest checkpoint in OUT/checkpoints
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gar_tool.cli.argtypes import bounded, positive_float, positive_int

_fraction = bounded(float, "a fraction in [0, 1)", low=0, high=0.999)
_non_negative_float = bounded(float, "a number >= 0", low=0)
_PARTS = "llm, vision, projector, mask-embedding"


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="fine-tune GAR on your data (full or LoRA)",
                       description="Fine-tune a GAR checkpoint with the Hugging Face Trainer (launch with "
                       "torchrun / accelerate for several GPUs). Defaults follow GAR's 1B recipe: everything "
                       "trainable, lr 1e-5, one epoch, global batch 64, up to 16 tiles.")
    p.add_argument("--data", required=True, metavar="DIR|FILE.jsonl",
                   help="datasets folder (image, mask_rle, conversations) or JSONL manifest "
                        "(image, regions, conversations)")
    p.add_argument("--model", required=True, metavar="DIR|HUB_ID", help="GAR checkpoint to start from")
    p.add_argument("--out", required=True, metavar="DIR", help="where the trained model is written "
                   "(released layout; Trainer checkpoints in DIR/checkpoints)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--eval-data", metavar="DIR|FILE.jsonl", help="held-out records")
    e.add_argument("--eval-fraction", type=_fraction, default=0.0, help="hold out this share of --data instead")
    e.add_argument("--eval-steps", type=positive_int, help="evaluate every N optimizer steps")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_float, default=1.0, help="passes over the data (default 1)")
    o.add_argument("--max-steps", type=positive_int, help="stop after N optimizer steps (overrides --epochs)")
    o.add_argument("--lr", type=positive_float, default=1e-5, help="peak learning rate (default 1e-5)")
    o.add_argument("--batch-size", type=positive_int, default=64, help="global batch (default 64)")
    o.add_argument("--micro-batch", type=positive_int, default=4,
                   help="samples per device and forward pass; the rest is gradient accumulation (default 4)")
    o.add_argument("--warmup", type=_non_negative_float, default=0.03,
                   help="warm-up: a share of the steps (< 1) or a number of steps (default 0.03)")
    o.add_argument("--weight-decay", type=_non_negative_float, default=0.0)
    o.add_argument("--scheduler", default="cosine", help="transformers scheduler name (default cosine)")
    o.add_argument("--optim", default="adamw_torch", help="transformers optimizer name (default adamw_torch)")
    o.add_argument("--max-grad-norm", type=positive_float, default=1.0)
    o.add_argument("--seed", type=int, default=0)
    m = p.add_argument_group("model")
    m.add_argument("--max-tiles", type=positive_int, default=16, help="most tiles per image (default 16)")
    m.add_argument("--max-length", type=positive_int, default=16384, help="longest sequence in tokens")
    m.add_argument("--freeze", default="", metavar="PART[,PART]", help=f"parts to keep fixed: {_PARTS}")
    m.add_argument("--lora", action="store_true", help="train LoRA adapters on the LLM (merged at the end)")
    m.add_argument("--lora-r", type=positive_int, default=16)
    m.add_argument("--lora-alpha", type=positive_int, default=32)
    m.add_argument("--lora-dropout", type=_fraction, default=0.05)
    m.add_argument("--roi-double-scale", type=_bool, metavar="true|false",
                   help="RoI box scaling to train with (default: the checkpoint's; the released GAR "
                        "weights use true)")
    r = p.add_argument_group("run")
    r.add_argument("--bf16", action="store_true", help="bf16 mixed precision")
    r.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (less memory)")
    r.add_argument("--save-steps", type=positive_int, default=500, help="checkpoint every N steps")
    r.add_argument("--save-total-limit", type=positive_int, default=2, help="checkpoints kept")
    r.add_argument("--logging-steps", type=positive_int, default=10)
    r.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   help="continue a run: the latest checkpoint in OUT/checkpoints, or the one given")
    r.add_argument("--skip-bad-records", action="store_true",
                   help="leave malformed records out (counted and reported) instead of stopping")
    r.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    r.add_argument("--device", default=None, help="cpu, cuda, ... (default: the Trainer's choice)")
    r.add_argument("--threads", type=positive_int, help="torch CPU threads")
    r.add_argument("--save-dtype", choices=("float32", "bfloat16", "float16"),
                   help="dtype of the saved weights (default: as trained, float32)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)


def config_from_args(args: argparse.Namespace) -> Any:
    from gar_tool.training.parts import check_parts
    from gar_tool.training.run import TrainConfig

    return TrainConfig(
        data=args.data, model=args.model, out=args.out, eval_data=args.eval_data,
        eval_fraction=args.eval_fraction, epochs=args.epochs, max_steps=args.max_steps or -1, lr=args.lr,
        batch_size=args.batch_size, micro_batch=args.micro_batch, warmup=args.warmup,
        weight_decay=args.weight_decay, scheduler=args.scheduler, optim=args.optim, max_grad_norm=args.max_grad_norm,
        max_tiles=args.max_tiles, max_length=args.max_length, freeze=check_parts(args.freeze.split(",")),
        lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        bf16=args.bf16, gradient_checkpointing=args.gradient_checkpointing, eval_steps=args.eval_steps,
        save_steps=args.save_steps, save_total_limit=args.save_total_limit, logging_steps=args.logging_steps,
        resume=args.resume, on_bad_record="skip" if args.skip_bad_records else "fail",
        roi_double_scale=args.roi_double_scale, seed=args.seed, num_workers=args.num_workers,
        device=args.device, save_dtype=args.save_dtype, progress=not args.no_progress)


def run_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from gar_tool.training.run import train

    res = train(cfg)
    skipped = f", {sum(res.skipped.values())} bad records skipped" if res.skipped else ""
    print(f"trained {res.global_step} steps on {res.records} records{skipped}; "
          f"mean training loss {res.train_loss:.4f}", file=sys.stderr)
    if res.eval_metrics:
        print("evaluation: " + ", ".join(f"{k.removeprefix('eval_')} {v:.4g}" for k, v in res.eval_metrics.items()
                                         if k in ("eval_loss", "eval_token_accuracy")), file=sys.stderr)
    print(str(res.out))
    return 0
