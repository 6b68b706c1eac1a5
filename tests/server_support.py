"""Helpers for the server and client tests: a live uvicorn server on 127.0.0.1 (a thread that
stops by itself), toolkits over the tiny models, a GAR-Bench image with its masks, a slow fake GAR."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import GAR_BENCH
from tools_support import FakeGAR

BENCH_IMAGE = "images/vqa_7.png"


def bench_item(image: str = BENCH_IMAGE) -> tuple[Path, list[dict]]:
    """``(image path, mask_rles)`` of the GAR-Bench-VQA item on ``image`` (fails when absent)."""
    ann = GAR_BENCH / "annotations" / "GAR-Bench-VQA.json"
    path = GAR_BENCH / image
    if not ann.is_file() or not path.is_file():
        pytest.fail("../shared/data/gar-bench must be beside the checkout")
    items = [x for x in json.loads(ann.read_text()) if x["image"] == image]
    return path, items[0]["mask_rles"]


def tiny_toolkit(tiny_gar: Any, dino_dir: Path | None, *, batch_wait: float | None = 0.01, **kw: Any):
    """A toolkit over the tiny GAR (a fresh wrapper around the shared weights, so batching counts
    are this toolkit's own) with a MicroBatcher, and the tiny Grounding DINO (no SAM)."""
    from gar_tool import GAR
    from gar_tool.gar.batching import MicroBatcher
    from gar_tool.grounding import GroundingDetector
    from gar_tool.tools import GARToolkit

    gar = GAR(tiny_gar.model, tiny_gar.processor)
    batcher = None if batch_wait is None else MicroBatcher(gar, max_batch=8, max_wait=batch_wait)
    det = None if dino_dir is None else GroundingDetector.from_pretrained(str(dino_dir), segmenter=None, device="cpu")
    kw.setdefault("max_new_tokens", 3)
    return GARToolkit(gar if batcher is None else batcher, det, False, **kw)


class SlowGAR(FakeGAR):
    """A FakeGAR whose ``answer`` waits until ``release`` is set (to hold a server slot)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def answer(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.release.wait(timeout=30)
        return super().answer(*args, **kwargs)


class LiveServer:
    """``with LiveServer(app) as srv: httpx.get(srv.url + "/health")`` — uvicorn in a daemon thread
    on a pre-bound 127.0.0.1 socket (no port race). It stops on exit, and by itself after
    ``max_seconds`` whatever happens to the test."""

    def __init__(self, app: Any, max_seconds: float = 180.0, port: int = 0) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="auto"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.deadline = threading.Timer(max_seconds, self.stop)
        self.deadline.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        self.deadline.start()
        until = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < until:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise RuntimeError("uvicorn did not start within 30 s")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self.deadline.cancel()
        self.thread.join(timeout=15)
        self.sock.close()

@pytest.fixture(scope="module")
def real_kit(tiny_gar, tiny_dino_dir):
    """A toolkit over the tiny GAR + tiny Grounding DINO that may read the shared GAR-Bench images."""
    from gar_tool.tools import ImageInputConfig

    path, _ = bench_item()
    kit = tiny_toolkit(tiny_gar, tiny_dino_dir, inputs=ImageInputConfig(allowed_roots=[path.parent]))
    yield kit
    kit.gar.close()
