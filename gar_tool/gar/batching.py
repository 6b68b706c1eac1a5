"""Micro-batching of concurrent GAR requests (used by the HTTP and MCP servers).

Requests submitted from many threads (or asyncio tasks) within a short wait window are run as one
batched ``GAR`` call: one vision pass over the distinct images, one RoI replay, one batched prefill
and one batched decode. Requests with different decoding options go to different batches. Inputs
are validated in the caller's thread, so a bad request fails alone and never poisons a batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from gar_tool.gar.engine import Sample
from gar_tool.errors import GARError
from gar_tool.gar.generation import DecodeOptions


@dataclass
class _Job:
    sample: Sample
    compat: str | None
    opts: DecodeOptions
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Collects requests for up to ``max_wait`` seconds (or ``max_batch`` requests) and runs them
    together on ``gar``. Thread-safe; call :meth:`close` to stop the worker."""

    def __init__(self, gar: Any, max_batch: int = 8, max_wait: float = 0.01) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.gar = gar
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.batches_run = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="gar-microbatcher", daemon=True)
        self._closed = False
        self._worker.start()

    # ------------------------------------------------------------------ submission
    def submit(self, image: Any, regions: Any, question: str | None, *, instruction: str | None = None,
               compat: str | None = None, **decode: Any) -> Future:
        """Validate and enqueue one request; returns a Future of a ``GARAnswer``.

        ``question=None`` describes ``regions`` (one region). Raises ``InputError`` at once for bad
        input (image, regions, question/regions mismatch, decoding options)."""
        if self._closed:
            raise RuntimeError("MicroBatcher is closed; create a new one")
        opts = DecodeOptions(**decode)
        sample = self.gar._sample(image, regions, question, instruction)
        mode = self.gar._mode(compat)
        self.gar.processor.plan(sample.regions, question, mode, instruction)  # fail here, not in a batch
        job = _Job(sample, mode, opts)
        self._queue.put(job)
        return job.future

    def run(self, image: Any, regions: Any, question: str | None, **kwargs: Any) -> Any:
        """Blocking form of :meth:`submit`."""
        return self.submit(image, regions, question, **kwargs).result()

    async def arun(self, image: Any, regions: Any, question: str | None, **kwargs: Any) -> Any:
        """asyncio form of :meth:`submit` (validation runs in the event loop thread: it is cheap
        compared with the model, but decodes the image)."""
        return await asyncio.wrap_future(self.submit(image, regions, question, **kwargs))

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
                if (nxt.opts, nxt.compat) == (job.opts, job.compat):
                    batch.append(nxt)
                else:
                    pending.append(nxt)  # different options: next batch
            self._execute(batch)

    def _execute(self, batch: list[_Job]) -> None:
        live = [j for j in batch if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            answers = self.gar._generate([j.sample for j in live], live[0].compat, live[0].opts)
            self.batches_run += 1
        except GARError as exc:
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            for j in live:  # isolate the failing request
                self._execute_one(j)
            return
        except Exception as exc:  # model failure: every request of the batch learns about it
            for j in live:
                j.future.set_exception(exc)
            return
        for j, a in zip(live, answers):
            j.future.set_result(a)

    def _execute_one(self, job: _Job) -> None:
        try:
            job.future.set_result(self.gar._generate([job.sample], job.compat, job.opts)[0])
            self.batches_run += 1
        except Exception as exc:
            job.future.set_exception(exc)


__all__ = ["MicroBatcher"]
