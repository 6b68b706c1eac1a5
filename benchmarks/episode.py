"""Agent-episode benchmark: caching + batching vs an original-style pipeline, in one run.

Builds a random-weight GAR in memory with the real GAR-1B dimensions (PE-L vision tower, 16-layer
Llama 2048-wide, 128k vocabulary; cost does not depend on weight values; nothing is downloaded),
then measures on one image:

1. an agent episode of k = 1, 3, 8 questions about one region set:
   * original-style: re-encode the image and prefill the whole prompt for every question, batch 1
     (``CacheConfig.disabled()``, the same model object);
   * ours: caches on; the first question alone, the k-1 follow-ups (independent of each other)
     as one batch — their context comes from the KV cache, only their own tokens are prefilled;
2. 8 questions over 8 different region sets: one batched call vs 8 sequential calls (caches on,
   so both share the image tiles; each region set needs its own vision pass and context);
3. RoI replay time vs one decode step, and ``import gar_tool`` time;
4. ``--parts tiles``: per-tile vision reuse. An agent has grounded 6 objects (each touching one or
   two tiles) and asks 8 questions, one at a time, about 8 different pairs of them. Three arms on
   the same model: original-style (caches off), the whole-mask vision cache (one entry per image
   and whole mask: every new region set runs the tower on every tile) and per-tile reuse (only the
   thumbnail and the tiles whose mask is new run). Reported: whole request and vision phase, and
   how many tiles went through the tower. Meant for ``--tiles 16`` (4x4 grid, GAR's training limit).

Every generation decodes exactly ``--new-tokens`` tokens (end-of-turn ignored). The dtype defaults
to the fastest one the CPU computes natively (bfloat16 with AVX-512 BF16 / AMX, else float32);
the header prints the CPU's vector ISA, the dtype, the thread count and the load average. Run::

    .venv/bin/python benchmarks/episode.py                 # GAR-1B size, 2x2 tiles, 32 tokens
    .venv/bin/python benchmarks/episode.py --tiles 16 --parts tiles   # per-tile vision reuse
    .venv/bin/python benchmarks/episode.py --preset gar1b-quarter --tiles 16 --parts tiles  # 1/4 of the time
    .venv/bin/python benchmarks/episode.py --preset small  # minutes on 2 cores
    .venv/bin/python benchmarks/episode.py --preset tiny   # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PRESETS = {
    # GAR-1B: PerceptionLM-1B = PE-L/14 vision (1024 wide, 23 blocks, 16 heads) + Llama-3.2-1B.
    "gar1b": dict(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192,
                  vision_width=1024, vision_depth=23, vision_heads=16, vocab_size=128262),
    # GAR-1B's widths, heads and tile geometry with a quarter of its depth and vocabulary (vision
    # 6 of 23 blocks, LLM 4 of 16 layers, 32k tokens): vision, prefill and decode each cost about
    # a quarter, so their ratios stay close to GAR-1B's in a quarter of the time.
    "gar1b-quarter": dict(hidden_size=2048, num_layers=4, num_heads=32, num_kv_heads=8, intermediate_size=8192,
                          vision_width=1024, vision_depth=6, vision_heads=16, vocab_size=32066),
    "small": dict(hidden_size=512, num_layers=4, num_heads=8, num_kv_heads=2, intermediate_size=2048,
                  vision_width=256, vision_depth=4, vision_heads=4, vocab_size=32000),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
                 vision_width=32, vision_depth=1, vision_heads=2, vocab_size=None),
}


def pick_benchmark_dtype(requested: str | None, isa=None) -> torch.dtype:
    """``None`` → the fastest dtype the CPU supports natively; an explicit ``bfloat16`` on a CPU
    without native bf16 warns once (with the measured slowdown) through the runtime's check."""
    from gar_tool.runtime import native_cpu_dtype, pick_dtype

    if requested is None:
        return native_cpu_dtype(isa)
    return pick_dtype(requested, torch.device("cpu"), isa=isa)


def build(args: argparse.Namespace, tmp: Path, dtype: torch.dtype):
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    dims = dict(PRESETS[args.preset])
    tile = args.tile_size or (448 if args.preset != "tiny" else 224)
    _, model, processor = build_gar_checkpoint(
        tmp, **dims, tile_size=tile, max_num_tiles=args.tiles, dtype=dtype, write_weights=False, seed=0)
    return model, processor, tile


