"""GAR on the Hugging Face ``Trainer``: loss, checkpoints in the released layout, resume.

:class:`GARTrainer` is a ``transformers.Trainer`` for :class:`~gar_tool.gar.modeling.GARModel`
(plain or with ``peft`` LoRA adapters). Everything that scales — DDP, FSDP, DeepSpeed,
mixed precision, gradient accumulation, schedulers, logging, the progress bar — is the Trainer's
(launch with ``torchrun`` / ``accelerate launch`` for several GPUs or nodes). What it adds:

* the loss: ``GARModel.forward(..., labelled_logits_only=True)`` (the LM head runs only where
  there is a target), summed over tokens and normalised by the labelled tokens of the whole
  accumulated batch, so gradient accumulation equals one large batch;
* evaluation: loss and next-token accuracy on the answer tokens (``eval_token_accuracy``);
* checkpoints: every ``checkpoint-N/`` of a full fine-tune is a loadable GAR checkpoint (released
  layout) next to the Trainer's optimizer / scheduler / RNG state; with LoRA it holds the
  trainable tensors (``trainable.safetensors``) for resuming, and only the final export is merged;
* resuming reloads those files exactly (same step, same loss).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from gar_tool.errors import ModelError
from gar_tool.gar.processing import GARProcessor
from gar_tool.training.encoding import IGNORE
from gar_tool.training.export import TIED_HEAD, WEIGHTS_FILE, head_is_tied, save_checkpoint, write_configs
from gar_tool.training.parts import base_model, is_lora

TRAINABLE_FILE = "trainable.safetensors"


def _trainer_class() -> type:
    from transformers import Trainer
    from transformers.trainer import TRAINING_ARGS_NAME

    class GARTrainer(Trainer):
        """``Trainer`` for GARModel; ``processor`` and ``base`` (the checkpoint trained from)
        are what checkpoints are written with."""

        def __init__(self, *args: Any, processor: GARProcessor, base: Path,
                     save_dtype: torch.dtype | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.gar_processor = processor
            self.gar_base = base
            self.save_dtype = save_dtype
            # The loss below is normalised by the labelled tokens of the accumulated batch, which
            # the Trainer counts (and passes in) for models that accept loss kwargs.
            self.model_accepts_loss_kwargs = True

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            out = model(**inputs, labelled_logits_only=True)
            loss = out.loss
            if num_items_in_batch is not None:
                n = (inputs["labels"][:, 1:] != IGNORE).sum()
                loss = loss * n / num_items_in_batch
                if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                    loss = loss * self.accelerator.num_processes  # DDP averages the gradients
            return (loss, out) if return_outputs else loss

        def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                            ignore_keys: Any = None) -> tuple[Any, Any, Any]:
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                out = model(**inputs, labelled_logits_only=True)
            loss = out.loss.detach()
            if prediction_loss_only:
                return loss, None, None
            targets = inputs["labels"][:, 1:]
            return loss, out.logits.argmax(-1), targets[targets != IGNORE]

        # -------------------------------------------------------------- checkpoints
        def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
            out = Path(output_dir if output_dir is not None else str(self.args.output_dir))
            if not self.args.should_save:
                return
            model = self.accelerator.unwrap_model(self.model)
            gar = base_model(model)
            if is_lora(model):
                from safetensors.torch import save_file

                write_configs(self.gar_processor, self.gar_base, out, gar.settings.roi_double_scale)
                names = {n for n, p in model.named_parameters() if p.requires_grad}
                state = state_dict if state_dict is not None else model.state_dict()
                keep = {k: v.detach().cpu().contiguous() for k, v in state.items() if k in names}
                save_file(keep, str(out / TRAINABLE_FILE), metadata={"format": "pt"})
            else:
                save_checkpoint(gar, self.gar_processor, self.gar_base, out, state=state_dict,
                                dtype=self.save_dtype)
            torch.save(self.args, os.path.join(out, TRAINING_ARGS_NAME))

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            load_trained_state(model if model is not None else self.model, Path(resume_from_checkpoint))

    return GARTrainer


def load_trained_state(model: Any, checkpoint: Path) -> None:
    """Load what :class:`GARTrainer` saved in ``checkpoint`` into ``model`` (same structure:
    plain or LoRA), checking that nothing is missing or left over."""
    from safetensors.torch import load_file

    lora = is_lora(model)
    path = checkpoint / (TRAINABLE_FILE if lora else WEIGHTS_FILE)
    if not path.is_file():
        raise ModelError(f"cannot resume: {path} is missing ("
                         + ("a LoRA run resumes from its own checkpoints)" if lora else
                            "was the checkpoint written by a LoRA run?)"))
    state = load_file(str(path))
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys)
    if lora:
        want = {n for n, p in model.named_parameters() if p.requires_grad}
        missing &= want
    elif head_is_tied(base_model(model)):
        missing.discard(TIED_HEAD)
    if missing or result.unexpected_keys:
        raise ModelError(f"checkpoint {checkpoint} does not fit the model: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}")


def token_accuracy(pred: Any) -> dict[str, float]:
    """``compute_metrics``: next-token accuracy over the answer tokens."""
    import numpy as np

    p, t = np.asarray(pred.predictions), np.asarray(pred.label_ids)
    return {"token_accuracy": float((p == t).mean()) if t.size else 0.0}


def make_trainer(model: Any, args: Any, *, train_dataset: Any, eval_dataset: Any, collator: Callable,
                 processor: GARProcessor, base: Path, save_dtype: torch.dtype | None = None) -> Any:
    """A :class:`GARTrainer` (built on first use, so that importing this module stays light)."""
    cls = _trainer_class()
    return cls(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
               data_collator=collator, compute_metrics=token_accuracy if eval_dataset is not None else None,
               processor=processor, base=base, save_dtype=save_dtype)


__all__ = ["TRAINABLE_FILE", "make_trainer", "load_trained_state", "token_accuracy"]
