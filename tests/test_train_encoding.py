"""Training conversations are encoded on the inference path: same prompt tokens as GAR sends with
compat="default", labels only on the assistant turns, one batch for GARModel.forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gar_tool.errors import PromptError
from gar_tool.regions.forms import coerce_regions
from gar_tool.training.data import GARCollator
from gar_tool.training.encoding import IGNORE, ConversationEncoder, Turn
from gar_tool.training.records import load_records
from train_support import shapes_ckpt, shapes_jsonl  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def gar(shapes_ckpt):  # noqa: F811
    from gar_tool import GAR

    return GAR.from_pretrained(str(shapes_ckpt), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def enc(gar):
    return ConversationEncoder(gar.processor)


IMG = (np.random.RandomState(0).rand(90, 140, 3) * 255).astype(np.uint8)
REGIONS = [{"box": [5, 5, 40, 50]}, {"box": [80, 20, 130, 80]}]


def _targets(sample, tok):
    return tok.convert_ids_to_tokens(sample.labels[sample.labels != IGNORE].tolist())


@pytest.mark.parametrize("question,n", [("Is <Prompt0> to the left of <Prompt1>?", 2),
                                        ("What colour is <Prompt0>?", 1), (None, 1)])
def test_prompt_tokens_are_the_inference_prompt(gar, enc, question, n):
    from PIL import Image

    regions = coerce_regions(REGIONS[:n], IMG.shape[:2])
    human = question if question is not None else "Describe this masked region in detail."
    sample = enc.encode(Image.fromarray(IMG), regions, [Turn("human", human), Turn("gpt", "a small red circle")])
    inp = gar.inputs(IMG, REGIONS[:n], question)  # what GAR sends at inference (compat="default")
    k = len(inp.input_ids)
    torch.testing.assert_close(sample.inputs.input_ids[:k], inp.input_ids, rtol=0, atol=0)
    assert (sample.labels[:k] == IGNORE).all()
    tok = gar.processor.tokenizer
    assert tok.decode(sample.inputs.input_ids[k:]) == "a small red circle<|eot_id|>"
    torch.testing.assert_close(sample.labels[k:], sample.inputs.input_ids[k:], rtol=0, atol=0)
    for name in ("pixels_u8", "label_tiles", "replay_token_ids", "replay_boxes"):
        torch.testing.assert_close(getattr(sample.inputs, name), getattr(inp, name), rtol=0, atol=0)
    assert sample.inputs.grid == inp.grid


def test_multi_turn_labels_every_answer_and_lists_every_region(gar, enc):
    from PIL import Image

    regions = coerce_regions(REGIONS, IMG.shape[:2])
    turns = [Turn("human", "What colour is <Prompt0>?"), Turn("gpt", "red"),
             Turn("human", "And <Prompt1>?"), Turn("gpt", "blue")]
    s = enc.encode(Image.fromarray(IMG), regions, turns)
    tok = gar.processor.tokenizer
    assert _targets(s, tok) == ["red", "<|eot_id|>", "blue", "<|eot_id|>"]
    text = tok.decode(s.inputs.input_ids[s.inputs.input_ids != gar.processor.vocab.image_token_id])
    first_user = text.split("<|start_header_id|>user<|end_header_id|>")[1]
    # <Prompt1> is only named in the second question, but the first turn lists and replays it
    assert first_user.startswith("\n\nThere are some objects I am curious about: <Prompt0>; <Prompt1>; \n")
    assert len(s.inputs.replay_token_ids) == 2
    assert text.endswith("And <Prompt1>?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nblue<|eot_id|>")
    assert enc.length(IMG.shape[:2], regions, turns) == len(s.inputs.input_ids)


def test_caption_conversation_takes_the_describe_layout(gar, enc):
    from PIL import Image

    regions = coerce_regions(REGIONS[:1], IMG.shape[:2])
    s = enc.encode(Image.fromarray(IMG), regions, [Turn("human", "Name the colour."), Turn("gpt", "red")])
    want = gar.processor(Image.fromarray(IMG), regions, None, "default", "Name the colour.")
    torch.testing.assert_close(s.inputs.input_ids[:len(want.input_ids)], want.input_ids, rtol=0, atol=0)
    with pytest.raises(PromptError, match="names no region"):
        enc.encode(Image.fromarray(IMG), coerce_regions(REGIONS, IMG.shape[:2]),
                   [Turn("human", "Name the colour."), Turn("gpt", "red")])


def test_collated_batch_runs_forward_with_the_loss_on_answers(gar, enc, shapes_jsonl):  # noqa: F811
    from gar_tool.training.data import RecordDataset

    recs = load_records(shapes_jsonl, enc.validator()).records[:3]
    ds = RecordDataset(recs, enc)
    samples = [ds[i] for i in range(3)]
    batch = GARCollator(gar.processor.vocab.pad_id)(samples)
    lengths = [len(s.inputs.input_ids) for s in samples]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["pixel_values"].shape[0] == sum(s.inputs.num_tiles for s in samples)
    assert batch["replay_sample"].tolist() == [b for b, s in enumerate(samples)
                                               for _ in range(len(s.inputs.replay_token_ids))]
    assert int((batch["labels"] != IGNORE).sum()) == sum(s.num_targets for s in samples)
    with torch.no_grad():
        out = gar.model(**batch, labelled_logits_only=True)
        full = gar.model(**batch)
    # the loss is the cross-entropy of exactly the answer tokens
    targets = batch["labels"][:, 1:]
    used = targets != IGNORE
    want = torch.nn.functional.cross_entropy(full.logits[:, :-1][used], targets[used])
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert out.logits.shape == (int(used.sum()), full.logits.shape[-1])
