"""The training loop (Hugging Face Trainer): the loss falls, gradient accumulation equals one big
batch, resuming continues at the same step with the same loss, checkpoints reload with identical
logits, frozen parts stay fixed, LoRA merges to the same outputs."""

from __future__ import annotations

import json

import pytest
import torch

from gar_tool.training import train
from gar_tool.training.encoding import ConversationEncoder
from gar_tool.training.records import load_records
from train_support import quick_config, shapes_ckpt, shapes_jsonl  # noqa: F401  (fixtures)


def subset(manifest, n, dest):
    """The first ``n`` records of a manifest, with absolute image paths, written to ``dest``."""
    lines = manifest.read_text().splitlines()[:n]
    recs = [json.loads(line) for line in lines]
    for r in recs:
        r["image"] = str(manifest.parent / r["image"])
    dest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return dest


def _losses(res) -> list[float]:
    return [h["loss"] for h in res.log_history if "loss" in h]


def _batch(gar, data, n=4):
    from gar_tool.training.data import GARCollator, RecordDataset

    enc = ConversationEncoder(gar.processor)
    ds = RecordDataset(load_records(data, enc.validator()).records[:n], enc)
    return GARCollator(gar.processor.vocab.pad_id)([ds[i] for i in range(len(ds))])


def test_loss_falls_on_a_tiny_model(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    """Eight steps over the same four records (an overfitting check): the loss falls at every
    step, to under 60 % of where it started."""
    data = subset(shapes_jsonl, 4, tmp_path / "four.jsonl")
    res = train(quick_config(data, shapes_ckpt, tmp_path / "out", max_steps=8, batch_size=4,
                             micro_batch=4, lr=1e-2))
    losses = _losses(res)
    assert len(losses) == 8 and res.global_step == 8
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.6 * losses[0], losses
    assert (tmp_path / "out" / "model.safetensors").is_file()
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["global_step"] == 8 and log["records"] == 4


def test_saved_model_reloads_with_identical_logits(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    from gar_tool import GAR

    kept = {}

    def keep(model):
        kept["model"] = model
        return model

    train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "out", max_steps=2, roi_double_scale=True),
          prepare_model=keep)
    trained = kept["model"].eval()
    loaded = GAR.from_pretrained(str(tmp_path / "out"), device="cpu", dtype="float32")
    assert loaded.model.settings == trained.settings and loaded.model.settings.roi_double_scale
    batch = _batch(loaded, shapes_jsonl)
    with torch.no_grad():
        a = trained(**batch).logits
        b = loaded.model(**batch).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    start = GAR.from_pretrained(str(shapes_ckpt), device="cpu", dtype="float32")
    with torch.no_grad():
        assert not torch.equal(start.model(**batch).logits, b)  # training changed the model


def test_gradient_accumulation_equals_one_large_batch(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    """One SGD step of batch 4 as 4 × 1 accumulated equals 1 × 4: the loss is normalised by the
    answer tokens of the whole accumulated batch, not averaged per micro-batch."""
    from safetensors.torch import load_file

    cfg = dict(max_steps=1, batch_size=4, lr=1e-2, scheduler="constant", max_grad_norm=1e9, optim="sgd")
    train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "a", micro_batch=4, **cfg))
    train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "b", micro_batch=1, **cfg))
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    w0 = load_file(str(shapes_ckpt / "model.safetensors"))
    key = "mllm.model.language_model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(wa[key], w0[key])
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_resume_continues_at_the_same_step_with_the_same_loss(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    """A run resumed from the checkpoint at step 2 logs the same losses at steps 3 and 4 as the
    run that went through (weights, optimizer, scheduler, data order and RNG restored)."""
    import shutil

    cfg = dict(max_steps=4, batch_size=4, micro_batch=2, save_steps=2, lr=2e-3, scheduler="linear")
    full = train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "full", **cfg))
    part = tmp_path / "part" / "checkpoints"
    part.mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "checkpoint-2", part / "checkpoint-2")  # "interrupted" here
    resumed = train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "part", **cfg, resume="latest"))
    assert resumed.global_step == 4
    steps = {h["step"]: h["loss"] for h in resumed.log_history if "loss" in h and h["step"] > 2}
    want = {h["step"]: h["loss"] for h in full.log_history if "loss" in h}
    assert sorted(steps) == [3, 4]
    for s in (3, 4):
        assert steps[s] == pytest.approx(want[s], rel=1e-6, abs=1e-7)
    assert want[3] != want[4]


def test_resume_latest_without_checkpoints_is_an_input_error(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    from gar_tool.errors import InputError

    with pytest.raises(InputError, match="nothing to resume from"):
        train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "x", resume="latest"))


