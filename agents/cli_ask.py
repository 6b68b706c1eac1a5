"""``gar ask IMAGE "question"``: the planner agent from the shell.

Registered as a ``gar`` sub-command through the ``gar.commands`` entry point (``gar_tool`` never
imports ``agents``). Output: the answer and an evidence table, or ``--json`` (the result object),
or ``--stream`` (one JSON event per line as the run goes, :mod:`gar_agents.events`). Warnings (an
answer given without any tool) go to stderr. When the run fails (planner unreachable, timed out,
``--require-tools``), ``--json`` still prints the result with the steps and evidence gathered so
far (``"stopped": "error"``, ``"error"``), stderr gets one line, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gar_tool.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a free-form question about an image with the planner agent")
    p.add_argument("image", help="image file")
    p.add_argument("question", help="free-form question")
    p.add_argument("--planner", default=None,
                   help="openai:MODEL | ollama:MODEL | anthropic:MODEL | hf:REPO_OR_DIR "
                        "(default hf:Qwen/Qwen2.5-1.5B-Instruct, run in-process)")
    p.add_argument("--planner-base-url", default=None, help="OpenAI-compatible server for openai: planners")
    p.add_argument("--planner-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds per planner request (API planners; default 120); for hf: the longest generation")
    p.add_argument("--planner-retries", type=int, default=1, metavar="N",
                   help="resend a planner request that timed out or failed to connect N times (default 1)")
    p.add_argument("--strict-tools", action="store_true",
                   help="bind the tools with OpenAI strict-mode schemas (strict function calling)")
    p.add_argument("--planner-vision", action="store_true",
                   help="the planner model sees images: offer gar_zoom and show it the pictures")
    p.add_argument("--require-tools", action="store_true",
                   help="fail (exit 1) when the planner answers without calling any tool, instead of a warning")
    p.add_argument("--model", default=None, help="GAR checkpoint dir or hub id (default HaochenWang/GAR-1B)")
    p.add_argument("--detector", default=None,
                   help="Grounding DINO dir or hub id (default IDEA-Research/grounding-dino-tiny)")
    p.add_argument("--segmenter", default="sam",
                   help="SAM dir or hub id; 'sam' = facebook/sam-vit-base (default); 'none' = box masks")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--max-steps", type=int, default=8, help="tool-using steps before the planner must answer")
    p.add_argument("--max-new-tokens", type=int, default=256, help="GAR answer length limit")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the result object as JSON")
    out.add_argument("--stream", action="store_true", help="print each event as one JSON line as the run goes")
    p.add_argument("--overlay", default=None, metavar="OUT.png", help="write the evidence overlay image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gar_tool.grounding import DEFAULT_DETECTOR
    from gar_tool.media.images import load_image
    from gar_tool.gar.predictor import DEFAULT_MODEL
    from gar_tool.tools import GARToolkit

    from .events import AnswerEvent, ErrorEvent
    from .models import DEFAULT_PLANNER, check_retries, check_timeout, make_chat_model
    from .planner import Planner, PlannerError

    image = load_image(args.image)  # bad input fails before any model loads
    if not args.question.strip():
        raise InputError("the question is empty")
    if args.max_steps < 1:
        raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.overlay and not args.overlay.lower().endswith(".png"):
        raise InputError(f"--overlay must name a .png file, got {args.overlay!r}")
    timeout = None if args.planner_timeout is None else check_timeout(args.planner_timeout, "--planner-timeout")
    retries = check_retries(args.planner_retries, "--planner-retries")
    spec = args.planner or DEFAULT_PLANNER
    make_chat_model(spec, base_url=args.planner_base_url, timeout=timeout, retries=retries)  # bad specs: exit 2 now
    segmenter = None if str(args.segmenter).lower() == "none" else args.segmenter
    kit = GARToolkit.load(model=args.model or DEFAULT_MODEL, detector=args.detector or DEFAULT_DETECTOR,
                          segmenter=segmenter, device=args.device, dtype=args.dtype,
                          max_new_tokens=args.max_new_tokens)
    with Planner(kit, spec, base_url=args.planner_base_url, timeout=timeout, retries=retries,
                 max_steps=args.max_steps, strict=args.strict_tools, vision=args.planner_vision,
                 require_tools=args.require_tools) as planner:
        final: Any = None
        for event in planner.stream(image, args.question):
            if args.stream:
                print(json.dumps(event.to_dict(), ensure_ascii=False), flush=True)
            if isinstance(event, (AnswerEvent, ErrorEvent)):
                final = event
    result = final.result
    for warning in result.warnings:
        print(f"gar ask: warning: {warning}", file=sys.stderr)
    if args.overlay and result.overlay_png is not None and isinstance(final, AnswerEvent):
        result.save_overlay(args.overlay)
    if args.json:
        out = result.to_dict()
        out["overlay"] = args.overlay if args.overlay and result.overlay_png is not None \
            and isinstance(final, AnswerEvent) else None
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    elif not args.stream and isinstance(final, AnswerEvent):
        print(result.answer)
        print()
        print(_evidence_table(result))
        if args.overlay:
            print(f"\noverlay: {args.overlay}" if result.overlay_png is not None else "\noverlay: no regions to draw")
    if isinstance(final, ErrorEvent):
        raise PlannerError(final.message, result=result)
    return 0


def _evidence_table(result: Any) -> str:
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
