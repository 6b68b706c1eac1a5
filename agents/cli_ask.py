"""``gar ask IMAGE "question"``: the planner agent from the shell.

Registered as a ``gar`` sub-command through the ``gar.commands`` entry point (``gar_tool`` never
imports ``agents``).
"""

from __future__ import annotations

import argparse
import json
import sys

from gar_tool.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a free-form question about an image with the planner agent")
    p.add_argument("image", help="image file")
    p.add_argument("question", help="free-form question")
    p.add_argument("--planner", default=None,
                   help="openai:MODEL | ollama:MODEL | anthropic:MODEL | hf:REPO_OR_DIR "
                        "(default hf:Qwen/Qwen2.5-1.5B-Instruct, run in-process)")
    p.add_argument("--planner-base-url", default=None, help="OpenAI-compatible server for openai: planners")
    p.add_argument("--model", default=None, help="GAR checkpoint dir or hub id (default HaochenWang/GAR-1B)")
    p.add_argument("--detector", default=None,
                   help="Grounding DINO dir or hub id (default IDEA-Research/grounding-dino-tiny)")
    p.add_argument("--segmenter", default="sam",
                   help="SAM dir or hub id; 'sam' = facebook/sam-vit-base (default); 'none' = box masks")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--max-steps", type=int, default=8, help="tool-using steps before the planner must answer")
    p.add_argument("--max-new-tokens", type=int, default=256, help="GAR answer length limit")
    p.add_argument("--json", action="store_true", help="print the result object as JSON")
    p.add_argument("--overlay", default=None, metavar="OUT.png", help="write the evidence overlay image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gar_tool.grounding import DEFAULT_DETECTOR
    from gar_tool.media.images import load_image
    from gar_tool.gar.predictor import DEFAULT_MODEL
    from gar_tool.tools import GARToolkit

    from .models import DEFAULT_PLANNER, make_chat_model
    from .planner import Planner

    image = load_image(args.image)  # bad input fails before any model loads
    if not args.question.strip():
        raise InputError("the question is empty")
    if args.max_steps < 1:
        raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.overlay and not args.overlay.lower().endswith(".png"):
        raise InputError(f"--overlay must name a .png file, got {args.overlay!r}")
    chat = make_chat_model(args.planner or DEFAULT_PLANNER, base_url=args.planner_base_url)
    segmenter = None if str(args.segmenter).lower() == "none" else args.segmenter
    kit = GARToolkit.load(model=args.model or DEFAULT_MODEL, detector=args.detector or DEFAULT_DETECTOR,
                          segmenter=segmenter, device=args.device, dtype=args.dtype,
                          max_new_tokens=args.max_new_tokens)
    result = Planner(kit, chat, max_steps=args.max_steps).ask(image, args.question)
    if args.overlay and result.overlay_png is not None:
        result.save_overlay(args.overlay)
    if args.json:
        out = result.to_dict()
        out["overlay"] = args.overlay if args.overlay and result.overlay_png is not None else None
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(result.answer)
    print()
    print(_evidence_table(result))
    if args.overlay:
        print(f"\noverlay: {args.overlay}" if result.overlay_png is not None else "\noverlay: no regions to draw")
    return 0


def _evidence_table(result) -> str:
    regions = result.to_dict(include_rle=False)["evidence"]["regions"]
    if not regions:
        return "evidence: no regions"
    lines = [f"{'id':<5} {'label':<18} {'score':>5}  {'box':<22} cited",
             "-" * 60]
    for r in regions:
        box = ",".join(f"{v:.0f}" for v in r.get("box", []))
        score = f"{r['score']:.2f}" if r.get("score") is not None else "-"
        lines.append(f"{r['id']:<5} {str(r.get('label') or '-')[:18]:<18} {score:>5}  {box:<22} "
                     f"{'yes' if r['id'] in result.cited else ''}")
    for g in result.evidence.gar:
        lines.append(f"GAR [{', '.join(g.regions)}] {g.question!r} → {g.answer!r}")
    lines.append(f"({len(result.steps)} tool steps, stopped: {result.stopped})")
    return "\n".join(lines)
