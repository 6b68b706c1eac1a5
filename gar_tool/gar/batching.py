"""Micro-batching of concurrent GAR requests (the servers' and the in-process toolkit's GAR).

:class:`MicroBatcher` wraps a :class:`~gar_tool.gar.protocol.GARBackend` (normally a
:class:`~gar_tool.GAR`) and is one itself: requests answered from many threads (or asyncio tasks)
within a short wait window are run as one batched ``answer`` call on the wrapped backend — one
vision pass over the distinct images, one RoI replay, one batched prefill and one batched decode.
Requests with different decoding options go to different batches. Requests are validated by
``request`` in the caller's thread, so a bad request fails alone and never poisons a batch; a
batch that fails on one request's account is retried request by request, so the failure stays
with it.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from gar_tool.errors import GARError
from gar_tool.gar.protocol import Compat, DecodeOptions, GARAnswer, GARBackend, GARFrontMixin, GARRequest


@dataclass
class _Job:
    request: GARRequest
    opts: DecodeOptions
    future: "Future[GARAnswer]" = field(default_factory=Future)


class MicroBatcher(GARFrontMixin):
    """Collects requests for up to ``max_wait`` seconds (or ``max_batch`` requests) and runs them
    together on ``gar``. Thread-safe; call :meth:`close` to stop the worker.

    Attributes:
        gar: the wrapped backend.
        batches_run: how many batched calls the worker made (for tests and status pages).
    """

    def __init__(self, gar: GARBackend, max_batch: int = 8, max_wait: float = 0.01) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait!r}")
        self.gar = gar
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.batches_run = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="gar-microbatcher", daemon=True)
        self._closed = False
        self._worker.start()

    # ------------------------------------------------------------------ GARBackend
    @property
    def prompt_slots(self) -> int:
        return self.gar.prompt_slots

    @property
    def name(self) -> str:
        return str(getattr(self.gar, "name", type(self.gar).__name__))

    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Compat | None = None) -> GARRequest:
        return self.gar.request(image, regions, question, instruction=instruction, compat=compat)

    def answer(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        """Submit every request and wait: they share batches with each other and with other
        callers' requests."""
        futures = [self.submit(r, options) for r in requests]
        return [f.result() for f in futures]

    # ------------------------------------------------------------------ submission
    def submit(self, request: GARRequest, options: DecodeOptions | None = None) -> "Future[GARAnswer]":
        """Enqueue one validated request (from :meth:`request`); returns a Future of its answer."""
        if self._closed:
            raise RuntimeError("MicroBatcher is closed; create a new one")
        job = _Job(request, options if options is not None else DecodeOptions())
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join(timeout=30)

    # ------------------------------------------------------------------ worker
    def _loop(self) -> None:
        pending: list[_Job] = []
        while True:
            job = pending.pop(0) if pending else self._queue.get()
            if job is None:
                return
            batch, deadline = [job], time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=max(left, 0)) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                if nxt.opts == job.opts:
                    batch.append(nxt)
                else:
                    pending.append(nxt)  # different options: next batch
            self._execute(batch)

    def _execute(self, batch: list[_Job]) -> None:
        live = [j for j in batch if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        results, calls = answer_each(self.gar, [j.request for j in live], live[0].opts)
        self.batches_run += calls
        for j, res in zip(live, results):
            if isinstance(res, BaseException):
                j.future.set_exception(res)
            else:
                j.future.set_result(res)


def answer_each(gar: GARBackend, requests: Sequence[GARRequest],
                options: DecodeOptions) -> tuple[list[GARAnswer | Exception], int]:
    """Answer ``requests`` as one batch on ``gar``: ``(per request its answer or the exception that
    is its own, how many ``answer`` calls succeeded)``.

    A batch that fails with a :class:`~gar_tool.errors.GARError` (one request's fault, e.g. its
    prompt) is re-run request by request, so the failure stays with that request; any other
    failure (the model itself) is every request's. Used by :class:`MicroBatcher` and by batching
    front ends elsewhere (the Ray Serve deployment), so all isolate failures the same way.
    """
    reqs = list(requests)
    try:
        return list(gar.answer(reqs, options)), 1
    except GARError as exc:
        if len(reqs) == 1:
            return [exc], 0
    except Exception as exc:  # model failure: every request of the batch learns about it
        return [exc] * len(reqs), 0
    out: list[GARAnswer | Exception] = []
    for r in reqs:  # isolate the failing request
        try:
            out.append(gar.answer([r], options)[0])
        except Exception as exc:
            out.append(exc)
    return out, sum(not isinstance(a, Exception) for a in out)




__all__ = ["MicroBatcher", "answer_each"]
