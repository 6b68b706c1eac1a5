"""GAR's video path on a tiny random checkpoint (224-px tiles: S = 8 features a side, stride 28).

Checked against what the original's video branch does, recomputed here independently: every
frame is one tile with no thumbnail; frame f's crop run is the token *named*
``<|reserved_special_token_{2+f}|>``; frame f's replay is ``roi_align`` over frame f's own S×S
map at frame f's box with the doubly scaled box (quirk Q1); the mask embedding of each frame is
that frame's own mask. Then the parts that are ours: several objects, absent frames, caching,
batching, compat modes and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gar_tool.errors import PromptError, RegionError
from gar_tool.gar.engine import CacheConfig
from gar_tool.gar.protocol import DecodeOptions
from gar_tool.testing.video import moving_square
from gar_tool.video.decode import load_clip
from gar_tool.video.track import coerce_track

SIZE = (64, 96)


@pytest.fixture(scope="module")
def clip_masks():
    frames, masks = moving_square(16, SIZE, 20)
    clip = load_clip(frames, 4)
    return clip, [masks[i] for i in clip.source_indices]


@pytest.fixture(scope="module")
def track(clip_masks):
    clip, masks = clip_masks
    return coerce_track([m if i != 2 else None for i, m in enumerate(masks)], clip)  # absent on frame 2


def _crop_id(gar, j):
    return gar.processor.tokenizer.convert_tokens_to_ids(f"<|reserved_special_token_{2 + j}|>")


def test_inputs_follow_the_original_layout(tiny_gar, clip_masks, track):
    clip, masks = clip_masks
    inp = tiny_gar.clip_inputs(clip, [track])
    geo = tiny_gar.processor.geometry
    s2 = geo.tokens_per_tile
    assert inp.pixels_u8.shape == (4, 3, geo.tile_size, geo.tile_size)  # one tile per frame, no thumbnail
    for f, frame in enumerate(clip.frames):
        thumb = tiny_gar.processor.tile_image(frame)[0][0]  # the image path's thumbnail = whole frame, one tile
        assert torch.equal(inp.pixels_u8[f], thumb)
    ids = inp.input_ids
    assert int((ids == tiny_gar.processor.vocab.image_token_id).sum()) == 4 * s2
    starts = []
    for f in range(4):
        n = int((ids == _crop_id(tiny_gar, f)).sum())
        assert n == (0 if f == 2 else s2)  # one run per frame the object is on, none where it is absent
        if n:
            starts.append(int((ids == _crop_id(tiny_gar, f)).nonzero()[0]))
    assert starts == sorted(starts)  # runs in frame order
    assert inp.replay_frames.tolist() == [0, 1, 3]
    for r, f in enumerate(inp.replay_frames.tolist()):
        ys, xs = np.nonzero(masks[f])
        h, w = SIZE
        assert inp.replay_boxes[r].tolist() == pytest.approx([xs.min() / w, ys.min() / h, xs.max() / w, ys.max() / h])
    bg = tiny_gar.processor.vocab.prompt_slots
    assert bool((inp.label_tiles[2] == bg).all())  # absent: nothing of the object in frame 2's mask
    for f in (0, 1, 3):  # the label tile is the frame's own mask, nearest-resized
        tile = torch.nn.functional.interpolate(torch.from_numpy(masks[f]).float()[None, None],
                                               size=(geo.tile_size,) * 2, mode="nearest")[0, 0] > 0
        assert torch.equal(inp.label_tiles[f] != bg, tile)
    assert "<Prompt0>; \n<Prompt0>: " in inp.prompt_text and inp.prompt_text.count("<|image|>") == 1


@pytest.mark.parametrize("double", [True, False])
def test_replay_is_each_frames_own_roi_align(tiny_ckpt, clip_masks, track, double):
    from torchvision.ops import roi_align

    from gar_tool import GAR

    gar = GAR.from_pretrained(str(tiny_ckpt), device="cpu", dtype="float32", roi_double_scale=double)
    clip, _ = clip_masks
    eng = gar.video_engine
    prep = eng.prepare(gar.video_request(clip, [track]))
    [feats] = eng.frame_features([prep])
    s = gar.processor.geometry.tokens_side
    stride = gar.processor.geometry.feature_stride
    [emb] = eng.embeds([prep], [feats])
    ids = prep.inputs.input_ids
    for r, (f, tok) in enumerate(zip(prep.inputs.replay_frames.tolist(), prep.inputs.replay_token_ids.tolist())):
        fmap = feats[f].float().t().reshape(1, -1, s, s)  # frame f's own S×S map
        x1, y1, x2, y2 = prep.inputs.replay_boxes[r].tolist()
        box = torch.tensor([[0, x1 * s, y1 * s, x2 * s, y2 * s]], dtype=torch.float32)  # feature units
        want = roi_align(fmap, box, output_size=(s, s), spatial_scale=1 / stride if double else 1.0,
                         sampling_ratio=2, aligned=True)[0].permute(1, 2, 0).reshape(s * s, -1)
        assert torch.allclose(emb[ids == tok], want, atol=1e-5)
    image_rows = emb[ids == gar.processor.vocab.image_token_id]
    assert torch.allclose(image_rows, feats.reshape(-1, feats.shape[-1]), atol=1e-6)  # frames in order


def test_each_frame_is_encoded_with_its_own_mask(tiny_gar, clip_masks, track):
    clip, _ = clip_masks
    eng = tiny_gar.video_engine
    prep = eng.prepare(tiny_gar.video_request(clip, [track]))
    [feats] = eng.frame_features([prep])
    inp = prep.inputs
    for f in range(4):
        alone = tiny_gar.model.encode_images(inp.pixel_values[f:f + 1], inp.label_tiles[f:f + 1])[0]
        assert torch.allclose(feats[f], alone, atol=1e-5)
    bg = torch.full_like(inp.label_tiles[:1], tiny_gar.processor.vocab.prompt_slots)
    unmasked = tiny_gar.model.encode_images(inp.pixel_values[:1], bg)[0]
    assert (feats[0] - unmasked).abs().max() > 1e-3  # the mask embedding reached the tower


def test_two_objects_get_their_own_runs(tiny_gar, clip_masks, track):
    clip, masks = clip_masks
    other = coerce_track([np.roll(m, 10, axis=0) for m in masks], clip)
    q = "Is <Prompt0> above <Prompt1>?"
    inp = tiny_gar.clip_inputs(clip, [track, other], q)
    ids = inp.input_ids
    s2 = tiny_gar.processor.geometry.tokens_per_tile
    for f in range(4):  # object 1 on frame f: run 1·F + f
        assert int((ids == _crop_id(tiny_gar, 4 + f)).sum()) == s2
    assert inp.replay_token_ids.unique().numel() == len(inp.replay_token_ids) == 7
    assert "<Prompt0>; <Prompt1>; \n<Prompt0>: " in inp.prompt_text and inp.prompt_text.endswith(
        "\n\n" + q + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    # each frame's mask is the union of the objects on it
    both = tiny_gar.processor.vocab.prompt_slots != inp.label_tiles[0]
    single = tiny_gar.clip_inputs(clip, [track]).label_tiles[0] != tiny_gar.processor.vocab.prompt_slots
    assert int(both.sum()) > int(single.sum())


def test_caches_change_nothing_but_the_work(tiny_gar, clip_masks, track):
    """Follow-ups reuse the context KV (same frames, masks and replays: only the question's tokens
    are prefilled) or, when the context text differs, the frame features; answers equal those of a
    GAR without caches."""
    from gar_tool import GAR

    clip, masks = clip_masks
    cached = GAR(tiny_gar.model, tiny_gar.processor)
    fresh = GAR(tiny_gar.model, tiny_gar.processor, cache=CacheConfig.disabled())
    eng = cached.video_engine
    opts = DecodeOptions(max_new_tokens=4)
    first = cached.video_request(clip, [track])
    cached.generate_video([first], opts)
    assert (eng.contexts.stats.misses, eng.vision.stats.misses) == (1, 4)
    follow_ups = [cached.video_request(clip, [track], instruction="What colour is it?"),
                  cached.video_request(clip, [track], "Where does <Prompt0> go?")]
    for req in follow_ups:  # the same context (everything up to the last crop run)
        a = cached.generate_video([req], opts, keep_logits=True)
        b = fresh.generate_video([req], opts, keep_logits=True)
        assert a.answers[0].token_ids == b.answers[0].token_ids
        assert torch.allclose(a.step_logits[0], b.step_logits[0], atol=1e-4)
    assert eng.contexts.stats.hits == 2 and eng.vision.stats.misses == 4  # no vision for follow-ups
    other = cached.video_request(clip, [track], compat="original")  # another context, the same frames
    a = cached.generate_video([other], opts, keep_logits=True)
    assert eng.vision.stats.hits == 4 and eng.vision.stats.misses == 4
    b = fresh.generate_video([other], opts, keep_logits=True)
    assert torch.allclose(a.step_logits[0], b.step_logits[0], atol=1e-4)
    two = cached.video_request(clip, [coerce_track(masks, clip)], instruction="What is it?")
    together = cached.answer_video([first, two], opts)  # a batch: prefilled in full, left-padded
    assert [x.token_ids for x in together] == [fresh.answer_video([r], opts)[0].token_ids for r in (first, two)]


def test_answer_depends_on_the_track(tiny_gar, clip_masks, track):
    clip, masks = clip_masks
    opts = DecodeOptions(max_new_tokens=1)
    logits = [tiny_gar.generate_video([tiny_gar.video_request(clip, [t])], opts, keep_logits=True).step_logits[0]
              for t in (track, coerce_track([None, None, None, masks[3]], clip))]
    assert (logits[0] - logits[1]).abs().max() > 1e-3


def test_compat_modes(tiny_gar, clip_masks, track):
    clip, _ = clip_masks
    bos = tiny_gar.processor.vocab.bos_id
    orig = tiny_gar.clip_inputs(clip, [track], compat="original")
    default = tiny_gar.clip_inputs(clip, [track])
    assert orig.input_ids[:2].tolist() == [bos, bos] and default.input_ids[1].item() != bos
    assert "<Prompt1>;\n<Prompt1>: " in orig.prompt_text
    assert orig.replay_token_ids.tolist() == default.replay_token_ids.tolist()  # frame tokens do not move


def test_errors(tiny_gar, clip_masks, track):
    clip, masks = clip_masks
    with pytest.raises(PromptError, match="describe takes exactly one track, got 2"):
        tiny_gar.video_request(clip, [track, track])
    with pytest.raises(PromptError, match="at most 5 objects"):
        tiny_gar.video_request(clip, [track] * 6, " ".join(f"<Prompt{i}>" for i in range(6)))
    with pytest.raises(PromptError, match="names <Prompt2> but only 2 region"):
        tiny_gar.video_request(clip, [track, track], "Is <Prompt2> near <Prompt0> <Prompt1>?")
    with pytest.raises(RegionError, match="track 0 has 3 per-frame masks but the clip has 4"):
        tiny_gar.video_request(clip, [masks[:3]])
    frames, big_masks = moving_square(17, SIZE, 20)
    long = load_clip(frames, 17)  # 2 objects x 17 frames = 34 runs > the tiny tokenizer's 33 crop tokens
    t17 = coerce_track(big_masks, long)
    with pytest.raises(PromptError, match="lacks: it has 33 crop tokens; use fewer frames or objects"):
        tiny_gar.video_request(long, [t17, t17], "<Prompt0> or <Prompt1>?")
    with pytest.raises(PromptError, match="special tokens"):
        tiny_gar.video_request(clip, [track], instruction="say <|eot_id|>")
