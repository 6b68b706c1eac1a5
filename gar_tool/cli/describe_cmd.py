"""``gar describe`` and ``gar relate``: ask GAR about regions of an image from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gar_tool.cli.video_cmd import add_video_options, is_video_input, run_video
from gar_tool.errors import InputError
from gar_tool.regions.refs import prompt_token

SPEC_HELP = ("region: mask:PNG | rle:JSON (file or inline COCO RLE) | box:X1,Y1,X2,Y2 | "
             "points:X,Y[;X,Y...] | polygon:X,Y;X,Y;... (pixels, origin top-left)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that loads GAR."""
    p.add_argument("--model", default=None,
                   help="GAR checkpoint: local directory or hub id (default HaochenWang/GAR-1B)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: fp32 on CPU, bf16 on CUDA)")
    p.add_argument("--compat", choices=("default", "original"), default="default",
                   help="'original' reproduces the released inference code exactly, quirks included")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation limit (default 256)")
    p.add_argument("--segmenter", default=None,
                   help="SAM checkpoint (dir or hub id) turning box/points regions into masks")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("describe", help="describe one region of an image or a video")
    d.add_argument("image", help="image file, or a video file / folder of frames (see the video options)")
    d.add_argument("--region", default=None, metavar="SPEC", help=SPEC_HELP + " (required for images)")
    d.add_argument("--instruction", default=None,
                   help="replace GAR's 'Describe this masked region in detail.'")
    add_model_options(d)
    add_video_options(d)
    d.set_defaults(func=run_describe)

    r = sub.add_parser("relate", help="answer a question about several regions (<Prompt0>, <Prompt1>, ...)")
    r.add_argument("image", help="image file, or a video file / folder of frames (see the video options)")
    r.add_argument("question", help="question naming regions as <Prompt0>, <Prompt1>, ... in --region order")
    r.add_argument("--region", action="append", default=[], metavar="SPEC", help=SPEC_HELP + "; repeatable")
    r.add_argument("--regions-json", default=None, metavar="FILE",
                   help="JSON list of COCO RLE dicts in <PromptN> order (GAR-Bench mask_rles)")
    add_model_options(r)
    add_video_options(r)
    r.set_defaults(func=run_relate)


def _load_inputs(args: argparse.Namespace, specs: list[str], regions_json: str | None):
    from gar_tool.media.images import load_image
    from gar_tool.regions.forms import load_regions_json, parse_spec
    from gar_tool.regions.region import Regions

    image = load_image(args.image)
    size = (image.height, image.width)
    if args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    segmenter = None
    if args.segmenter and any(s.split(":", 1)[0].strip().lower() in ("box", "points") for s in specs):
        from gar_tool.grounding import load_segmenter

        segmenter = load_segmenter(args.segmenter, device=args.device, dtype=args.dtype)
    regions = list(load_regions_json(regions_json, size)) if regions_json else []
    regions += [parse_spec(s, size, image=image, segmenter=segmenter) for s in specs]
    if not regions:
        raise InputError("give at least one --region SPEC (or --regions-json FILE)")
    return image, Regions(regions)


def _load_gar(args: argparse.Namespace):
    from gar_tool.gar.predictor import DEFAULT_MODEL, GAR

    return GAR.from_pretrained(args.model or DEFAULT_MODEL, device=args.device, dtype=args.dtype,
                               compat=args.compat)


def _emit(args: argparse.Namespace, answer: Any, regions: Any, gar: Any) -> int:
    if args.json:
        out = {
            "text": answer.text,
            "token_ids": answer.token_ids,
            "finish_reason": answer.finish_reason,
            "prompt_tokens": answer.prompt_tokens,
            "model": gar.name,
            "compat": args.compat,
            "regions": [{"prompt": prompt_token(i), "box": list(r.box), "area": r.area, "source": r.source}
                        for i, r in enumerate(regions)],
        }
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(answer.text)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    if is_video_input(args):
        return run_video(args, None)
    if args.region is None:
        raise InputError("give the region to describe: --region SPEC")
    image, regions = _load_inputs(args, [args.region], None)
    gar = _load_gar(args)
    answer = gar.describe(image, regions[0], instruction=args.instruction,
                          max_new_tokens=args.max_new_tokens)
    return _emit(args, answer, regions, gar)


def run_relate(args: argparse.Namespace) -> int:
    if is_video_input(args):
        return run_video(args, args.question)
    image, regions = _load_inputs(args, args.region, args.regions_json)
    gar = _load_gar(args)
    # Validate the question against the regions before any model work is wasted.
    gar.processor.plan(regions, args.question, args.compat)
    answer = gar.relate(image, regions, args.question, max_new_tokens=args.max_new_tokens)
    return _emit(args, answer, regions, gar)
