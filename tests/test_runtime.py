"""The GAR runtime on tiny random checkpoints built at test time: loading paths and their errors,
batching, dtypes, input validation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from gar_tool import GAR
from gar_tool.errors import InputError, ModelError, ModelNotFoundError, PromptError, RegionError


def _img(h, w, seed):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


IMG1, IMG2 = _img(300, 500, 1), _img(180, 160, 2)
R1 = {"box": [10, 20, 200, 250]}
R2 = {"points": [[300, 100]]}
R3 = {"polygon": [[10, 10], [150, 20], [80, 170]]}


def test_loads_own_vocabulary_and_geometry(tiny_gar):
    v, g = tiny_gar.processor.vocab, tiny_gar.processor.geometry
    assert v.image_token_id < 1000 and g.tile_size == 224 and g.tokens_side == 8
    inp = tiny_gar.inputs(IMG1, [R1])
    assert int((inp.input_ids == v.image_token_id).sum()) == g.tokens_per_tile * inp.pixel_values.shape[0]
    assert int((inp.input_ids == v.crop_token_ids[0]).sum()) == g.tokens_per_tile


def test_batch_equals_one_by_one(tiny_gar):
    q = "Is <Prompt0> next to <Prompt1>?"
    singles = [tiny_gar.relate(IMG1, [R1, R2], q, max_new_tokens=6),
               tiny_gar.relate(IMG2, [{"box": [0, 0, 50, 60]}, R3], q, max_new_tokens=6)]
    batch = tiny_gar.relate([IMG1, IMG2], [[R1, R2], [{"box": [0, 0, 50, 60]}, R3]], q, max_new_tokens=6)
    assert [a.token_ids for a in batch] == [a.token_ids for a in singles]
    assert [a.prompt_tokens for a in batch] == [a.prompt_tokens for a in singles]
    described = tiny_gar.describe([IMG1, IMG2, IMG1], [R1, R3, R2], max_new_tokens=4)
    assert [d.token_ids for d in described] == [tiny_gar.describe(i, r, max_new_tokens=4).token_ids
                                                 for i, r in ((IMG1, R1), (IMG2, R3), (IMG1, R2))]


def test_stop_token_ends_generation(tiny_gar):
    """Force the end-of-turn token to win: generation stops and reports it."""
    eos = tiny_gar.processor.vocab.eos_id
    def boost(module, args, out):
        out = out.clone()
        out[..., eos] += 1e4
        return out

    handle = tiny_gar.model.mllm.lm_head.register_forward_hook(boost)
    try:
        logits = tiny_gar.next_token_logits(IMG1, [R1])
        assert int(logits.argmax()) == eos
        ans = tiny_gar.describe(IMG1, R1, max_new_tokens=5)
        assert ans.token_ids == [] and ans.finish_reason == "stop" and ans.text == ""
    finally:
        handle.remove()


def test_sampling_is_seeded(tiny_gar):
    a = tiny_gar.describe(IMG1, R1, max_new_tokens=5, do_sample=True, temperature=1.5, top_p=0.9, seed=7)
    b = tiny_gar.describe(IMG1, R1, max_new_tokens=5, do_sample=True, temperature=1.5, top_p=0.9, seed=7)
    assert a.token_ids == b.token_ids and len(a.token_ids) == 5


@pytest.mark.parametrize("call, exc, message", [
    (lambda g: g.describe(IMG1, {"box": [0, 0, 600, 10]}), RegionError, "outside"),
    (lambda g: g.describe("/nonexistent.png", R1), InputError, "not found"),
    (lambda g: g.describe(IMG1, R1, max_new_tokens=0), InputError, "max_new_tokens"),
    (lambda g: g.relate(IMG1, [R1], "no prompt here"), PromptError, "names no region"),
    (lambda g: g.relate(IMG1, [R1], "<Prompt0> and <Prompt1>"), PromptError, "only 1 region"),
    (lambda g: g.relate(IMG1, [R1, R2], "<Prompt1> only"), PromptError, "never named"),
    (lambda g: g.relate([IMG1, IMG2], [[R1]], "<Prompt0>?"), InputError, "needs 2 regions"),
    (lambda g: g.describe(IMG1, R1, compat="newest"), PromptError, "compat"),
    (lambda g: g.describe(np.zeros((4, 4), np.float32), R1), InputError, "uint8"),
])
def test_bad_input_errors(tiny_gar, call, exc, message):
    with pytest.raises(exc, match=message):
        call(tiny_gar)


def test_untied_bf16_checkpoint(tmp_path):
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    ck = build_gar_checkpoint(tmp_path / "untied", tie_embeddings=False, tile_size=224, max_num_tiles=2,
                              dtype=torch.bfloat16, roi_double_scale=False, seed=5)
    from safetensors import safe_open

    with safe_open(str(ck / "model.safetensors"), "pt") as f:
        assert "mllm.lm_head.weight" in f.keys()
    gar = GAR.from_pretrained(str(ck), device="cpu", dtype="bfloat16")
    assert gar.model.settings.roi_double_scale is False
    lm = gar.model.mllm
    assert lm.lm_head.weight.data_ptr() != lm.get_input_embeddings().weight.data_ptr()
    assert lm.lm_head.weight.dtype == torch.bfloat16
    regs, q = [R3, {"box": [0, 0, 40, 40]}], "<Prompt0> or <Prompt1>?"
    ans = gar.relate(IMG2, regs, q, max_new_tokens=3, ignore_eos=True)
    assert len(ans.token_ids) == 3 and ans.finish_reason == "length"
    logits = gar.next_token_logits(IMG2, regs, q)  # the untied head decides the greedy token
    assert ans.token_ids[0] == int(logits.argmax())
    tied_logits = lm.get_input_embeddings().weight.float() @ torch.ones(lm.lm_head.weight.shape[1])
    assert not torch.equal(lm.lm_head.weight.float() @ torch.ones(lm.lm_head.weight.shape[1]), tied_logits)


def test_loading_errors(tmp_path, tiny_ckpt):
    with pytest.raises(ModelNotFoundError, match="no such checkpoint directory"):
        GAR.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache.*missing config.json.*local directory: --model DIR"):
        GAR.from_pretrained("someone/not-cached-gar")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_ckpt, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match="lacks tokenizer.json"):
        GAR.from_pretrained(str(broken))
    notgar = tmp_path / "notgar"
    shutil.copytree(tiny_ckpt, notgar)
    cfg = json.loads((notgar / "config.json").read_text())
    (notgar / "config.json").write_text(json.dumps({**cfg, "model_type": "llava"}))
    with pytest.raises(ModelError, match="not a GAR config"):
        GAR.from_pretrained(str(notgar))
    (notgar / "config.json").write_text(json.dumps({**cfg, "kernel_size": [7, 7]}))
    with pytest.raises(ModelError, match="kernel_size"):
        GAR.from_pretrained(str(notgar))
    with pytest.raises(InputError, match="unknown dtype"):
        GAR.from_pretrained(str(tiny_ckpt), dtype="float8")


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, gar_tool; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
