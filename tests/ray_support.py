"""A local Ray for the Ray tests: 2 CPUs, a small object store, no dashboard, 127.0.0.1 only,
no usage stats. One session per test module (``ray_session`` in a module-scoped fixture)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@contextlib.contextmanager
def ray_session() -> Iterator[None]:
    """Start a local Ray (workers import this worktree's code and the test helpers), then stop it."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    paths = [str(REPO), str(TESTS), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # inherited by Ray's workers
    import ray

    ray.init(num_cpus=2, object_store_memory=300 << 20, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
