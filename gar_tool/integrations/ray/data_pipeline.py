"""``gar batch`` on Ray Data: read → ground → GAR (→ planner) as actor pools.

::

    items ──from_items──▶ GroundStage (actor pool: Grounding DINO + SAM, ``job.ground`` resources)
          ──────────────▶ AnswerStage (actor pool: GAR [+ detector for the planner], ``job.gar``)
          ──iter_rows──▶ the driver, which logs each record (see :mod:`.batch`)

Rows are ``{"id", "item"}`` (the item as JSON); the ground stage adds ``"grounded"`` (the prompt
list as RLE, JSON), the answer stage returns ``{"id", "record"}``. Images are not carried between
stages: each stage reads the image from the manifest's reference (paths must be readable on every
node — a shared filesystem on a multi-node cluster). In the answer stage, the items of a batch
run in threads over one :class:`~gar_tool.gar.batching.MicroBatcher`, so their GAR requests are
answered in shared forwards (the batched interface of ``GAR.answer``).

Failures: Ray Data restarts a dead actor and re-runs its batch (``max_restarts=-1``,
``max_task_retries=-1``, its defaults for actor pools); a re-run batch's records may arrive twice
and the driver keeps one. A run that stops anyway (the driver killed, retries exhausted) resumes
from the progress log.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import ray

from gar_tool.integrations.ray.batch import BatchJob, load_planner
from gar_tool.integrations.ray.items import BatchItem, answer_item, ground_item


class GroundStage:
    """Ray Data callable class: the ground step of a batch of items (models loaded once per actor)."""

    def __init__(self, job: BatchJob, root: str) -> None:
        from gar_tool.tools.core import GARToolkit

        self.job, self.inputs = job, job.inputs(Path(root))
        kit = GARToolkit.load(model=None, detector=job.detector, segmenter=job.segmenter, device=job.device,
                              dtype=job.dtype)
        self.detector, self.segmenter = kit.detector, kit.segmenter

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        ids, items = list(batch["id"]), [BatchItem.from_dict(json.loads(s)) for s in batch["item"]]
        grounded = [json.dumps(ground_item(it, self.inputs, self.detector, self.segmenter, self.job.settings))
                    for it in items]
        return {"id": [str(i) for i in ids], "item": [str(s) for s in batch["item"]], "grounded": grounded}


class AnswerStage:
    """Ray Data callable class: the answer step of a batch (GAR loaded once per actor; the
    planner's detector too when a planner is asked for)."""

    def __init__(self, job: BatchJob, root: str) -> None:
        from gar_tool.gar.batching import MicroBatcher
        from gar_tool.tools.core import GARToolkit

        self.job, self.inputs = job, job.inputs(Path(root))
        planning = job.settings.planner is not None
        kit = GARToolkit.load(model=job.model, detector=job.detector if planning else None,
                              segmenter=job.segmenter if planning else None, device=job.device, dtype=job.dtype,
                              compat=job.compat)
        self.detector, self.segmenter = kit.detector, kit.segmenter
        self.planner = load_planner(job)
        # every item of a batch may ask several questions (chunks, one describe per region)
        self.gar = None if kit.gar is None else MicroBatcher(kit.gar, max_batch=4 * job.batch_size, max_wait=0.05)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        items = [BatchItem.from_dict(json.loads(s)) for s in batch["item"]]
        grounded = [json.loads(s) for s in batch["grounded"]]

        def one(k: int) -> str:
            return json.dumps(answer_item(items[k], grounded[k], self.gar, self.inputs, self.job.settings,
                                          detector=self.detector, segmenter=self.segmenter,
                                          planner=self.planner), ensure_ascii=False)

        with ThreadPoolExecutor(max_workers=max(1, len(items)), thread_name_prefix="gar-batch-item") as pool:
            records = list(pool.map(one, range(len(items))))
        return {"id": [it.id for it in items], "record": records}


def ensure_ray(address: str | None) -> None:
    """Connect to ``address`` (or start a local Ray) unless this process is connected already."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)


def run_pipeline(todo: Sequence[BatchItem], job: BatchJob, root: Path) -> Iterator[dict[str, Any]]:
    """Records of ``todo``, in completion order, from the Ray Data pipeline (see module doc)."""
    import ray.data

    ensure_ray(job.ray_address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar over items (run_batch)
    rows = [{"id": it.id, "item": json.dumps(it.to_dict(), ensure_ascii=False)} for it in todo]
    ds: Any = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / job.batch_size)))
    common: dict[str, Any] = {"fn_constructor_args": (job, str(root)), "batch_size": job.batch_size,
                              "batch_format": "numpy"}
    ds = ds.map_batches(GroundStage, compute=ray.data.ActorPoolStrategy(size=job.ground.actors),
                        num_cpus=job.ground.num_cpus,
                        num_gpus=job.ground.num_gpus or None, **common)
    ds = ds.map_batches(AnswerStage, compute=ray.data.ActorPoolStrategy(size=job.gar.actors),
                        num_cpus=job.gar.num_cpus,
                        num_gpus=job.gar.num_gpus or None, **common)
    for row in ds.iter_rows():
        yield json.loads(row["record"])


__all__ = ["GroundStage", "AnswerStage", "run_pipeline", "ensure_ray"]
