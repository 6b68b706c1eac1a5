"""``gar ground IMAGE "a dog. a ball."``: find the regions matching phrases.

Output: a short table, or with ``--json``::

    {"regions": [{"id": "r1", "label": "a dog", "score": 0.87, "box": [x1, y1, x2, y2],
                  "source": "sam", "rle": {"size": [h, w], "counts": "..."}}, ...]}

``box`` is the mask's box in pixels (x2 / y2 exclusive), ``rle`` the mask as COCO compressed RLE,
``score`` the detector's confidence and ``source`` ``"sam"`` (SAM mask) or ``"box-rect"`` (the box
rectangle: no segmenter, or SAM returned an empty mask). ``--overlay OUT.png`` also draws them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gar_tool.errors import InputError
from gar_tool.grounding.defaults import DEFAULT_DETECTOR, DEFAULT_SEGMENTER
from gar_tool.grounding.phrases import parse_phrases
from gar_tool.media.images import load_image
from gar_tool.cli.argtypes import positive_int as _positive_int
from gar_tool.cli.argtypes import unit_float as _unit_float


def register(subparsers: Any) -> None:
    """Add the ``ground`` sub-command."""
    p = subparsers.add_parser(
        "ground", help="find the regions matching phrases (Grounding DINO + SAM)",
        description="Detect the regions matching each phrase with Grounding DINO and turn the boxes into "
                    "masks with SAM.")
    p.add_argument("image", help="image file")
    p.add_argument("phrases", help='phrases separated by ".", e.g. "a dog. a ball."')
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"Grounding DINO checkpoint directory or hub id (default {DEFAULT_DETECTOR}); "
                        "'shapes-world' = the classical detector of the shapes world (no model)")
    p.add_argument("--segmenter", default="sam",
                   help=f"SAM checkpoint directory or hub id; 'sam' = {DEFAULT_SEGMENTER} (default); "
                        "'none' = no masks, regions are the box rectangles")
    p.add_argument("--box-threshold", type=_unit_float, default=0.35, metavar="T",
                   help="keep boxes whose detector score is above T (default 0.35)")
    p.add_argument("--text-threshold", type=_unit_float, default=0.25, metavar="T",
                   help="a box's phrase token must score above T (default 0.25)")
    p.add_argument("--max-regions", type=_positive_int, default=None, metavar="N",
                   help="keep the N best regions")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--dtype", default=None,
                   help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)")
    p.add_argument("--json", action="store_true", help="print JSON with COCO RLE masks")
    p.add_argument("--overlay", metavar="OUT.png", default=None,
                   help="also write the image with the regions drawn and a legend")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Check every cheap input before loading models, so mistakes fail fast.
    phrases = parse_phrases(args.phrases)
    image = load_image(args.image)
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None and not overlay.parent.is_dir():
        raise InputError(f"--overlay: directory {str(overlay.parent)!r} does not exist")

    from gar_tool.regions.region import Regions
    from gar_tool.tools.components import load_detector

    detector = load_detector(args.detector, segmenter=args.segmenter, device=args.device, dtype=args.dtype)
    found = detector.detect(image, phrases, box_threshold=args.box_threshold,
                            text_threshold=args.text_threshold, max_regions=args.max_regions)
    regions = Regions(r.with_meta(id=f"r{i + 1}") for i, r in enumerate(found))

    if args.json:
        print(json.dumps(regions_json(regions)))
    else:
        print(format_table(regions, phrases, args.box_threshold, args.text_threshold))
    if overlay is not None:
        from gar_tool.media.overlay import draw_overlay

        try:
            draw_overlay(image, regions).save(overlay, format="PNG")
        except OSError as exc:
            raise InputError(f"--overlay: cannot write {str(overlay)!r} ({exc})") from None
    return 0


def regions_json(regions: Any) -> dict:
    """``{"regions": [...]}`` as documented in the module docstring."""
    from gar_tool.regions.rle import rle_encode

    return {"regions": [{"id": r.id, "label": r.label,
                         "score": None if r.score is None else round(float(r.score), 4),
                         "box": [round(float(v), 2) for v in r.box], "source": r.source,
                         "rle": rle_encode(r.mask)} for r in regions]}


def format_table(regions: Any, phrases: list[str], box_threshold: float, text_threshold: float) -> str:
    """Human-readable table of the regions (one line per region)."""
    if len(regions) == 0:
        return (f"no region found for {', '.join(repr(p) for p in phrases)} "
                f"(box threshold {box_threshold}, text threshold {text_threshold})")
    rows = [("id", "label", "score", "box x1,y1,x2,y2", "pixels", "mask")]
    for r in regions:
        rows.append((r.id or "", r.label or "", "" if r.score is None else f"{r.score:.3f}",
                     ",".join(f"{v:g}" for v in r.box), str(r.area), r.source))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(wd) for cell, wd in zip(row, widths)).rstrip() for row in rows)


__all__ = ["register", "run", "regions_json", "format_table"]
