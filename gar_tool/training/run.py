"""``train(config)``: fine-tune a GAR checkpoint on a datasets folder or a JSONL manifest.

The defaults are GAR's 1B recipe: every part trainable, learning rate 1e-5 with 3 % warm-up and
cosine decay, one epoch, global batch 64, up to 16 tiles per image; the checkpoint fixes the
number of prompt slots (5). The trained model is written to ``config.out`` in the released
layout; the Trainer's checkpoints go to ``config.out/checkpoints/``.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

from gar_tool.errors import InputError
from gar_tool.training.parts import check_parts

#: ``prepare_model(gar_model) -> model``: a hook applied before freezing / LoRA (used by the
#: ablation benchmark to swap in model variants).
ModelHook = Callable[[Any], Any]


@dataclass
class TrainConfig:
    """What ``gar train`` takes (see ``gar train --help`` for each field)."""

    data: str
    model: str
    out: str
    eval_data: str | None = None
    eval_fraction: float = 0.0
    epochs: float = 1.0
    max_steps: int = -1
    lr: float = 1e-5
    batch_size: int = 64
    micro_batch: int = 4
    warmup: float = 0.03
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    optim: str = "adamw_torch"
    max_grad_norm: float = 1.0
    max_tiles: int | None = 16
    max_length: int = 16384
    freeze: tuple[str, ...] = ()
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    bf16: bool = False
    gradient_checkpointing: bool = False
    eval_steps: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    resume: str | None = None
    on_bad_record: Literal["fail", "skip"] = "fail"
    roi_double_scale: bool | None = None
    seed: int = 0
    num_workers: int = 0
    device: str | None = None
    save_dtype: str | None = None
    progress: bool = True


@dataclass
class TrainResult:
    """Where the model went and how training went."""

    out: Path
    global_step: int
    train_loss: float
    records: int
    skipped: dict[str, int]
    eval_records: int = 0
    eval_metrics: dict[str, float] = field(default_factory=dict)
    log_history: list[dict] = field(default_factory=list)


def _check(cfg: TrainConfig) -> int:
    """Validate numbers; returns the gradient accumulation steps."""
    for name in ("lr", "batch_size", "micro_batch", "max_length", "logging_steps", "save_steps"):
        if getattr(cfg, name) <= 0:
            raise InputError(f"{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    if cfg.max_tiles is not None and cfg.max_tiles < 1:
        raise InputError(f"max-tiles must be >= 1, got {cfg.max_tiles}")
    if not 0 <= cfg.eval_fraction < 1:
        raise InputError(f"eval-fraction must be in [0, 1), got {cfg.eval_fraction}")
    if cfg.eval_data and cfg.eval_fraction:
        raise InputError("give either --eval-data or --eval-fraction, not both")
    if cfg.max_steps <= 0 and cfg.epochs <= 0:
        raise InputError(f"epochs must be positive (or give max-steps), got {cfg.epochs}")
    check_parts(cfg.freeze)
    if cfg.lora and "llm" in cfg.freeze:
        raise InputError("--lora trains adapters on the LLM; it cannot be combined with --freeze llm")
    for what, path in (("data", cfg.data), ("eval-data", cfg.eval_data)):
        if path is not None and not Path(path).exists():
            raise InputError(f"{what}: {str(path)!r} does not exist (expected a datasets folder or a .jsonl manifest)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = cfg.micro_batch * world
    if cfg.batch_size % per_step:
        raise InputError(f"batch-size {cfg.batch_size} is not a multiple of micro-batch × processes "
                         f"= {cfg.micro_batch} × {world}")
    return cfg.batch_size // per_step


def _dtype(name: str | None) -> Any:
    if name is None:
        return None
    import torch

    from gar_tool.runtime import pick_dtype

    return pick_dtype(name, torch.device("cpu"))


def _split(records: list, fraction: float, seed: int) -> tuple[list, list]:
    if not fraction:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n = max(1, round(len(records) * fraction))
    held = set(order[:n])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def train(cfg: TrainConfig, *, prepare_model: ModelHook | None = None) -> TrainResult:
    """Fine-tune ``cfg.model`` on ``cfg.data`` and write the result to ``cfg.out``.

    Raises:
        InputError: bad settings, unreadable data, a bad record (``on_bad_record="fail"``), no
            checkpoint to resume from.
        ModelError: an unusable model checkpoint.
    """
    import torch
    from transformers import TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from gar_tool.gar.checkpoint import load_gar_model
    from gar_tool.gar.processing import GARProcessor
    from gar_tool.training.data import GARCollator, RecordDataset
    from gar_tool.training.encoding import ConversationEncoder
    from gar_tool.training.export import save_checkpoint
    from gar_tool.training.parts import LoraSettings, add_lora, base_model, merge_lora, set_trainable
    from gar_tool.training.records import load_records
    from gar_tool.training.trainer import make_trainer

    accumulation = _check(cfg)
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    resume = None
    if cfg.resume:
        resume = get_last_checkpoint(str(ckpt_dir)) if cfg.resume == "latest" and ckpt_dir.is_dir() else (
            None if cfg.resume == "latest" else cfg.resume)
        if resume is None or not Path(resume).is_dir():
            raise InputError(f"nothing to resume from: no checkpoint in {str(ckpt_dir)!r}" if cfg.resume == "latest"
                             else f"checkpoint folder not found: {cfg.resume!r}")

    model, processor, base = load_gar_model(cfg.model, device="cpu", dtype=torch.float32,
                                            roi_double_scale=cfg.roi_double_scale)
    if cfg.max_tiles is not None:
        processor = GARProcessor(processor.tokenizer, processor.vocab,
                                 replace(processor.geometry, max_num_tiles=cfg.max_tiles))
    encoder = ConversationEncoder(processor)

    length = encoder.validator(cfg.max_length)
    train_set = load_records(cfg.data, length, on_error=cfg.on_bad_record, progress=cfg.progress)
    records, held = _split(train_set.records, cfg.eval_fraction, cfg.seed)
    eval_skipped: dict[str, int] = {}
    if cfg.eval_data:
        eval_set = load_records(cfg.eval_data, length, on_error=cfg.on_bad_record, progress=cfg.progress)
        held, eval_skipped = eval_set.records, dict(eval_set.skipped)
    print(train_set.summary() + (f"; {len(held)} for evaluation" if held else ""), flush=True)
    for msg in train_set.errors[:5]:
        print(f"  skipped: {msg}", flush=True)

    set_seed(cfg.seed)
    model.train()
    if prepare_model is not None:
        model = prepare_model(model)
    if cfg.lora:
        model = add_lora(model, LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
    set_trainable(model, cfg.freeze, lora=cfg.lora)
    if cfg.gradient_checkpointing:
        base_model(model).gradient_checkpointing_enable()

    evaluate = bool(held) and cfg.eval_steps is not None
    use_cpu = cfg.device == "cpu" or (cfg.device is None and not torch.cuda.is_available()
                                      and not torch.backends.mps.is_available())
    args = TrainingArguments(
        output_dir=str(ckpt_dir), per_device_train_batch_size=cfg.micro_batch,
        per_device_eval_batch_size=cfg.micro_batch, gradient_accumulation_steps=accumulation,
        learning_rate=cfg.lr, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.scheduler, optim=cfg.optim, warmup_steps=cfg.warmup, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, bf16=cfg.bf16, use_cpu=use_cpu, seed=cfg.seed,
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, eval_strategy="steps" if evaluate else "no",
        eval_steps=cfg.eval_steps if evaluate else None, report_to="none",
        remove_unused_columns=False, label_names=["labels"], dataloader_num_workers=cfg.num_workers,
        disable_tqdm=not cfg.progress)
    trainer = make_trainer(model, args, train_dataset=RecordDataset(records, encoder),
                           eval_dataset=RecordDataset(held, encoder) if held else None,
                           collator=GARCollator(processor.vocab.pad_id), processor=processor, base=base,
                           save_dtype=_dtype(cfg.save_dtype))
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate() if held else {}
    if trainer.is_world_process_zero():
        final = base_model(merge_lora(trainer.model))
        save_checkpoint(final, processor, base, out, dtype=_dtype(cfg.save_dtype))
        log = {"config": asdict(cfg), "records": len(records), "skipped": dict(train_set.skipped),
               "skipped_examples": train_set.errors, "eval_records": len(held), "eval_skipped": eval_skipped,
               "global_step": trainer.state.global_step, "train_loss": result.training_loss,
               "eval": metrics, "log_history": trainer.state.log_history}
        (out / "training_log.json").write_text(json.dumps(log, indent=2, default=str))
    return TrainResult(out, trainer.state.global_step, float(result.training_loss), len(records),
                       dict(train_set.skipped), len(held), metrics, list(trainer.state.log_history))


__all__ = ["TrainConfig", "TrainResult", "ModelHook", "train"]
