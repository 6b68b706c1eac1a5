"""``gar serve --ray``: the Serve application from gar's command line options or a Serve config
file, on a local Ray or an existing cluster, until interrupted."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from gar_tool.errors import InputError
from gar_tool.integrations.ray.config import ServeAppConfig, app_config, load_serve_file


def config_from_args(args: argparse.Namespace) -> tuple[ServeAppConfig, dict[str, dict[str, Any]], str]:
    """``(app config, deployment overrides, route prefix)`` from ``--ray-config`` or the options."""
    if args.ray_config:
        f = load_serve_file(args.ray_config)
        return f.args, f.deployments, f.route_prefix or "/"
    from gar_tool.cli.server_options import DEFAULT_MODEL_TEXT, allowed_hosts
    from gar_tool.grounding.defaults import DEFAULT_DETECTOR

    model = args.model or DEFAULT_MODEL_TEXT
    cfg = app_config({"models": {"default": model}, "detector": args.detector or DEFAULT_DETECTOR,
                      "segmenter": args.segmenter, "device": args.device, "dtype": args.dtype, "compat": args.compat,
                      "max_new_tokens": args.max_new_tokens, "allow_dirs": args.allow_dir,
                      "allow_urls": args.allow_urls, "max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms,
                      "max_concurrency": args.max_concurrency, "max_request_mb": args.max_request_mb,
                      "retry_after": args.retry_after, "allow_hosts": allowed_hosts(args),
                      "allow_origins": args.allow_origin or [], "body_timeout": args.body_timeout})
    return cfg, {}, "/"


def run_serve(args: argparse.Namespace) -> int:
    """Deploy the application with HTTP on ``--host`` / ``--port`` and keep it up until Ctrl-C."""
    cfg, overrides, prefix = config_from_args(args)  # bad config: exit 2 before Ray starts
    if cfg.allow_dirs:
        from gar_tool.integrations.serving import image_inputs

        image_inputs(cfg.allow_dirs)  # fails here, not in a replica, for a missing folder
    try:
        import ray
        from ray import serve
    except ImportError:
        raise InputError("gar serve --ray needs the ray extra: pip install 'gar-agent[ray]'") from None
    from gar_tool.integrations.ray.serve_app import build_app

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=args.ray_address, include_dashboard=False)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(build_app(cfg, overrides), name="gar", route_prefix=prefix)
        print(f"gar serve --ray: serving on http://{args.host}:{args.port}{prefix} (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        serve.shutdown()
        ray.shutdown()


__all__ = ["run_serve", "config_from_args"]
