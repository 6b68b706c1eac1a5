"""Helpers for the evaluation-harness tests: shared data paths, a fake GAR, a local judge stub.

The judge stub is a real HTTP server on 127.0.0.1 (an ephemeral port) speaking the
chat-completions protocol, so the harness is tested through its actual transport; it answers
with a scripted function of each request and records every request it got.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
GAR_BENCH = SHARED / "data" / "gar-bench"
DLC_BENCH = SHARED / "data" / "dlc-bench"
OFFICIAL = GAR_BENCH / "official-outputs"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ fake GAR
class Interrupted(RuntimeError):
    """Raised by the fake predictor to simulate a crash / Ctrl-C in the middle of a run."""


@dataclass
class FakeAnswer:
    text: str
    token_ids: list[int] = field(default_factory=list)


@dataclass
class Call:
    image_shape: tuple[int, ...]
    n_regions: int
    question: str
    max_new_tokens: int
    boxes: list[tuple[float, float, float, float]]


def letter_for(question: str) -> str:
    """The fake's deterministic answer: a letter that depends on the question text."""
    return "ABCD"[sum(map(ord, question)) % 4]


class FakePredictor:
    """Deterministic stand-in for ``gar_tool.GAR`` (``relate``, ``describe``, ``prompt_slots``).

    Answers are padded with spaces (the harness must strip them, as the original does). After
    ``fail_after`` calls it raises :class:`Interrupted`.
    """

    prompt_slots = 5

    def __init__(self, answer: Callable[[str, Any], str] | None = None, fail_after: int | None = None) -> None:
        self.answer = answer or (lambda question, regions: letter_for(question))
        self.fail_after = fail_after
        self.calls: list[Call] = []

    def _record(self, image: Any, regions: list, question: str, max_new_tokens: int) -> None:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise Interrupted(f"simulated interruption after {self.fail_after} calls")
        self.calls.append(Call(tuple(np.asarray(image).shape), len(regions), question, max_new_tokens,
                               [r.box for r in regions]))

    def relate(self, image: Any, regions: Any, question: str, *, max_new_tokens: int) -> FakeAnswer:
        self._record(image, list(regions), question, max_new_tokens)
        return FakeAnswer(f" {self.answer(question, regions)} \n")

    def describe(self, image: Any, region: Any, *, max_new_tokens: int) -> FakeAnswer:
        self._record(image, [region], "<describe>", max_new_tokens)
        return FakeAnswer(f"  an object of {region.area} pixels ")


# ---------------------------------------------------------------------------------- judge stub
@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def parts(self) -> list[dict[str, Any]]:
        content = self.body["messages"][0]["content"]
        return [{"type": "text", "text": content}] if isinstance(content, str) else content

    @property
    def text(self) -> str:
        """The concatenated text parts of the user turn."""
        return "".join(p["text"] for p in self.parts if p["type"] == "text")


class StubJudge:
    """Context manager running a chat-completions stub on 127.0.0.1; ``base_url`` ends in ``/v1``."""

    def __init__(self, reply: Callable[[Request], str]) -> None:
        self.reply = reply
        self.requests: list[Request] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                stub.requests.append(req)
                payload = json.dumps({"id": f"stub-{len(stub.requests)}", "object": "chat.completion",
                                      "model": body.get("model"),
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": stub.reply(req)}}]})
                data = payload.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "StubJudge":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------------------ synthetic images
def write_image(path: Path, height: int, width: int, seed: int = 0) -> None:
    """A random RGB PNG/JPEG of the given size (stands in for a benchmark photo)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