def test_frozen_parts_stay_fixed(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    from safetensors.torch import load_file

    train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "out", max_steps=2,
                       freeze=("vision", "mask-embedding")))
    w0 = load_file(str(shapes_ckpt / "model.safetensors"))
    w1 = load_file(str(tmp_path / "out" / "model.safetensors"))
    frozen = [k for k in w0 if ".vision_tower." in k or k == "mask_patch_embedding.weight"]
    assert frozen and all(torch.equal(w0[k], w1[k]) for k in frozen)
    moved = [k for k in w0 if ".language_model." in k or ".multi_modal_projector." in k]
    assert all(not torch.equal(w0[k], w1[k]) for k in moved if w0[k].ndim == 2)


def test_lora_merged_and_unmerged_give_the_same_outputs(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    from safetensors.torch import load_file

    from gar_tool import GAR
    from gar_tool.training.parts import LoraSettings, add_lora, merge_lora, set_trainable

    gar = GAR.from_pretrained(str(shapes_ckpt), device="cpu", dtype="float32")
    model = add_lora(gar.model, LoraSettings(r=4, alpha=8, dropout=0.0))
    set_trainable(model, (), lora=True)
    with torch.no_grad():  # give the adapters non-zero weights (B starts at zero)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    batch = _batch(gar, shapes_jsonl)
    model.eval()
    with torch.no_grad():
        unmerged = model(**batch).logits
        base_only = None
        with model.disable_adapter():
            base_only = model(**batch).logits
        merged_model = merge_lora(model)
        merged = merged_model(**batch).logits
    assert not torch.allclose(unmerged, base_only, atol=1e-3)  # the adapters matter
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)
    assert not any("lora_" in k for k in merged_model.state_dict())

    # and through the trainer: a LoRA run exports merged weights in the released layout
    res = train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / "lora", max_steps=2, lora=True, lora_r=4,
                             save_steps=1))
    w = load_file(str(tmp_path / "lora" / "model.safetensors"))
    assert res.global_step == 2 and not any("lora" in k for k in w)
    assert (tmp_path / "lora" / "checkpoints" / "checkpoint-2" / "trainable.safetensors").is_file()
    w0 = load_file(str(shapes_ckpt / "model.safetensors"))
    key = "mllm.model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(w[key], w0[key])


def test_grown_model_computes_the_same_and_its_new_layers_train(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    """Model growth (``python -m gar_tool.shapes grow``): two more LLM layers, identical logits;
    a training step then moves the new layers' residual projections off zero."""
    from gar_tool import GAR
    from gar_tool.shapes.checkpoint import grow_llm

    grown_dir = grow_llm(shapes_ckpt, tmp_path / "grown", add_layers=2, seed=3)
    base = GAR.from_pretrained(str(shapes_ckpt), device="cpu", dtype="float32")
    grown = GAR.from_pretrained(str(grown_dir), device="cpu", dtype="float32")
    assert len(grown.model.mllm.model.language_model.layers) == len(base.model.mllm.model.language_model.layers) + 2
    batch = _batch(base, shapes_jsonl)
    with torch.no_grad():
        torch.testing.assert_close(grown.model(**batch).logits, base.model(**batch).logits, rtol=0, atol=1e-6)
    kept = {}
    train(quick_config(shapes_jsonl, grown_dir, tmp_path / "out", max_steps=1),
          prepare_model=lambda m: kept.setdefault("m", m))
    new = kept["m"].mllm.model.language_model.layers[-1]
    assert new.self_attn.o_proj.weight.abs().sum() > 0 and new.mlp.down_proj.weight.abs().sum() > 0


def test_grow_rejects_what_it_cannot_grow(tmp_path, shapes_ckpt):  # noqa: F811
    from gar_tool.errors import InputError
    from gar_tool.shapes.checkpoint import grow_llm

    with pytest.raises(InputError, match="add_layers must be positive"):
        grow_llm(shapes_ckpt, tmp_path / "g", add_layers=0)
    with pytest.raises(InputError, match="is not a GAR checkpoint folder"):
        grow_llm(tmp_path, tmp_path / "g", add_layers=1)


def test_gradient_checkpointing_and_bf16_train_the_same_model(tmp_path, shapes_ckpt, shapes_jsonl):  # noqa: F811
    """Recomputing activations changes memory, not the result; bf16 autocast (native on CPUs with
    AVX-512 BF16 / AMX, emulated elsewhere) stays close to fp32 over a few steps."""
    def run(name, **kw):
        return _losses(train(quick_config(shapes_jsonl, shapes_ckpt, tmp_path / name, max_steps=3, lr=1e-2, **kw)))

    plain = run("plain")
    torch.testing.assert_close(run("ckpt", gradient_checkpointing=True), plain, rtol=1e-5, atol=1e-5)
    half = run("bf16", bf16=True)
    assert half != plain and all(abs(a - b) < 0.05 * b for a, b in zip(half, plain)), (half, plain)
