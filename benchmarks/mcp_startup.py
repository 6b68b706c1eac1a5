"""How fast ``gar mcp`` answers ``initialize`` while its models load, in one run.

Starts ``python -m gar_tool.cli mcp`` over stdio with a random GAR checkpoint (``--preset``: the tiny
test geometry, or GAR-1B's real dimensions, whose load takes tens of seconds on a CPU), sends a
raw ``initialize`` and ``tools/list`` at once, then polls ``tools/call`` until the models are
loaded. Prints the time to each answer and the ratio load time / initialize time, with the thread
count, the machine load and the CPU's vector ISA. Nothing is downloaded.

    .venv/bin/python benchmarks/mcp_startup.py                 # tiny checkpoint (seconds)
    .venv/bin/python benchmarks/mcp_startup.py --preset gar1b  # GAR-1B size (a minute or more to build)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = {
    "tiny": dict(tile_size=224, max_num_tiles=4),
    "gar1b": dict(tile_size=448, max_num_tiles=16, hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8,
                  intermediate_size=8192, vision_width=1024, vision_depth=23, vision_heads=16, vocab_size=128262),
}


def _isa() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("avx512f", "avx2", "avx", "sse4_2", "neon", "asimd") if f" {f}" in flags]
    return found[0] if found else "baseline"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    args = ap.parse_args()
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = build_gar_checkpoint(Path(tmp) / "gar", **PRESETS[args.preset])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "gar_tool.cli", "mcp", "--model", str(ckpt), "--detector",
                                 "none", "--device", "cpu", "--load-wait", "1"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert proc.stdin is not None and proc.stdout is not None

        def ask(i: int, method: str, params: dict | None = None) -> dict:
            message = {"jsonrpc": "2.0", "id": i, "method": method, **({"params": params} if params else {})}
            proc.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return json.loads(proc.stdout.readline())  # type: ignore[union-attr]

        ask(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "bench", "version": "1"}})
        t_init = time.monotonic() - started
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        ask(2, "tools/list")
        t_list = time.monotonic() - started
        i = 3
        while True:
            out = ask(i, "tools/call", {"name": "gar_measure", "arguments": {"image": "x", "regions": []}})
            if "still loading" not in out["result"]["content"][0]["text"]:
                break
            i += 1
        t_ready = time.monotonic() - started
        proc.stdin.close()
        proc.wait(timeout=60)
    print(f"preset {args.preset}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"{os.cpu_count()} CPUs; load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}; ISA {_isa()}")
    print(f"initialize answered after {t_init:.2f} s, tools/list after {t_list:.2f} s, "
          f"models ready after {t_ready:.2f} s (ready / initialize = {t_ready / t_init:.1f}x)")


if __name__ == "__main__":
    main()
