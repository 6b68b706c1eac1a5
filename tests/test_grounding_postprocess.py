"""Exact tests of the grounding text rules and post-processing on hand-made inputs (no model)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from gar_tool.errors import InputError
from gar_tool.grounding.phrases import build_prompt, chunk_phrases, parse_phrases, token_phrase_index
from gar_tool.grounding.postprocess import (Detections, cxcywh_to_xyxy_pixels, decode_detections, nms_per_label,
                                            transformers_postprocess)
from grounding_fixtures import tiny_dino_dir  # noqa: F401  (fixture)

NEG = -20.0  # a logit whose sigmoid is ~2e-9


# ----------------------------------------------------------------------------- phrases
@pytest.mark.parametrize("given, expected", [
    ("a dog. a ball.", ["a dog", "a ball"]),
    ("a dog", ["a dog"]),
    ("  a   dog .. a ball ", ["a dog", "a ball"]),
    ("a dog? a ball.", ["a dog", "a ball"]),
    ("A Dog. a dog. a ball", ["A Dog", "a ball"]),
    (["a dog", " a  ball "], ["a dog", "a ball"]),
    (("cat", "Cat", "dog"), ["cat", "dog"]),
])
def test_parse_phrases(given, expected):
    assert parse_phrases(given) == expected


@pytest.mark.parametrize("given, message", [
    ("", "no phrase"),
    (" . ? . ", "no phrase"),
    ([], "no phrase"),
    (["a dog", "  "], None),  # blank items are dropped, the rest is fine
    (["a dog. a cat"], "phrase separator"),
    (["a dog", 3], r"phrases\[1\] must be a string, got int"),
    (None, "must be a string"),
    (b"a dog", "must be a string"),
])
def test_parse_phrases_errors(given, message):
    if message is None:
        assert parse_phrases(given) == ["a dog"]
        return
    with pytest.raises(InputError, match=message):
        parse_phrases(given)


def test_build_prompt_spans_index_the_lowercased_text():
    text, spans = build_prompt(["A Dog", "a red ball", "x"])
    assert text == "a dog. a red ball. x."
    assert [text[s:e] for s, e in spans] == ["a dog", "a red ball", "x"]


def _word_count(text: str) -> int:
    # stand-in tokenizer: [CLS] + words + one "." per phrase + [SEP]
    return 2 + len(text.replace(".", " . ").split())


@pytest.mark.parametrize("limit, expected", [
    (100, [["a dog", "a big red ball", "cat"]]),
    (10, [["a dog", "a big red ball"], ["cat"]]),   # 2 + 3 + 5 = 10 fits exactly
    (9, [["a dog"], ["a big red ball", "cat"]]),     # 2 + 5 + 2 = 9
    (7, [["a dog"], ["a big red ball"], ["cat"]]),
])
def test_chunk_phrases_keeps_whole_phrases(limit, expected):
    assert chunk_phrases(["a dog", "a big red ball", "cat"], _word_count, limit) == expected


def test_chunk_phrases_rejects_a_phrase_longer_than_the_limit():
    with pytest.raises(InputError, match=r"'a big red ball' is 7 tokens .* limit of 6"):
        chunk_phrases(["a dog", "a big red ball"], _word_count, 6)


def test_token_phrase_index():
    text, spans = build_prompt(["a dog", "ball"])  # "a dog. ball."
    # [CLS] a dog . ball . [SEP]
    offsets = [(0, 0), (0, 1), (2, 5), (5, 6), (7, 11), (11, 12), (0, 0)]
    assert token_phrase_index(offsets, spans) == [-1, 0, 0, -1, 1, -1, -1]
    assert token_phrase_index(offsets, spans, first_phrase=5) == [-1, 5, 5, -1, 6, -1, -1]


# ----------------------------------------------------------------------------- decode
# prompt "a dog. ball." → tokens [CLS] a dog . ball . [SEP], padded to T = 10 logits
OWNER = [-1, 0, 0, -1, 1, -1, -1]
T = 10


def _logits(rows: list[dict[int, float]]) -> torch.Tensor:
    out = torch.full((len(rows), T), NEG)
    out[:, len(OWNER):] = -math.inf  # padding, as the model pads to max_text_len
    for q, row in enumerate(rows):
        for t, v in row.items():
            out[q, t] = v
    return out


def _close(actual: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=1e-4, rtol=0)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_decode_thresholds_and_phrase_labels():
    logits = _logits([
        {2: _logit(0.9)},                    # "dog" token → phrase 0, score 0.9
        {4: _logit(0.6), 1: _logit(0.3)},    # "ball" wins over "a" → phrase 1
        {0: _logit(0.95), 1: _logit(0.2)},   # score from [CLS] 0.95, best phrase token 0.2 < text 0.25
        {2: _logit(0.3)},                    # score 0.3 < box threshold 0.35
        {3: _logit(0.8), 4: _logit(0.26)},   # "." scores 0.8; phrase token 0.26 > 0.25 → phrase 1
    ])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 5)
    det = decode_detections(logits, boxes, OWNER, (100, 200), box_threshold=0.35, text_threshold=0.25)
    assert det.phrase_ids.tolist() == [0, 1, 1]
    assert det.scores.tolist() == pytest.approx([0.9, 0.6, 0.8])  # the usual max over all tokens
    _close(det.boxes, [[80.0, 40.0, 120.0, 60.0]] * 3)


def test_decode_thresholds_are_strict_and_one_keeps_nothing():
    logits = _logits([{2: 50.0}, {2: _logit(0.5)}])  # sigmoid(50) == 1.0 exactly in float32
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2)
    assert len(decode_detections(logits, boxes, OWNER, (10, 10), 1.0, 0.0)) == 0
    assert len(decode_detections(logits, boxes, OWNER, (10, 10), 0.0, 1.0)) == 0
    assert decode_detections(logits, boxes, OWNER, (10, 10), 0.5, 0.0).phrase_ids.tolist() == [0]
    assert len(decode_detections(logits, boxes, OWNER, (10, 10), 0.0, 0.0)) == 2


def test_decode_scales_clips_and_drops_degenerate_boxes():
    h, w = 50, 100
    pred = torch.tensor([
        [0.5, 0.5, 1.0, 1.0],     # whole image
        [0.0, 0.0, 0.4, 0.4],     # hangs over the top-left corner → clipped
        [1.0, 0.9, 0.6, 0.6],     # hangs over the bottom-right corner → clipped
        [0.5, 0.5, 0.005, 0.5],   # 0.5 px wide → dropped
        [1.2, 0.5, 0.2, 0.2],     # entirely right of the image → zero width after clipping → dropped
    ])
    det = decode_detections(_logits([{2: 5.0}] * 5), pred, OWNER, (h, w), 0.1, 0.1)
    _close(det.boxes, [[0, 0, 100, 50], [0, 0, 20, 10], [70, 30, 100, 50]])
    assert all(0 <= x <= w for x in det.boxes[:, 0::2].flatten().tolist())
    assert all(0 <= y <= h for y in det.boxes[:, 1::2].flatten().tolist())


def test_decode_accepts_low_precision_and_no_detection():
    logits = _logits([{2: 3.0}]).to(torch.bfloat16)
    det = decode_detections(logits, torch.tensor([[0.5, 0.5, 0.5, 0.5]]), OWNER, (8, 8), 0.5, 0.5)
    assert det.boxes.dtype == torch.float32 and len(det) == 1
    empty = decode_detections(_logits([{}]), torch.tensor([[0.5, 0.5, 0.5, 0.5]]), OWNER, (8, 8), 0.35, 0.25)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)


def test_decode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"pred_boxes \(Q, 4\)"):
        decode_detections(torch.zeros(3, T), torch.zeros(2, 4), OWNER, (8, 8), 0.3, 0.3)
    with pytest.raises(ValueError, match="prompt tokens"):
        decode_detections(torch.zeros(3, 4), torch.zeros(3, 4), OWNER, (8, 8), 0.3, 0.3)


def test_cxcywh_to_xyxy_pixels():
    out = cxcywh_to_xyxy_pixels(torch.tensor([[0.25, 0.5, 0.5, 0.2]]), (100, 40))
    _close(out, [[0.0, 40.0, 20.0, 60.0]])


# ----------------------------------------------------------------------------- NMS and merging
def _det(boxes, scores, labels) -> Detections:
    return Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores),
                      torch.tensor(labels, dtype=torch.long))


def test_nms_is_per_label_and_sorts_by_score():
    det = _det([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]],
               [0.6, 0.9, 0.7, 0.8], [0, 0, 1, 0])
    out = nms_per_label(det, iou_threshold=0.5)
    # box 0 (0.6) is suppressed by box 1 (0.9, IoU 0.68, same label); box 2 has another label
    assert out.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert out.phrase_ids.tolist() == [0, 0, 1]
    assert nms_per_label(det, 0.5, max_regions=2).scores.tolist() == pytest.approx([0.9, 0.8])
    assert len(nms_per_label(Detections.empty(), 0.5)) == 0


def test_chunk_results_merge_then_nms():
    # chunk 1 holds phrases 0-1, chunk 2 phrase 2 (global numbering via first_phrase)
    chunk1 = _det([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.4], [0, 1])
    chunk2 = _det([[0, 0, 10, 10], [0.5, 0, 10, 10]], [0.7, 0.3], [2, 2])
    out = nms_per_label(Detections.cat([chunk1, chunk2]), 0.5)
    assert out.phrase_ids.tolist() == [2, 0, 1]  # same box, three phrases: all kept; duplicate of 2 gone
    assert out.scores.tolist() == pytest.approx([0.7, 0.5, 0.4])
    assert len(Detections.cat([])) == 0


def test_detections_validate_shapes():
    with pytest.raises(ValueError, match="disagree"):
        Detections(torch.zeros(2, 4), torch.zeros(3), torch.zeros(3, dtype=torch.long))


# ----------------------------------------------------------------------------- transformers reference
def test_matches_transformers_postprocessing_on_boxes_and_scores(tiny_dino_dir):
    """Our rules give transformers' scores and boxes (for queries labelled with a phrase)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_dino_dir), local_files_only=True)
    text, spans = build_prompt(["a dog", "ball"])
    enc = processor.tokenizer(text, return_offsets_mapping=True)
    owner = token_phrase_index(enc["offset_mapping"], spans)
    assert owner == OWNER
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 12, T, generator=gen) * 3
    logits[..., len(OWNER):] = -math.inf
    pred = torch.rand(1, 12, 2, generator=gen) * 0.4 + 0.3          # centres well inside
    pred = torch.cat([pred, torch.rand(1, 12, 2, generator=gen) * 0.4 + 0.05], dim=-1)  # sizes keep boxes inside
    outputs = SimpleNamespace(logits=logits, pred_boxes=pred, input_ids=torch.tensor([enc["input_ids"]]))
    ref = transformers_postprocess(processor, outputs, outputs.input_ids, 0.3, 0.0, (120, 80))
    ours = decode_detections(logits[0], pred[0], owner, (120, 80), 0.3, 0.0)
    assert len(ours) == len(ref["scores"]) > 0
    assert ours.scores.tolist() == pytest.approx(ref["scores"].tolist())
    torch.testing.assert_close(ours.boxes, ref["boxes"].float(), atol=1e-4, rtol=0)
    # transformers labels a box with the decoded text of every token above text_threshold; ours is
    # the phrase holding the best phrase token, so that phrase shares a word with transformers' text.
    ref = transformers_postprocess(processor, outputs, outputs.input_ids, 0.3, 0.5, (120, 80))
    ours = decode_detections(logits[0], pred[0], owner, (120, 80), 0.3, 0.5)
    text_of = {tuple(round(v, 3) for v in b): lab for b, lab in zip(ref["boxes"].tolist(), ref["text_labels"])}
    assert 0 < len(ours) <= len(ref["scores"])
    for box, pid in zip(ours.boxes.tolist(), ours.phrase_ids.tolist()):
        words = set(text_of[tuple(round(v, 3) for v in box)].replace(".", " ").split())
        assert words & set(["a dog", "ball"][pid].split())
