"""Where and how models run: device and dtype choice, the CPU's vector ISA, and quiet
transformers loading.

Shared by every model loader (GAR, Grounding DINO, SAM, ``hf:`` planners). bfloat16 on a CPU
without native bf16 instructions (x86 without AVX-512 BF16 / AMX, Arm without BF16) is emulated and
runs many times slower than float32; :func:`pick_dtype` then warns once per process
(:class:`~gar_tool.errors.SlowDtypeWarning`) with a measured bf16 vs fp32 matmul rate.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch

from gar_tool.errors import InputError, SlowDtypeWarning

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16}


def pick_device(device: str | torch.device | None) -> torch.device:
    """``None`` → CUDA if available, else MPS, else CPU."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r} (expected cpu, cuda, cuda:N or mps): {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} requested but MPS is not available on this machine")
    return dev


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device, *, isa: "CpuIsa | None" = None) -> torch.dtype:
    """``None``/"auto" → float32 on CPU, bfloat16 on CUDA (float16 without bf16 support), float16 on MPS.

    bfloat16 on a CPU without native bf16 (``isa``: the detected :func:`cpu_isa` unless given)
    warns once per process, see :func:`check_cpu_dtype`.
    """
    if isinstance(dtype, torch.dtype):
        out = dtype
    elif dtype is None or dtype == "auto":
        if device.type == "cuda":
            out = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            out = torch.float16 if device.type == "mps" else torch.float32
    else:
        try:
            out = _DTYPES[str(dtype).lower()]
        except KeyError:
            raise InputError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)} or 'auto'") from None
    check_cpu_dtype(out, device, isa=isa)
    return out


# ---------------------------------------------------------------------- CPU vector ISA
_BF16_FLAGS = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16",)}


@dataclass(frozen=True)
class CpuIsa:
    """The CPU's vector ISA.

    Attributes:
        capability: the kernel level torch dispatches to (``torch.backends.cpu.get_cpu_capability()``:
            ``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``, ...); it says nothing about bf16.
        flags: feature flags from ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``); empty
            when they cannot be read (not Linux).
        arch: ``"x86"``, ``"arm"`` or another ``platform.machine()`` value.
    """

    capability: str
    flags: frozenset[str] = frozenset()
    arch: str = "x86"

    @property
    def bf16_flags(self) -> tuple[str, ...]:
        """The flags that give native bf16 arithmetic on this architecture (present or not)."""
        return _BF16_FLAGS.get(self.arch, ())

    @property
    def native_bf16(self) -> bool | None:
        """Native bf16 matmul instructions: ``None`` when the flags are unknown."""
        if not self.flags or not self.bf16_flags:
            return None
        return any(f in self.flags for f in self.bf16_flags)

    def __str__(self) -> str:
        if self.native_bf16 is None:
            return f"{self.capability} (bf16 support unknown)"
        have = [f for f in self.bf16_flags if f in self.flags]
        if have:
            return f"{self.capability} + {', '.join(have)}"
        return f"{self.capability}, no {' / '.join(self.bf16_flags)}"


@lru_cache(maxsize=1)
def cpu_isa() -> CpuIsa:
    """This machine's :class:`CpuIsa` (read once per process)."""
    flags: frozenset[str] = frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags = frozenset(value.split())
                break
    except OSError:
        pass
    machine = platform.machine().lower()
    arch = "x86" if machine in ("x86_64", "amd64", "i386", "i686") else \
        "arm" if machine in ("aarch64", "arm64") else machine
    return CpuIsa(torch.backends.cpu.get_cpu_capability(), flags, arch)


def native_cpu_dtype(isa: CpuIsa | None = None) -> torch.dtype:
    """The fastest dtype this CPU computes natively: bfloat16 with native bf16, else float32."""
    isa = isa if isa is not None else cpu_isa()
    return torch.bfloat16 if isa.native_bf16 else torch.float32


def matmul_gflops(dtype: torch.dtype, n: int = 256, budget_s: float = 0.05) -> float:
    """GFLOP/s of an ``n × n`` matmul in ``dtype`` on the CPU with the current thread count
    (best of at least 3 runs, more while under ``budget_s``)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    torch.mm(a, b)  # warm-up
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or (spent < budget_s and runs < 100):
        t = time.perf_counter()
        torch.mm(a, b)
        dt = time.perf_counter() - t
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return 2 * n ** 3 / max(best, 1e-9) / 1e9


_WARNED: set[torch.dtype] = set()
_WARN_LOCK = threading.Lock()


def check_cpu_dtype(dtype: torch.dtype, device: torch.device, *, isa: CpuIsa | None = None) -> None:
    """Warn (:class:`~gar_tool.errors.SlowDtypeWarning`, once per process) when ``dtype`` is
    bfloat16 on a CPU whose ISA lacks native bf16. The warning gives the ISA and a bf16 vs fp32
    matmul rate measured then (about 0.1 s); nothing is measured otherwise."""
    if device.type != "cpu" or dtype != torch.bfloat16:
        return
    isa = isa if isa is not None else cpu_isa()
    if isa.native_bf16 is not False:
        return
    with _WARN_LOCK:
        if dtype in _WARNED:
            return
        _WARNED.add(dtype)
    bf16, fp32 = matmul_gflops(torch.bfloat16), matmul_gflops(torch.float32)
    warnings.warn(
        f"bfloat16 is emulated on this CPU ({isa}): a 256x256 matmul runs at {bf16:.1f} GFLOP/s in "
        f"bfloat16 vs {fp32:.1f} GFLOP/s in float32 (float32/bfloat16 = {fp32 / bf16:.1f}x, {torch.get_num_threads()} "
        "thread(s)); use float32 (dtype='float32', --dtype float32)", SlowDtypeWarning, stacklevel=3)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars (we report our own errors)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


__all__ = ["pick_device", "pick_dtype", "quiet_transformers", "CpuIsa", "cpu_isa", "native_cpu_dtype",
           "matmul_gflops", "check_cpu_dtype"]
