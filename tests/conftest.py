"""Shared fixtures: paths to ../shared (read-only), tiny random GAR checkpoints built at test time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: the hub client must answer from the (empty) local cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURE = SHARED / "fixtures" / "gar-tiny"
FIXTURE_CKPT = FIXTURE / "checkpoint"
FIXTURE_CASES = sorted(p.name for p in (FIXTURE / "cases").iterdir()) if (FIXTURE / "cases").is_dir() else []
GAR_BENCH = SHARED / "data" / "gar-bench"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true",
                     help="also run tests marked slow (CI, i.e. CI=true, always runs them)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (cold-started subprocesses, ...) run in CI and with --run-slow; the
    default local run leaves them out and says so."""
    if config.getoption("--run-slow") or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    slow = [i for i in items if i.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if not i.get_closest_marker("slow")]
        config.stash[_SLOW_LEFT_OUT] = len(slow)


_SLOW_LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    n = config.stash.get(_SLOW_LEFT_OUT, 0)
    if n:
        terminalreporter.write_line(f"{n} slow test(s) left out of this local run: --run-slow runs them "
                                    "(CI=true always does)")


def need_shared() -> None:
    """The tests read ../shared (fixtures, GAR-Bench data), as CI has it: fail loudly without it."""
    if not FIXTURE_CKPT.is_dir() or not GAR_BENCH.is_dir():
        pytest.fail("../shared (fixtures/, data/gar-bench/) must be beside the checkout to run these tests")


@pytest.fixture(scope="session")
def fixture_ckpt() -> Path:
    need_shared()
    return FIXTURE_CKPT


@pytest.fixture(scope="session")
def gar_original(fixture_ckpt):
    """The public parity fixture loaded in compat='original' (fp32, CPU)."""
    from gar_tool import GAR

    return GAR.from_pretrained(str(fixture_ckpt), device="cpu", dtype="float32", compat="original")


@pytest.fixture(scope="session")
def gar_default(gar_original):
    """Same weights, default (training-faithful) mode."""
    from gar_tool import GAR

    return GAR(gar_original.model, gar_original.processor, compat="default")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A random GAR checkpoint with 224-px tiles and its own small vocabulary (so nothing can
    rely on the released geometry or token ids)."""
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    return build_gar_checkpoint(tmp_path_factory.mktemp("tiny-gar"), tile_size=224, max_num_tiles=4,
                                weight_scale=2.0, seed=3)


@pytest.fixture(scope="session")
def tiny_gar(tiny_ckpt):
    from gar_tool import GAR

    return GAR.from_pretrained(str(tiny_ckpt), device="cpu", dtype="float32")
