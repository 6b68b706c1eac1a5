"""``gar batch``: answer questions about many images (a manifest) on Ray Data, or in process.

Manifests, records, resuming: :mod:`gar_tool.integrations.ray.batch` and ``.manifest``. Ray is
needed only without ``--no-ray`` (``pip install 'gar-agent[ray]'``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gar_tool.cli.argtypes import non_negative, positive_int, unit_float

DEFAULT_MODEL_TEXT = "HaochenWang/GAR-1B"


def register(subparsers: Any) -> None:
    """Add the ``batch`` sub-command."""
    p = subparsers.add_parser(
        "batch", help="answer questions about many images (JSONL / Parquet manifest or a folder) on Ray Data",
        description="Run a manifest of images, questions and optional regions / phrases through grounding and "
                    "GAR (or the planner) and write one record per item (answer + evidence) to --out. "
                    "Resumable: rerun the same command to continue.")
    p.add_argument("manifest", help="a .jsonl or .parquet manifest, or a folder of images (with --question)")
    p.add_argument("--out", required=True, metavar="OUT.jsonl|OUT.parquet", help="output file")
    p.add_argument("--question", default=None, help="question for every item that has none (a folder needs it "
                   "or --phrases); name regions <Prompt0>, <Prompt1>, ... (given regions first, then phrases)")
    p.add_argument("--phrases", default=None, help="phrases to ground in every item that has none ('a cup. a "
                   "saucer.'): each phrase's best detection becomes the next <PromptN>")
    p.add_argument("--model", default=None, metavar="DIR|HUB", help=f"GAR checkpoint (default {DEFAULT_MODEL_TEXT})")
    p.add_argument("--detector", default=None, metavar="DIR|HUB|none",
                   help="Grounding DINO (default IDEA-Research/grounding-dino-tiny when items have phrases or a "
                        "planner is used, else none)")
    p.add_argument("--segmenter", default="none", metavar="DIR|HUB|sam|none",
                   help="SAM for box / point prompts and detections (default none: boxes stay rectangles)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16")
    p.add_argument("--compat", choices=("default", "original"), default="default")
    p.add_argument("--max-new-tokens", type=positive_int, default=256, help="GAR answer length limit")
    p.add_argument("--box-threshold", type=unit_float, default=0.35, help="detector box threshold (default 0.35)")
    p.add_argument("--text-threshold", type=unit_float, default=0.25, help="detector text threshold")
    p.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                   help="image paths may also lie under DIR (repeatable; the manifest's folder always is allowed)")
    p.add_argument("--planner", default=None, metavar="SPEC",
                   help="answer with the planner agent (openai:MODEL, ollama:MODEL, anthropic:MODEL, hf:DIR)")
    p.add_argument("--planner-base-url", default=None, help="OpenAI-compatible server for openai: planners")
    p.add_argument("--max-steps", type=positive_int, default=6, help="planner tool steps (default 6)")
    ray = p.add_argument_group("Ray")
    ray.add_argument("--no-ray", action="store_true", help="run in this process, one item after another")
    ray.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="an existing Ray cluster ('auto', ray://HOST:10001); default: start a local Ray")
    ray.add_argument("--batch-size", type=positive_int, default=8, help="items per batch (default 8)")
    ray.add_argument("--gar-actors", type=positive_int, default=1, help="GAR actor pool size (default 1)")
    ray.add_argument("--gar-gpus", type=non_negative, default=0.0, help="GPUs per GAR actor, fractions allowed")
    ray.add_argument("--gar-cpus", type=non_negative, default=1.0, help="CPUs per GAR actor (default 1)")
    ray.add_argument("--ground-actors", type=positive_int, default=1, help="grounding actor pool size")
    ray.add_argument("--ground-gpus", type=non_negative, default=0.0, help="GPUs per grounding actor")
    ray.add_argument("--ground-cpus", type=non_negative, default=1.0, help="CPUs per grounding actor")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _off(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in ("", "none", "off") else value


def run(args: argparse.Namespace) -> int:
    from gar_tool.errors import InputError
    from gar_tool.grounding.defaults import DEFAULT_DETECTOR
    from gar_tool.integrations.ray.batch import BatchJob, StageResources, run_batch
    from gar_tool.integrations.ray.items import BatchSettings
    from gar_tool.integrations.ray.manifest import read_manifest

    items, _ = read_manifest(args.manifest, question=args.question, phrases=args.phrases)  # bad input: exit 2
    detector = args.detector
    if detector is None:
        detector = DEFAULT_DETECTOR if args.planner or any(it.phrases for it in items) else "none"
    if not args.no_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InputError("gar batch on Ray needs the ray extra (pip install 'gar-agent[ray]'); or pass "
                             "--no-ray to run in this process") from None
    settings = BatchSettings(max_new_tokens=args.max_new_tokens, box_threshold=args.box_threshold,
                             text_threshold=args.text_threshold, planner=args.planner,
                             planner_base_url=args.planner_base_url, max_steps=args.max_steps)
    job = BatchJob(manifest=args.manifest, out=args.out, question=args.question, phrases=args.phrases,
                   model=_off(args.model or DEFAULT_MODEL_TEXT), detector=_off(detector),
                   segmenter=_off(args.segmenter), device=args.device, dtype=args.dtype, compat=args.compat,
                   allow_dirs=tuple(args.allow_dir), settings=settings, batch_size=args.batch_size,
                   gar=StageResources(args.gar_actors, args.gar_cpus, args.gar_gpus),
                   ground=StageResources(args.ground_actors, args.ground_cpus, args.ground_gpus),
                   ray_address=args.ray_address)
    logging.getLogger("ray").setLevel(logging.WARNING)
    stats = run_batch(job, use_ray=not args.no_ray, show_progress=not args.no_progress)
    print("\n".join(stats.lines()))
    return 0


__all__ = ["register", "run"]
