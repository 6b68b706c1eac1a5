"""``python -m gar_tool.shapes``: make shapes-world data, benchmarks and an untrained model.

::

    python -m gar_tool.shapes data  --out data/shapes --records 40000 [--turns 3] [--format jsonl|datasets] [--seed 1]
    python -m gar_tool.shapes bench --out data/shapes-bench-1 --items 600 --regions 1 [--seed 2]
    python -m gar_tool.shapes init  --out ckpt/shapes-init [--hidden-size 192 --layers 4 ...]
    python -m gar_tool.shapes grow  --model ckpt/a --out ckpt/b --add-layers 2   # deeper LLM, same function
    python -m gar_tool.shapes scene --out scene.png [--seed 0] [--masks DIR]  # one scene + its shapes as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from gar_tool.cli.argtypes import positive_int, unit_float
from gar_tool.errors import InputError


def _mix(text: str) -> dict[str, float]:
    from gar_tool.shapes.dataset import parse_mix

    try:
        return parse_mix(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gar_tool.shapes", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="training records")
    d.add_argument("--out", required=True)
    d.add_argument("--records", type=positive_int, default=40000, help="questions in all")
    d.add_argument("--turns", type=positive_int, default=1, help="questions per conversation (same regions)")
    d.add_argument("--format", choices=("jsonl", "datasets"), default="jsonl")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--multiple-choice", type=unit_float, default=0.5, help="share asked as multiple choice")
    d.add_argument("--mix", type=_mix, help="question kinds and their shares, e.g. colour:1,shape:1 "
                   "(default: every kind, see gar_tool.shapes.dataset.DEFAULT_MIX)")
    b = sub.add_parser("bench", help="a held-out multiple-choice benchmark (GAR-Bench VQA layout)")
    b.add_argument("--out", required=True)
    b.add_argument("--items", type=positive_int, default=600)
    b.add_argument("--regions", type=int, choices=(1, 2), required=True, help="regions per question")
    b.add_argument("--seed", type=int, default=2)
    i = sub.add_parser("init", help="an untrained GAR checkpoint with the shapes-world tokenizer")
    i.add_argument("--out", required=True)
    i.add_argument("--tile-size", type=positive_int, default=112)
    i.add_argument("--max-tiles", type=positive_int, default=4)
    i.add_argument("--vision-width", type=positive_int, default=96)
    i.add_argument("--vision-depth", type=positive_int, default=3)
    i.add_argument("--vision-heads", type=positive_int, default=3)
    i.add_argument("--hidden-size", type=positive_int, default=192)
    i.add_argument("--layers", type=positive_int, default=4)
    i.add_argument("--heads", type=positive_int, default=3)
    i.add_argument("--kv-heads", type=positive_int, default=1)
    i.add_argument("--intermediate-size", type=positive_int, default=512)
    i.add_argument("--untied", action="store_true", help="an LM head apart from the token embeddings")
    i.add_argument("--roi-double-scale", action="store_true", help="scale the RoI box twice, as GAR-1B")
    i.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("grow", help="a checkpoint with more LLM layers that computes the same (model growth)")
    g.add_argument("--model", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--add-layers", type=positive_int, required=True)
    g.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("scene", help="render one scene (PNG) and print its shapes")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--masks", metavar="DIR", help="also write each shape's mask as DIR/N.png (N = scene order)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except InputError as e:  # bad input: one usage line, exit 2
        parser.error(str(e))


def _run(args: argparse.Namespace) -> int:
    if args.command == "data":
        from gar_tool.shapes.dataset import write_dataset, write_jsonl

        writer = write_jsonl if args.format == "jsonl" else write_dataset
        print(writer(args.out, args.records, args.seed, multiple_choice=args.multiple_choice, turns=args.turns,
                     mix=args.mix))
    elif args.command == "bench":
        from gar_tool.shapes.dataset import write_bench

        print(write_bench(args.out, args.items, args.seed, args.regions))
    elif args.command == "init":
        from gar_tool.shapes.checkpoint import init_checkpoint

        print(init_checkpoint(args.out, tile_size=args.tile_size, max_num_tiles=args.max_tiles,
                              vision_width=args.vision_width, vision_depth=args.vision_depth,
                              vision_heads=args.vision_heads, hidden_size=args.hidden_size,
                              num_layers=args.layers, num_heads=args.heads, num_kv_heads=args.kv_heads,
                              intermediate_size=args.intermediate_size, tie_embeddings=not args.untied,
                              roi_double_scale=args.roi_double_scale, seed=args.seed))
    elif args.command == "grow":
        from gar_tool.shapes.checkpoint import grow_llm

        print(grow_llm(args.model, args.out, add_layers=args.add_layers, seed=args.seed))
    else:
        import numpy as np
        from PIL import Image

        from gar_tool.regions.rle import rle_encode
        from gar_tool.shapes.world import sample_scene

        r = sample_scene(np.random.default_rng(args.seed))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(r.image).save(args.out)
        if args.masks:
            Path(args.masks).mkdir(parents=True, exist_ok=True)
            for k, m in enumerate(r.masks):
                Image.fromarray(m.astype(np.uint8) * 255).save(Path(args.masks) / f"{k}.png")
        json.dump([{"caption": s.caption, "box": [round(v, 1) for v in s.box], "area": round(float(a), 4),
                    "rle": rle_encode(m)} for s, a, m in zip(r.scene.shapes, r.areas, r.masks)], sys.stdout)
        print()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