def header(args: argparse.Namespace, dtype: torch.dtype, tile: int, t_build: float) -> str:
    from gar_tool.runtime import cpu_isa

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"# preset {args.preset}, dtype {str(dtype).removeprefix('torch.')}, {args.threads} thread(s); "
            f"CPU vector ISA {cpu_isa()}; load average {load} on {os.cpu_count()} CPUs\n"
            f"# grid up to {args.tiles} tiles of {tile}px + thumbnail, {args.new_tokens} new tokens; "
            f"model built in {t_build:.0f}s")


def scene(tile: int, tiles: int, n_sets: int):
    """An image whose grid is ``tiles`` (a square image fills a square grid) and region sets."""
    side = tile * int(round(tiles ** 0.5))
    rng = np.random.RandomState(0)
    img = (rng.rand(side, side, 3) * 255).astype(np.uint8)
    sets = []
    for i in range(n_sets):
        a = [int(side * f) for f in (0.05 + 0.05 * (i % 4), 0.1, 0.45, 0.5 + 0.05 * (i % 3))]
        b = [int(side * f) for f in (0.5, 0.3 + 0.04 * i, 0.95, 0.9)]
        sets.append([{"box": a}, {"box": b}])
    return img, sets


QUESTIONS = ["Is <Prompt0> to the left of <Prompt1>?", "Do <Prompt0> and <Prompt1> have the same colour?",
             "Which is larger, <Prompt0> or <Prompt1>?", "Describe <Prompt1> and its relation to <Prompt0>.",
             "Is <Prompt0> touching <Prompt1>?", "Are <Prompt0> and <Prompt1> made of the same material?",
             "How far is <Prompt0> from <Prompt1>?", "Is <Prompt1> in front of <Prompt0>?"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="gar1b")
    p.add_argument("--tiles", type=int, default=4, help="max tiles (4 = 2x2 grid + thumbnail)")
    p.add_argument("--tile-size", type=int, default=None)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                   help="default: the fastest dtype this CPU supports natively")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ks", default="1,3,8", help="episode lengths")
    p.add_argument("--parts", default="episode,sets,roi", help="which measurements (comma list: "
                   "episode, sets, roi, tiles)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from gar_tool.gar.engine import CacheConfig
    from gar_tool.gar.generation import DecodeOptions
    from gar_tool.gar.predictor import GAR

    dtype = pick_benchmark_dtype(args.dtype)
    with tempfile.TemporaryDirectory() as d:
        t_build, (model, processor, tile) = timed(lambda: build(args, Path(d), dtype))
    ks = [int(k) for k in args.ks.split(",")]
    img, sets = scene(tile, args.tiles, 8)
    opts = dict(max_new_tokens=args.new_tokens)
    print(header(args, dtype, tile, t_build), flush=True)

    def run(gar, images, regions, questions):
        reqs = [gar.request(i, r, q) for i, r, q in zip(images, regions, questions)]
        return gar.answer(reqs, DecodeOptions(ignore_eos=True, **opts))

    parts = set(args.parts.split(","))
    rows = []
    for k in (ks if "episode" in parts else []):
        plain = GAR(model, processor, cache=CacheConfig.disabled())
        t_orig = sum(timed(lambda q=q: run(plain, [img], [sets[0]], [q]))[0] for q in QUESTIONS[:k])
        ours = GAR(model, processor)
        t_first, _ = timed(lambda: run(ours, [img], [sets[0]], [QUESTIONS[0]]))
        t_rest = 0.0
        if k > 1:
            t_rest, _ = timed(lambda: run(ours, [img] * (k - 1), [sets[0]] * (k - 1), QUESTIONS[1:k]))
        t_ours = t_first + t_rest
        ph, po = plain.engine.timings, ours.engine.timings
        rows.append((k, t_orig, t_ours, ph, po))
        print(f"episode k={k}: original-style {t_orig:7.1f}s | ours {t_ours:7.1f}s "
              f"(first {t_first:.1f}s + {k - 1} batched {t_rest:.1f}s) | speed-up {t_orig / t_ours:5.2f}x")
        print(f"    phases original-style: {_phases(ph)}\n    phases ours:           {_phases(po)}")

    t_seq = t_bat = ds = db = float("nan")
    if "sets" in parts:
        t_seq, t_bat, ds, db = region_sets(model, processor, img, sets, run)
    if "roi" in parts:
        roi_and_import(model, processor, img, sets, rows)
    reuse = tile_reuse(model, processor, tile, args.tiles, run) if "tiles" in parts else None

    if rows or "sets" in parts:
        print("\n| k | original-style (s) | ours (s) | speed-up |\n|---|---|---|---|")
    for k, t_orig, t_ours, _, _ in rows:
        print(f"| {k} | {t_orig:.1f} | {t_ours:.1f} | {t_orig / t_ours:.2f}x |")
    if "sets" in parts:
        print(f"| 8 region sets | sequential {t_seq:.1f} | batched {t_bat:.1f} | {t_seq / t_bat:.2f}x "
              f"(decode phase {ds / db:.2f}x) |")
    if reuse is not None:
        print_reuse_table(reuse)
    print(f"# load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


# ---------------------------------------------------------------------- per-tile vision reuse
#: Grounded objects as boxes in units of a 4x4 tile grid (x1, y1, x2, y2): three inside one tile,
#: three straddling two tiles, no two on the same tile.
OBJECTS = {"A": (0.2, 0.2, 0.8, 0.7), "B": (1.6, 1.3, 2.4, 1.7), "C": (3.1, 0.3, 3.8, 0.9),
           "D": (0.3, 2.6, 0.7, 3.4), "E": (2.2, 3.2, 2.9, 3.8), "F": (3.2, 2.5, 3.8, 3.5)}
PAIRS = ["AB", "CD", "EF", "AC", "BE", "DF", "AF", "BD"]


def reuse_scene(tile: int, tiles: int):
    """A square image of a ``√tiles × √tiles`` grid and the 8 region sets (pairs of objects)."""
    side = tile * int(round(tiles ** 0.5))
    img = (np.random.RandomState(1).rand(side, side, 3) * 255).astype(np.uint8)
    unit = side / 4
    boxes = {k: {"box": [int(v * unit) for v in b]} for k, b in OBJECTS.items()}
    return img, [[boxes[a], boxes[b]] for a, b in PAIRS]


def tile_reuse(model, processor, tile, tiles, run):
    """8 questions over 8 region sets, one at a time: original-style vs whole-mask vs per-tile
    (each arm its own GAR on the same model, so its own caches)."""
    from gar_tool.gar.engine import CacheConfig
    from gar_tool.gar.predictor import GAR

    img, sets = reuse_scene(tile, tiles)
    probe = GAR(model, processor)
    slots = processor.vocab.prompt_slots
    n_tiles = probe.inputs(img, sets[0], QUESTIONS[0]).num_tiles
    for pair, regions in zip(PAIRS, sets):
        per_region = [int((probe.inputs(img, [r]).label_tiles[1:] != slots).flatten(1).any(1).sum()) for r in regions]
        print(f"region set {pair}: tiles touched per region {per_region} (of {n_tiles - 1} + thumbnail)")
    arms = {"original-style": CacheConfig.disabled(), "whole-mask cache": CacheConfig(per_tile_vision=False),
            "per-tile reuse": CacheConfig()}
    gars = {name: GAR(model, processor, cache=cfg) for name, cfg in arms.items()}
    totals = dict.fromkeys(arms, 0.0)
    names = list(arms)
    # Interleaved: request i runs in every arm before request i+1 (the arm order rotating), so a
    # change of machine load hits all arms alike.
    for i, (regions, q) in enumerate(zip(sets, QUESTIONS)):
        line = []
        for name in names[i % 3:] + names[:i % 3]:
            g = gars[name]
            before = g.engine.timings.get("vision_tiles", 0)
            dt = timed(lambda: run(g, [img], [regions], [q]))[0]
            totals[name] += dt
            line.append(f"{name} {dt:.1f}s/{int(g.engine.timings['vision_tiles'] - before)} tiles")
        print(f"    request {i + 1} ({PAIRS[i]}): {', '.join(line)}", flush=True)
    out = {}
    for name in names:
        t = dict(gars[name].engine.timings)
        out[name] = (totals[name], t)
        print(f"tiles {name:>16}: whole {totals[name]:7.1f}s | vision {t['vision']:6.1f}s over "
              f"{int(t['vision_tiles'])} tiles | {_phases(t)}", flush=True)
    return out


def print_reuse_table(reuse) -> None:
    (t_o, po), (t_w, pw), (t_p, pp) = reuse.values()
    print("\n| 8 region sets, 8 questions | original-style | whole-mask cache | per-tile reuse | "
          "per-tile vs whole-mask | per-tile vs original |\n|---|---|---|---|---|---|")
    print(f"| whole requests (s) | {t_o:.1f} | {t_w:.1f} | {t_p:.1f} | {t_w / t_p:.2f}x | {t_o / t_p:.2f}x |")
    print(f"| vision phase (s) | {po['vision']:.1f} | {pw['vision']:.1f} | {pp['vision']:.1f} | "
          f"{pw['vision'] / pp['vision']:.2f}x | {po['vision'] / pp['vision']:.2f}x |")
    print(f"| tiles through the tower | {int(po['vision_tiles'])} | {int(pw['vision_tiles'])} | "
          f"{int(pp['vision_tiles'])} | | |")
    print(f"| context + prefill (s) | {po.get('context', 0) + po['prefill']:.1f} | "
          f"{pw.get('context', 0) + pw['prefill']:.1f} | {pp.get('context', 0) + pp['prefill']:.1f} | | |")
    print(f"| decode (s) | {po['decode']:.1f} | {pw['decode']:.1f} | {pp['decode']:.1f} | | |")


def region_sets(model, processor, img, sets, run):
    """8 different region sets on one image: one batched call vs 8 sequential calls."""
    from gar_tool.gar.predictor import GAR

    seq = GAR(model, processor)
    t_seq = sum(timed(lambda s=s: run(seq, [img], [s], [QUESTIONS[0]]))[0] for s in sets)
    bat = GAR(model, processor)
    t_bat, _ = timed(lambda: run(bat, [img] * 8, sets, [QUESTIONS[0]] * 8))
    ds, db = seq.engine.timings["decode"], bat.engine.timings["decode"]
    print(f"8 region sets: sequential {t_seq:.1f}s, batched {t_bat:.1f}s (whole request {t_seq / t_bat:.2f}x); "
          f"decode phase {ds:.1f}s vs {db:.1f}s ({ds / db:.2f}x)")
    print(f"    phases sequential: {_phases(seq.engine.timings)}\n    phases batched:    {_phases(bat.engine.timings)}")
    return t_seq, t_bat, ds, db


@torch.no_grad()
def roi_and_import(model, processor, img, sets, rows):
    """RoI replay (both regions of one request) vs one batch-1 decode step; import time."""
    from gar_tool.gar.predictor import GAR

    g = GAR(model, processor)
    inp = g.inputs(img, sets[0], QUESTIONS[0])
    feats = model.encode_images(inp.pixel_values, inp.label_tiles)
    idx = torch.zeros(len(inp.replay_token_ids), dtype=torch.long)
    reps = 20
    t_roi = timed(lambda: [model.roi_features([feats], [inp.grid], inp.replay_boxes, idx) for _ in range(reps)])[0] / reps
    if rows:
        step = rows[0][4]["decode"] / max(rows[0][4]["decode_steps"], 1)
    else:  # measure one batch-1 decode step here
        from gar_tool.gar.generation import DecodeOptions

        g.engine.timings.clear()
        g.answer([g.request(img, sets[0], QUESTIONS[0])], DecodeOptions(max_new_tokens=9, ignore_eos=True))
        step = g.engine.timings["decode"] / g.engine.timings["decode_steps"]
    print(f"RoI replay (2 regions): {t_roi * 1e3:.2f} ms = {100 * t_roi / step:.3f}% of a decode step ({step:.3f}s)")
    imp = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import gar_tool; "
                          "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True)
    print(f"import gar_tool: {float(imp.stdout):.3f}s")


def _phases(t: dict) -> str:
    keys = ("preprocess", "vision", "replay", "context", "prefill", "decode")
    return ", ".join(f"{k} {t.get(k, 0.0):.1f}s" for k in keys) + f", steps {int(t.get('decode_steps', 0))}"


if __name__ == "__main__":
    sys.exit(main())
