"""GARModel.forward: teacher forcing through the same splice as inference, and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gar_tool.gar.protocol import DecodeOptions
from test_parity import FIXTURE_CASES, _load


def forward_batch(gar, inputs, answers):
    """Forward kwargs for prompts ``inputs`` (GARInputs) followed by ``answers`` (token id lists),
    right-padded, labels on the answer tokens only."""
    pad = gar.processor.vocab.pad_id
    seqs = [torch.cat([inp.input_ids, torch.tensor(ans, dtype=torch.long)]) for inp, ans in zip(inputs, answers)]
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    labels = torch.full((len(seqs), n), -100, dtype=torch.long)
    for b, (s, inp) in enumerate(zip(seqs, inputs)):
        ids[b, :len(s)] = s
        mask[b, :len(s)] = 1
        labels[b, len(inp.input_ids):len(s)] = s[len(inp.input_ids):]
    return dict(
        input_ids=ids, attention_mask=mask,
        pixel_values=torch.cat([i.pixel_values for i in inputs]),
        label_tiles=torch.cat([i.label_tiles for i in inputs]),
        grids=[i.grid for i in inputs],
        replay_boxes=torch.cat([i.replay_boxes for i in inputs]),
        replay_sample=torch.cat([torch.full((len(i.replay_token_ids),), b, dtype=torch.long)
                                 for b, i in enumerate(inputs)]),
        replay_token_ids=torch.cat([i.replay_token_ids for i in inputs]),
        labels=labels)


@pytest.mark.parametrize("name", FIXTURE_CASES)
def test_teacher_forced_logits_equal_the_inference_path(gar_original, name):
    case, exp, img, regs, question = _load(name)
    steps = 6
    gen = gar_original.generate([gar_original.request(img, regs, question)],
                                DecodeOptions(max_new_tokens=steps, ignore_eos=True), keep_logits=True)
    tokens = gen.answers[0].token_ids
    inp = gar_original.inputs(img, regs, question)
    with torch.no_grad():  # the rows that predict the answer tokens (the full (L, V) logits are ~2 GB here)
        out = gar_original.model(**forward_batch(gar_original, [inp], [tokens]), labelled_logits_only=True)
    assert out.logits.shape == (steps, gen.step_logits[0].shape[-1])
    for t in range(steps):  # row t is at position len(prompt) - 1 + t and predicts answer token t
        torch.testing.assert_close(out.logits[t], gen.step_logits[t][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.logits[0], exp["last_prompt_logits"], atol=1e-4, rtol=1e-4)
    # the loss is the mean cross-entropy of the answer tokens under those logits
    want = torch.nn.functional.cross_entropy(out.logits, torch.tensor(tokens))
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_padded_batch_gives_each_sample_its_own_logits(tiny_gar):
    """Right padding in a batch of two different-length samples does not change either's logits,
    and ``labelled_logits_only`` returns exactly the rows the loss uses."""
    rng = np.random.RandomState(0)
    imgs = [(rng.rand(120, 90, 3) * 255).astype(np.uint8), (rng.rand(60, 200, 3) * 255).astype(np.uint8)]
    inps = [tiny_gar.inputs(imgs[0], [{"box": [5, 5, 60, 80]}]),
            tiny_gar.inputs(imgs[1], [{"box": [0, 0, 50, 40]}, {"box": [100, 10, 190, 55]}],
                            "Is <Prompt0> left of <Prompt1>?")]
    answers = [[11, 12, 13], [14]]
    batch = forward_batch(tiny_gar, inps, answers)
    with torch.no_grad():
        out = tiny_gar.model(**batch)
        for k in range(2):
            alone = tiny_gar.model(**forward_batch(tiny_gar, [inps[k]], [answers[k]])).logits[0]
            torch.testing.assert_close(out.logits[k, :len(alone)], alone, atol=1e-4, rtol=1e-4)
        lean = tiny_gar.model(**batch, labelled_logits_only=True)
    used = batch["labels"][:, 1:] != -100
    torch.testing.assert_close(lean.logits, out.logits[:, :-1][used], atol=1e-5, rtol=1e-5)
    assert lean.loss.item() == pytest.approx(out.loss.item(), rel=1e-5)


def test_backward_reaches_every_part(tiny_gar):
    model = tiny_gar.model
    img = (np.random.RandomState(1).rand(100, 150, 3) * 255).astype(np.uint8)
    inp = tiny_gar.inputs(img, [{"box": [10, 10, 70, 60]}, {"box": [80, 30, 140, 90]}], "<Prompt0> or <Prompt1>?")
    model.zero_grad(set_to_none=True)
    out = model(**forward_batch(tiny_gar, [inp], [[21, 22, 23, 24]]), labelled_logits_only=True)
    out.loss.backward()
    parts = {
        "mask embedding": model.mask_patch_embedding.weight,
        "vision tower (patch projection)": model.vision_model.patch_embed.proj.weight,
        "vision tower (last block)": model.vision_model.blocks[-1].mlp.fc2.weight,
        "projector": model.mllm.model.multi_modal_projector.linear_1.weight,
        "LLM": model.mllm.model.language_model.layers[0].self_attn.q_proj.weight,
    }
    try:
        for what, p in parts.items():
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, what
            assert np.isfinite(p.grad.numpy()).all(), what
    finally:
        model.zero_grad(set_to_none=True)


def test_state_dict_keeps_the_released_layout(gar_original):
    keys = set(gar_original.model.state_dict())
    assert "mask_patch_embedding.weight" in keys
    assert "mllm.model.vision_tower.timm_model.patch_embed.proj.weight" in keys
    assert not [k for k in keys if "_mask_conv" in k or k.count("mask_patch_embedding") > 1]
