"""``gar serve``: the HTTP API (FastAPI + uvicorn) over the gar tools.

Models load once at start-up; GAR calls of concurrent requests are micro-batched
(``--max-batch``, ``--batch-wait-ms``). Endpoints, errors and status codes:
:mod:`gar_tool.integrations.http.server` (and ``/docs`` on the running server).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gar_tool.cli.argtypes import positive_float as _positive_float
from gar_tool.cli.argtypes import positive_int as _positive_int
from gar_tool.cli.server_options import add_network_options, add_toolkit_options
from gar_tool.limits import limit


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve", help="serve the gar tools over HTTP (FastAPI; docs at /docs)",
        description="Serve gar_describe, gar_relate, gar_ground and gar_measure over HTTP: POST /v1/describe, "
                    "/v1/relate, /v1/ground, /v1/measure, /v1/images (upload), /v1/segment, /v1/ask (the "
                    "planner, with --planner); GET /health; docs at /docs; the web page at /.")
    add_network_options(p)
    add_toolkit_options(p)
    p.add_argument("--max-request-mb", type=_positive_float, default=limit("request_bytes") / (1 << 20), metavar="N",
                   help=f"largest request body in MiB (default {limit('request_bytes') >> 20}; a 25 MiB image as "
                        "base64 is ~34)")
    p.add_argument("--body-timeout", type=_positive_float, default=float(limit("body_read_seconds")), metavar="S",
                   help=f"seconds a client has to send its request body, else 408 (default "
                        f"{limit('body_read_seconds')}); bodies are read before a --max-concurrency slot is taken")
    p.add_argument("--retry-after", type=int, default=1, metavar="S",
                   help="Retry-After seconds of a 429 answer when --max-concurrency is reached (default 1)")
    p.add_argument("--planner", default=None, metavar="SPEC",
                   help="planner agent behind POST /v1/ask and the web page: openai:MODEL | ollama:MODEL | "
                        "anthropic:MODEL | hf:REPO_OR_DIR (default: none, /v1/ask answers 501)")
    p.add_argument("--planner-base-url", default=None, metavar="URL",
                   help="OpenAI-compatible server for openai: planners (vLLM, llama.cpp, LM Studio, ...)")
    p.add_argument("--planner-max-steps", type=_positive_int, default=8, metavar="N",
                   help="tool-using steps before the planner must answer (default 8)")
    ray = p.add_argument_group("Ray Serve (pip install 'gar-agent[ray]'; see gar_tool.integrations.ray.serve_app)")
    ray.add_argument("--ray", action="store_true",
                     help="serve on Ray Serve: GAR, grounding, session store and HTTP front as separate deployments")
    ray.add_argument("--ray-config", default=None, metavar="FILE",
                     help="a Ray Serve config file (as for 'serve run'): models, replicas, GPUs, autoscaling; "
                          "replaces the model, input and batching options above")
    ray.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="an existing Ray cluster ('auto', ray://HOST:10001); default: start a local Ray")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gar_tool.errors import InputError

    if args.ray or args.ray_config:
        from gar_tool.integrations.ray.launch import run_serve

        if args.planner:
            raise InputError("--planner is not served on Ray yet: leave out --ray, or --planner (the page's "
                             "planner questions then answer 501)")

        return run_serve(args)
    from gar_tool.cli.server_options import allowed_hosts, setup_logging, toolkit_from_args
    from gar_tool.integrations.serving import close_toolkit

    if args.retry_after < 1:
        raise InputError(f"--retry-after must be >= 1 second, got {args.retry_after}")
    setup_logging(args.log_level)
    planner = planner_factory(args.planner, base_url=args.planner_base_url, max_steps=args.planner_max_steps)
    toolkit, names = toolkit_from_args(args)
    log = logging.getLogger("gar_tool.integrations.http.server")
    log.info("serving %s", ", ".join(toolkit.available_tools()))
    if args.host in ("0.0.0.0", "::") and not args.allow_host:
        log.warning("listening on every interface, but only requests for %s are answered (DNS-rebinding "
                    "protection); add --allow-host NAME for each name clients use", ", ".join(allowed_hosts(args)))
    try:
        from gar_tool.integrations.http.server import create_app, serve

        app = create_app(toolkit, max_request_bytes=int(args.max_request_mb * (1 << 20)),
                         max_concurrency=args.max_concurrency, retry_after=args.retry_after,
                         model_names={**names, "planner": args.planner}, allowed_hosts=allowed_hosts(args),
                         allowed_origins=args.allow_origin or (), body_timeout=args.body_timeout, planner=planner)
        serve(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        close_toolkit(toolkit)
    return 0


def planner_factory(spec: str | None, *, base_url: str | None = None, max_steps: int = 8) -> Any:
    """``--planner SPEC`` → ``factory(toolkit) -> planner`` for :func:`create_app` (None without a
    spec). The planner class comes from the ``gar.planners`` entry point (``gar_agents.Planner``):
    ``gar_tool`` never imports the planner package itself."""
    from gar_tool.integrations.serving import planner_class

    if spec is None or not spec.strip():
        return None
    cls = planner_class()
    return lambda toolkit: cls(toolkit, spec.strip(), max_steps=max_steps, base_url=base_url)


__all__ = ["register", "run", "planner_factory"]
