"""bfloat16 only where the CPU has it: ISA detection, the fastest native dtype, and the one-time
warning (with a measured reason) for bf16 on a CPU without native bf16 — in the API, the CLI and
the benchmark. The CPU is injected (``isa=`` or a patched ``cpu_isa``), so the no-bf16 path is
tested on any machine."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from gar_tool import runtime
from gar_tool.errors import SlowDtypeWarning
from gar_tool.runtime import CpuIsa, check_cpu_dtype, native_cpu_dtype, pick_dtype

AVX2 = CpuIsa("AVX2", frozenset({"sse4_2", "avx", "avx2", "fma"}), "x86")
SPR = CpuIsa("AVX512", frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "x86")
ZEN4 = CpuIsa("AVX512", frozenset({"avx2", "avx512f", "avx512_bf16"}), "x86")
GRAVITON2 = CpuIsa("DEFAULT", frozenset({"fp", "asimd", "asimdhp"}), "arm")
GRAVITON3 = CpuIsa("SVE256", frozenset({"fp", "asimd", "sve", "bf16", "svebf16"}), "arm")
UNKNOWN = CpuIsa("DEFAULT", frozenset(), "x86")
CPU = torch.device("cpu")


@pytest.fixture()
def fresh(monkeypatch):
    """A process that has not warned yet."""
    monkeypatch.setattr(runtime, "_WARNED", set())


def _slow_warnings(record):
    return [w for w in record if issubclass(w.category, SlowDtypeWarning)]


@pytest.mark.parametrize("isa, native, dtype, text", [
    (AVX2, False, torch.float32, "AVX2, no avx512_bf16 / amx_bf16"),
    (SPR, True, torch.bfloat16, "AVX512 + avx512_bf16, amx_bf16"),
    (ZEN4, True, torch.bfloat16, "AVX512 + avx512_bf16"),
    (GRAVITON2, False, torch.float32, "DEFAULT, no bf16"),
    (GRAVITON3, True, torch.bfloat16, "SVE256 + bf16"),
    (UNKNOWN, None, torch.float32, "DEFAULT (bf16 support unknown)"),
])
def test_isa_table(isa, native, dtype, text):
    assert isa.native_bf16 is native
    assert native_cpu_dtype(isa) == dtype
    assert str(isa) == text


def test_this_cpu_is_read_from_proc_cpuinfo():
    isa = runtime.cpu_isa()
    assert isa.capability == torch.backends.cpu.get_cpu_capability()
    text = Path("/proc/cpuinfo").read_text()
    line = next(ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features"))
    assert isa.flags == frozenset(line.split(":", 1)[1].split())
    assert isa.native_bf16 == any(f in isa.flags for f in ("avx512_bf16", "amx_bf16", "bf16"))


def test_bf16_without_native_support_warns_once_with_the_measured_reason(fresh):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert pick_dtype("bfloat16", CPU, isa=AVX2) is torch.bfloat16
        assert pick_dtype(torch.bfloat16, CPU, isa=AVX2) is torch.bfloat16
        assert pick_dtype("bf16", CPU, isa=AVX2) is torch.bfloat16
    slow = _slow_warnings(record)
    assert len(slow) == 1
    msg = str(slow[0].message)
    assert "AVX2, no avx512_bf16 / amx_bf16" in msg and "use float32" in msg
    m = re.search(r"at ([\d.]+) GFLOP/s in bfloat16 vs ([\d.]+) GFLOP/s in float32 \(float32/bfloat16 = ([\d.]+)x", msg)
    assert m, msg
    bf16, fp32, ratio = map(float, m.groups())
    assert bf16 > 0 and fp32 > 0 and ratio == pytest.approx(fp32 / bf16, rel=0.05, abs=0.05)


@pytest.mark.parametrize("dtype, device, isa", [
    ("bfloat16", CPU, SPR),                       # native bf16
    ("bfloat16", CPU, UNKNOWN),                   # cannot tell: no claim
    ("float32", CPU, AVX2),
    (None, CPU, AVX2),                            # auto on CPU = float32
    ("float16", CPU, AVX2),
    ("bfloat16", torch.device("cuda"), AVX2),     # not a CPU: the CPU's ISA does not matter
])
def test_no_warning_and_no_measurement_otherwise(fresh, monkeypatch, dtype, device, isa):
    def boom(*a, **k):
        raise AssertionError("measured without warning")

    monkeypatch.setattr(runtime, "matmul_gflops", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowDtypeWarning)
        check_cpu_dtype(pick_dtype(dtype, CPU, isa=isa) if device.type == "cpu" else torch.bfloat16, device, isa=isa)


def test_matmul_rate_is_measured():
    assert runtime.matmul_gflops(torch.float32, n=64, budget_s=0.0) > 0


@pytest.fixture()
def avx2_machine(monkeypatch, fresh):
    """Pretend this process runs on an AVX2-only CPU."""
    monkeypatch.setattr(runtime, "cpu_isa", lambda: AVX2)


def test_api_warns_for_bf16_on_a_cpu_without_it(avx2_machine, tiny_ckpt):
    from gar_tool import GAR

    with pytest.warns(SlowDtypeWarning, match=r"AVX2.*GFLOP/s in bfloat16"):
        gar = GAR.from_pretrained(str(tiny_ckpt), device="cpu", dtype="bfloat16")
    assert gar.model.dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowDtypeWarning)  # once per process: not again
        GAR.from_pretrained(str(tiny_ckpt), device="cpu", dtype="bfloat16")


def test_cli_prints_one_warning_line(avx2_machine, tiny_ckpt, tmp_path, capsys):
    from PIL import Image

    from gar_tool.cli import main

    img = tmp_path / "img.png"
    Image.fromarray((np.random.RandomState(0).rand(120, 160, 3) * 255).astype(np.uint8)).save(img)
    code = main(["describe", str(img), "--region", "box:10,10,80,90", "--model", str(tiny_ckpt),
                 "--device", "cpu", "--dtype", "bfloat16", "--max-new-tokens", "2"])
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    assert len(err) == 1 and err[0].startswith("gar describe: warning: bfloat16 is emulated on this CPU (AVX2")


def _benchmark():
    spec = importlib.util.spec_from_file_location("episode_benchmark", REPO / "benchmarks" / "episode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_default_dtype_follows_the_cpu(fresh):
    bench = _benchmark()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowDtypeWarning)
        assert bench.pick_benchmark_dtype(None, AVX2) is torch.float32
        assert bench.pick_benchmark_dtype(None, SPR) is torch.bfloat16
        assert bench.pick_benchmark_dtype("bfloat16", SPR) is torch.bfloat16
    with pytest.warns(SlowDtypeWarning, match="AVX2"):
        assert bench.pick_benchmark_dtype("bfloat16", AVX2) is torch.bfloat16
