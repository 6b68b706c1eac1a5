"""Video-clip benchmark: what the clip caches save on follow-up questions, in one run.

Builds a random-weight GAR in memory (the presets of ``benchmarks/episode.py``; nothing is
downloaded), a synthetic clip of ``--frames`` frames and one track with a mask on every frame,
then measures, every generation decoding exactly ``--new-tokens`` tokens:

1. the first question about the clip (every frame through the vision tower, prefill, decode);
2. ``k`` follow-up questions one at a time, interleaved: caches off (every frame re-encoded and the
   whole prompt prefilled each time, as the original code would) vs caches on (the context KV of
   frames and replays from the cache: only the question's own tokens are prefilled);
3. where the time of a cold question goes (vision / prefill + decode).

Prints the thread count, the load average and the CPU's vector ISA with the numbers. Run::

    .venv/bin/python benchmarks/video_clip.py --preset small --frames 16
    .venv/bin/python benchmarks/video_clip.py --preset tiny            # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from gar_tool.runtime import cpu_isa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from episode import PRESETS  # noqa: E402  (the same model sizes as the image benchmark)

QUESTIONS = ["Where does <Prompt0> go?", "What colour is <Prompt0>?", "Does <Prompt0> change its shape?",
             "Is <Prompt0> faster at the end?", "What is <Prompt0> next to?"]


def timed(fn):
    """``(wall seconds, CPU seconds of this process, result)``: on a loaded machine the CPU time is
    the steadier measure of the work done (one thread: CPU time ≈ the work)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--follow-ups", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from gar_tool.gar.engine import CacheConfig
    from gar_tool.gar.predictor import GAR
    from gar_tool.gar.protocol import DecodeOptions
    from gar_tool.testing.checkpoints import build_gar_checkpoint
    from gar_tool.testing.video import moving_square
    from gar_tool.video.decode import load_clip
    from gar_tool.video.track import coerce_track

    tile = 448 if args.preset != "tiny" else 224
    with tempfile.TemporaryDirectory() as d:
        _, model, processor = build_gar_checkpoint(Path(d), **PRESETS[args.preset], tile_size=tile,
                                                   dtype=getattr(torch, args.dtype), write_weights=False, seed=0)
    frames, masks = moving_square(args.frames, (360, 640), 96)
    clip = load_clip(frames, args.frames)
    track = coerce_track(masks, clip)
    opts = DecodeOptions(max_new_tokens=args.new_tokens, ignore_eos=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# preset {args.preset} ({args.dtype}), {args.frames} frames of {tile}px (one tile each), "
          f"{args.new_tokens} new tokens; {args.threads} thread(s), load average {load:.2f}, ISA {cpu_isa()}")

    def ask(gar, q):
        return gar.answer_video([gar.video_request(clip, [track], q)], opts)

    ours = GAR(model, processor)
    w_first, c_first, _ = timed(lambda: ask(ours, QUESTIONS[0]))
    vision = ours.video_engine
    prep = vision.prepare(ours.video_request(clip, [track], QUESTIONS[0]))
    vision.vision.clear()
    w_vis, c_vis, _ = timed(lambda: vision.frame_features([prep]))
    plain = GAR(model, processor, cache=CacheConfig.disabled())
    qs = [QUESTIONS[1 + i % (len(QUESTIONS) - 1)] for i in range(args.follow_ups)]
    off = [0.0, 0.0]
    on = [0.0, 0.0]
    for q in qs:  # interleaved, so that a change of machine load hits both alike
        w, c, _ = timed(lambda: ask(plain, q))
        off = [off[0] + w, off[1] + c]
        w, c, _ = timed(lambda: ask(ours, q))
        on = [on[0] + w, on[1] + c]
    print("                                         wall s    CPU s")
    print(f"first question (cold)                  {w_first:8.2f} {c_first:8.2f}")
    print(f"  of which vision of {args.frames:2d} frames          {w_vis:8.2f} {c_vis:8.2f}")
    print(f"{args.follow_ups} follow-ups, caches off (re-encode)   {off[0]:8.2f} {off[1]:8.2f}")
    print(f"{args.follow_ups} follow-ups, caches on (context KV)   {on[0]:8.2f} {on[1]:8.2f}")
    print(f"ratio off / on                          {off[0] / on[0]:7.2f}x {off[1] / on[1]:7.2f}x")
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# load average at the end {load_end:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
