"""Micro-batching: concurrent requests are run as one batch with the same answers, bad requests
fail alone, and requests with other decoding options are not mixed in."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gar_tool import GAR
from gar_tool.gar.batching import MicroBatcher
from gar_tool.gar.engine import CacheConfig
from gar_tool.errors import InputError, PromptError, RegionError
from gar_tool.gar.protocol import DecodeOptions

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
        results[i] = batcher.relate(IMG, REGS[i], Q, max_new_tokens=4).token_ids

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(REGS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [results[i] for i in range(len(REGS))] == expected
    assert batcher.batches_run == 1


def test_is_a_gar_backend(batcher, tiny_gar):
    from gar_tool.gar.protocol import GARBackend

    assert isinstance(batcher, GARBackend) and isinstance(tiny_gar, GARBackend)
    assert batcher.prompt_slots == tiny_gar.prompt_slots == 5


def test_bad_requests_fail_in_the_caller(batcher):
    with pytest.raises(PromptError, match="never named"):
        batcher.request(IMG, REGS[0], "What is <Prompt0>?")
    with pytest.raises(RegionError, match="outside"):
        batcher.request(IMG, [{"box": [0, 0, 999, 5]}], None)
    with pytest.raises(InputError, match="unknown decoding option"):
        batcher.describe(IMG, REGS[0][0], max_tokens=2)
    assert batcher.batches_run == 0
    ans = batcher.describe(IMG, REGS[0][0], max_new_tokens=2)
    assert ans.text == GAR(batcher.gar.model, batcher.gar.processor).describe(IMG, REGS[0][0], max_new_tokens=2).text


def test_different_options_are_not_mixed(batcher, tiny_gar):
    plain = GAR(tiny_gar.model, tiny_gar.processor, cache=CacheConfig.disabled())
    reqs = [batcher.request(IMG, REGS[0], Q), batcher.request(IMG, REGS[1], Q)]
    futures = [batcher.submit(reqs[0], DecodeOptions(max_new_tokens=2, ignore_eos=True)),
               batcher.submit(reqs[1], DecodeOptions(max_new_tokens=3, ignore_eos=True))]
    answers = [f.result(timeout=60) for f in futures]
    assert [len(a.token_ids) for a in answers] == [2, 3]  # each decoded with its own options
    assert [a.finish_reason for a in answers] == ["length", "length"]
    assert answers[1].token_ids == plain.relate(IMG, REGS[1], Q, max_new_tokens=3, ignore_eos=True).token_ids
    assert batcher.batches_run == 2


def test_answer_runs_a_list_in_one_batch(batcher):
    reqs = [batcher.request(IMG, r, Q) for r in REGS]
    answers = batcher.answer(reqs, DecodeOptions(max_new_tokens=2))
    assert [a.token_ids for a in answers] == [a.token_ids for a in batcher.gar.answer(reqs, DecodeOptions(max_new_tokens=2))]
    assert batcher.batches_run == 1
