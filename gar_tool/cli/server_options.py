"""Options shared by ``gar serve`` and ``gar mcp`` (models, image inputs, batching, limits).

Not a command itself (it is not in ``COMMAND_MODULES``). Nothing heavy is imported here: models
load in :func:`toolkit_from_args`, called from the commands' run functions.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any, Iterator

from gar_tool.cli.argtypes import non_negative as _non_negative
from gar_tool.cli.argtypes import port as _port
from gar_tool.cli.argtypes import positive_float as _positive_float
from gar_tool.cli.argtypes import positive_int as _positive_int
from gar_tool.limits import limit

DEFAULT_MODEL_TEXT = "HaochenWang/GAR-1B"  # gar_tool.gar.predictor.DEFAULT_MODEL (importing it loads torch)


def add_network_options(p: argparse.ArgumentParser, port: int = 8000) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; 0.0.0.0 exposes the server to the network)")
    p.add_argument("--port", type=_port, default=port, help=f"TCP port (default {port})")
    p.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                   help="a Host name clients may use (repeatable; default: localhost, 127.0.0.1, ::1 and --host); "
                        "other Host headers are refused (DNS-rebinding protection); '*' allows any")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help="a web origin (https://app.example) whose pages may call the server from a browser, with "
                        "CORS headers (repeatable; default none: cross-origin browser requests are refused)")


def add_toolkit_options(p: argparse.ArgumentParser, log_level: str = "info") -> None:
    """Model, image-input, batching and logging options (both servers)."""
    p.add_argument("--model", default=None, metavar="DIR|HUB",
                   help=f"GAR checkpoint: directory or hub id (default {DEFAULT_MODEL_TEXT}; 'none' = no GAR tools)")
    p.add_argument("--detector", default=None, metavar="DIR|HUB",
                   help="Grounding DINO checkpoint for gar_ground: directory or hub id (default "
                        "IDEA-Research/grounding-dino-tiny; 'none' = no gar_ground; 'shapes-world' = the "
                        "classical shapes-world detector, no model)")
    p.add_argument("--segmenter", default="none", metavar="DIR|HUB|sam",
                   help="SAM checkpoint turning boxes / points into object masks; 'sam' = facebook/sam-vit-base "
                        "(default none: boxes stay rectangles)")
    p.add_argument("--tracker", default="none", metavar="DIR|HUB|sam2",
                   help="SAM 2 video checkpoint for gar_track; 'sam2' = facebook/sam2.1-hiera-tiny (default none)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: fp32 on CPU, bf16 on CUDA)")
    p.add_argument("--compat", choices=("default", "original"), default="default",
                   help="'original' reproduces the released GAR inference code exactly")
    p.add_argument("--max-new-tokens", type=_positive_int, default=256, help="GAR answer length limit (default 256)")
    p.add_argument("--allow-dir", action="append", default=None, metavar="DIR",
                   help="image and video paths must lie under DIR (repeatable; default: the working directory)")
    p.add_argument("--allow-urls", action="store_true",
                   help="let the tools fetch http(s) image URLs (public addresses only)")
    p.add_argument("--max-image-pixels", type=_positive_int, default=limit("image_pixels"), metavar="N",
                   help=f"largest image accepted, width x height, read from the file header before decoding "
                        f"(default {limit('image_pixels')})")
    p.add_argument("--max-image-mb", type=_positive_float, default=limit("image_bytes") / (1 << 20), metavar="N",
                   help=f"largest encoded image accepted in MiB (default {limit('image_bytes') >> 20})")
    p.add_argument("--max-batch", type=_positive_int, default=8,
                   help="most concurrent GAR requests run as one batch (default 8)")
    p.add_argument("--batch-wait-ms", type=_non_negative, default=10.0,
                   help="how long a GAR request waits for others to join its batch (default 10 ms)")
    p.add_argument("--max-concurrency", type=_positive_int, default=16,
                   help="most tool calls running at once (default 16)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=log_level,
                   help=f"log level (logs go to stderr; default {log_level})")


def toolkit_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, str | None]]:
    """Load the toolkit once (micro-batched GAR): ``(toolkit, component names)``."""
    from gar_tool.grounding.defaults import DEFAULT_DETECTOR
    from gar_tool.integrations.serving import image_inputs, load_toolkit

    inputs = image_inputs(args.allow_dir, args.allow_urls,  # bad --allow-dir fails before models load
                          max_pixels=args.max_image_pixels, max_bytes=int(args.max_image_mb * (1 << 20)))
    return load_toolkit(args.model or DEFAULT_MODEL_TEXT, args.detector or DEFAULT_DETECTOR, args.segmenter,
                        device=args.device, dtype=args.dtype, compat=args.compat, inputs=inputs,
                        max_new_tokens=args.max_new_tokens, max_batch=args.max_batch,
                        max_wait=args.batch_wait_ms / 1000.0, tracker=getattr(args, "tracker", None))


def allowed_hosts(args: argparse.Namespace) -> list[str]:
    """``--allow-host`` values, else the loopback names and ``--host``."""
    from gar_tool.integrations.http.guards import default_hosts

    return list(args.allow_host) if args.allow_host else default_hosts(args.host)


def setup_logging(level: str) -> None:
    """Log records to stderr (stdout stays free: ``gar mcp`` speaks the protocol there)."""
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout — Python prints and file descriptor 1 (native code) —
    to stderr while the block runs (model loading in ``gar mcp``)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable fd 1 (embedded): redirect Python-level writes only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


__all__ = ["add_network_options", "add_toolkit_options", "toolkit_from_args", "allowed_hosts", "setup_logging",
           "stdout_to_stderr"]
