"""``gar batch`` throughput: the Ray Data pipeline vs the in-process sequential loop, in one run.

Builds a random-weight GAR checkpoint on disk (nothing is downloaded; cost does not depend on
weight values), writes a manifest of N images, each with a two-region relate question, then runs
the same job twice and prints items/s of each and their ratio:

* sequential: ``gar batch --no-ray`` — models loaded once in this process, items one after
  another, torch on all ``--threads`` threads;
* Ray: ``gar batch`` on a local Ray started here with ``num_cpus = --threads``: a grounding actor
  pool and ``--gar-actors`` GAR actors (``--threads / --gar-actors`` CPUs, hence torch threads,
  each), ``--batch-size`` items per batch sharing GAR forwards.

Both timings include model loading (every GAR actor loads its own copy); Ray's own start-up is
measured apart. Run::

    .venv/bin/python benchmarks/batch_throughput.py                   # small preset, 32 images
    .venv/bin/python benchmarks/batch_throughput.py --preset tiny --images 8   # seconds (smoke)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

PRESETS = {
    "small": dict(hidden_size=512, num_layers=4, num_heads=8, num_kv_heads=2, intermediate_size=2048,
                  vision_width=256, vision_depth=4, vision_heads=4, vocab_size=32000, tile_size=448),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
                 vision_width=32, vision_depth=1, vision_heads=2, vocab_size=None, tile_size=224),
}


def write_job(root: Path, n: int, size: tuple[int, int]) -> Path:
    import numpy as np
    from PIL import Image

    h, w = size
    rows = []
    for i in range(n):
        arr = (np.random.RandomState(i).rand(h, w, 3) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"im{i:03d}.png")
        rows.append({"id": f"im{i:03d}", "image": f"im{i:03d}.png", "question": "Is <Prompt0> left of <Prompt1>?",
                     "regions": [{"box": [8, 8, w // 2, h // 2]}, {"box": [w // 3, h // 3, w - 8, h - 8]}]})
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--size", default="240x320", help="HxW of the images")
    p.add_argument("--new-tokens", type=int, default=8)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the sequential run = Ray's num_cpus")
    p.add_argument("--gar-actors", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch

    from gar_tool.integrations.ray.batch import BatchJob, StageResources, read_output, run_batch
    from gar_tool.integrations.ray.items import BatchSettings
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dims = dict(PRESETS[args.preset])
        ckpt = build_gar_checkpoint(root / "gar", **dims, max_num_tiles=4, seed=0)
        images = root / "images"
        images.mkdir()
        manifest = write_job(images, args.images, (h, w))
        common = dict(manifest=str(manifest), model=str(ckpt), device="cpu", dtype="float32",
                      settings=BatchSettings(max_new_tokens=args.new_tokens), batch_size=args.batch_size)

        t = time.monotonic()
        run_batch(BatchJob(out=str(root / "seq.jsonl"), **common), use_ray=False, show_progress=False)
        seq = time.monotonic() - t

        import ray

        t = time.monotonic()
        ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
                 configure_logging=False)
        ray_start = time.monotonic() - t
        per_actor = args.threads / args.gar_actors
        job = BatchJob(out=str(root / "ray.jsonl"), gar=StageResources(args.gar_actors, per_actor),
                       ground=StageResources(1, 0.01), **common)
        t = time.monotonic()
        run_batch(job, use_ray=True, show_progress=False)
        par = time.monotonic() - t
        ray.shutdown()
        same = read_output(root / "seq.jsonl") == read_output(root / "ray.jsonl")

    from gar_tool.runtime import cpu_isa

    load = os.getloadavg()
    print(f"gar batch throughput: preset {args.preset}, {args.images} images {h}x{w}, 2 regions each, "
          f"{args.new_tokens} new tokens, fp32 CPU")
    print(f"machine: {os.cpu_count()} CPUs, ISA {cpu_isa()}, load average {load[0]:.2f} / {load[1]:.2f} / "
          f"{load[2]:.2f} (1 / 5 / 15 min, other jobs included)")
    print(f"sequential (--no-ray): {seq:.1f} s, {args.images / seq:.2f} items/s, torch threads {args.threads}")
    print(f"Ray Data: {par:.1f} s, {args.images / par:.2f} items/s, {args.gar_actors} GAR actors x "
          f"{per_actor:g} CPU, batch {args.batch_size}; Ray start-up {ray_start:.1f} s not included")
    print(f"ratio Ray / sequential: {seq / par:.2f}x; same records: {same}")


if __name__ == "__main__":
    main()
