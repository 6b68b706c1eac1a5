"""Micro-batching: concurrent requests are run as one batch with the same answers, bad requests
fail alone, and requests with other decoding options are not mixed in."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gar_tool import GAR
from gar_tool.gar.batching import MicroBatcher
from gar_tool.gar.engine import CacheConfig
from gar_tool.errors import PromptError, RegionError

IMG = (np.random.RandomState(5).rand(200, 260, 3) * 255).astype(np.uint8)
REGS = [[{"box": [10, 10, 100, 90]}, {"box": [120, 40, 250, 190]}],
        [{"box": [0, 0, 60, 60]}, {"points": [[200, 150]]}],
        [{"polygon": [[20, 20], [200, 30], [90, 180]]}, {"box": [150, 100, 255, 195]}]]
Q = "Is <Prompt0> above <Prompt1>?"


@pytest.fixture()
def batcher(tiny_gar):
    gar = GAR(tiny_gar.model, tiny_gar.processor)
    b = MicroBatcher(gar, max_batch=8, max_wait=0.5)
    yield b
    b.close()


def test_concurrent_requests_share_one_batch(batcher, tiny_gar):
    plain = GAR(tiny_gar.model, tiny_gar.processor, cache=CacheConfig.disabled())
    expected = [plain.relate(IMG, r, Q, max_new_tokens=4).token_ids for r in REGS]
    results: dict[int, list[int]] = {}
    start = threading.Barrier(len(REGS))

    def worker(i):
        start.wait()
        results[i] = batcher.run(IMG, REGS[i], Q, max_new_tokens=4).token_ids

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(REGS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [results[i] for i in range(len(REGS))] == expected
    assert batcher.batches_run == 1


def test_bad_requests_fail_in_the_caller(batcher):
    with pytest.raises(PromptError, match="never named"):
        batcher.submit(IMG, REGS[0], "What is <Prompt0>?", max_new_tokens=2)
    with pytest.raises(RegionError, match="outside"):
        batcher.submit(IMG, [{"box": [0, 0, 999, 5]}], None, max_new_tokens=2)
    assert batcher.run(IMG, REGS[0][:1], None, max_new_tokens=2).finish_reason in ("length", "stop")


def test_different_options_are_not_mixed(batcher):
    futures = [batcher.submit(IMG, REGS[0], Q, max_new_tokens=2), batcher.submit(IMG, REGS[1], Q, max_new_tokens=3)]
    answers = [f.result(timeout=60) for f in futures]
    assert [len(a.token_ids) <= n for a, n in zip(answers, (2, 3))] == [True, True]
    assert batcher.batches_run == 2


def test_async_form(batcher):
    import asyncio

    async def go():
        return await asyncio.gather(*(batcher.arun(IMG, r, Q, max_new_tokens=2) for r in REGS))

    answers = asyncio.run(go())
    assert len(answers) == 3 and batcher.batches_run == 1
