"""``gar batch``: a manifest of images and questions → answers with evidence, resumable.

::

    job = BatchJob(manifest="items.jsonl", out="answers.jsonl", model="HaochenWang/GAR-1B",
                   detector="IDEA-Research/grounding-dino-tiny")
    stats = run_batch(job)                      # on Ray Data (a local Ray, or ray_address)
    stats = run_batch(job, use_ray=False)       # the same steps, one item after another here

Both paths run :func:`~.items.ground_item` then :func:`~.items.answer_item` on every item, so
they give the same records; on Ray the two steps are actor pools (detector + SAM, GAR), and the
items of one batch share GAR forwards through a :class:`~gar_tool.gar.batching.MicroBatcher`.

Resuming and exactly-once output: every finished record is appended (flushed, fsynced) to the
progress log ``OUT.progress.jsonl`` by this process, keyed by item id, as results stream back; a
run skips the ids already logged, except records that failed for a reason other than their
input (``error.type == "failure"``, e.g. a model error), which are redone. A record arriving twice
(Ray re-runs the batch of an actor that died mid-batch) is written once. When every item has a
record, ``OUT`` is written atomically in manifest order: JSONL, or Parquet when ``OUT`` ends in
``.parquet``. The log's header holds the job's settings; resuming with other settings is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from gar_tool.errors import InputError
from gar_tool.evaluation.files import ProgressLog, open_run_log
from gar_tool.evaluation.progress import progress_bar
from gar_tool.integrations.ray.items import BatchItem, BatchSettings, answer_item, ground_item
from gar_tool.integrations.ray.manifest import read_manifest
from gar_tool.tools.inputs import ImageInputConfig


@dataclass(frozen=True)
class StageResources:
    """One actor pool: ``actors`` actors with ``num_cpus`` / ``num_gpus`` each (fractions allowed)."""

    actors: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class BatchJob:
    """A batch run (see the module docstring).

    Attributes:
        manifest: JSONL / Parquet file or a folder of images (:mod:`.manifest`).
        out: output file (``.jsonl`` or ``.parquet``); its progress log sits beside it.
        question / phrases: for a folder manifest (defaults for rows without them otherwise).
        model / detector / segmenter: GAR, Grounding DINO and SAM (directory or hub id; None = none).
        device / dtype / compat: as for the other commands.
        allow_dirs: folders image paths may come from, besides the manifest's own folder.
        batch_size: items per Ray Data batch (one GAR batching window).
        gar / ground: the actor pools' resources.
        ray_address: an existing cluster (``auto``, ``ray://…``); None starts a local Ray.
        planner_class: the planner class (``gar_agents.Planner``) when ``settings.planner`` is set;
            None loads it from the ``gar.planners`` entry point. It must be importable where the
            actors run.
    """

    manifest: str
    out: str
    question: str | None = None
    phrases: str | None = None
    model: str | None = "HaochenWang/GAR-1B"
    detector: str | None = None
    segmenter: str | None = None
    device: str | None = None
    dtype: str | None = None
    compat: str = "default"
    allow_dirs: tuple[str, ...] = ()
    settings: BatchSettings = field(default_factory=BatchSettings)
    batch_size: int = 8
    gar: StageResources = field(default_factory=StageResources)
    ground: StageResources = field(default_factory=StageResources)
    ray_address: str | None = None
    planner_class: Any = None

    def header(self) -> dict[str, Any]:
        """What a resumed run must share with the first (models and settings, not resources)."""
        return {"kind": "gar-batch", "manifest": str(Path(self.manifest).expanduser().resolve()),
                "question": self.question, "phrases": self.phrases, "model": self.model, "detector": self.detector,
                "segmenter": self.segmenter, "compat": self.compat, "settings": asdict(self.settings)}

    def inputs(self, root: Path) -> ImageInputConfig:
        """Image input rules: paths under the manifest's folder and ``allow_dirs``."""
        return ImageInputConfig(allowed_roots=[root, *(Path(d).expanduser() for d in self.allow_dirs)])


@dataclass
class BatchStats:
    """What a run did."""

    total: int = 0
    resumed: int = 0
    new: int = 0
    duplicates: int = 0
    failed: int = 0
    seconds: float = 0.0
    out: str = ""

    def lines(self) -> list[str]:
        rate = f", {self.new / self.seconds:.2f} items/s" if self.new and self.seconds else ""
        return [f"gar batch: {self.resumed + self.new} of {self.total} items answered ({self.new} new, "
                f"{self.resumed} from an earlier run{rate}) -> {self.out}",
                *([f"{self.failed} item(s) have an error record (see 'error')"] if self.failed else []),
                *([f"{self.duplicates} repeated result(s) of re-run batches were dropped"] if self.duplicates else [])]


def _done(record: dict[str, Any]) -> bool:
    """A logged record that a resumed run keeps (input errors would fail again: kept too)."""
    err = record.get("error")
    return not err or err.get("type") != "failure"


def run_batch(job: BatchJob, *, use_ray: bool = True, show_progress: bool = True,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> BatchStats:
    """Run ``job`` (see the module docstring) and write ``job.out``; returns what it did.

    ``on_record`` is called in this process after each new record is logged (progress hooks).
    """
    if job.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {job.batch_size}")
    if Path(job.out).suffix.lower() not in (".jsonl", ".parquet"):
        raise InputError(f"--out must end in .jsonl or .parquet, got {job.out!r}")
    items, root = read_manifest(job.manifest, question=job.question, phrases=job.phrases)
    load_planner(job)  # a planner that cannot be loaded fails here, before any model loads
    log = open_run_log(job.out, job.header())
    done = {k for k, rec in log.records.items() if _done(rec)}
    todo = [it for it in items if it.id not in done]
    stats = BatchStats(total=len(items), resumed=len(items) - len(todo), out=job.out)
    start = time.monotonic()
    bar = progress_bar(len(items), "gar batch", enabled=show_progress, initial=stats.resumed)
    seen: set[str] = set()
    try:
        if todo:
            results = _ray_results(todo, job, root) if use_ray else _local_results(todo, job, root)
            for rec in results:
                if rec["id"] in seen:  # a batch re-run after an actor died: its first result stands
                    stats.duplicates += 1
                    continue
                seen.add(rec["id"])
                log.append(rec["id"], rec)
                stats.new += 1
                bar.update()
                if on_record is not None:
                    on_record(rec)
    finally:
        bar.close()
        stats.seconds = time.monotonic() - start
    missing = [it.id for it in items if it.id not in log]
    if missing:
        raise RuntimeError(f"{len(missing)} item(s) got no record (e.g. {missing[0]!r}); run again to resume")
    records = log.records
    stats.failed = sum(1 for it in items if records[it.id].get("error"))
    write_output(job.out, [records[it.id] for it in items])
    return stats


def _local_results(todo: Sequence[BatchItem], job: BatchJob, root: Path) -> Iterator[dict[str, Any]]:
    """The in-process path: load the models once, then each item in turn (no batching)."""
    from gar_tool.tools.core import GARToolkit

    kit = GARToolkit.load(model=job.model, detector=job.detector, segmenter=job.segmenter, device=job.device,
                          dtype=job.dtype, compat=job.compat)
    inputs, planner = job.inputs(root), load_planner(job)
    for item in todo:
        grounded = ground_item(item, inputs, kit.detector, kit.segmenter, job.settings)
        yield answer_item(item, grounded, kit.gar, inputs, job.settings, detector=kit.detector,
                          segmenter=kit.segmenter, planner=planner)


def _ray_results(todo: Sequence[BatchItem], job: BatchJob, root: Path) -> Iterator[dict[str, Any]]:
    from gar_tool.integrations.ray.data_pipeline import run_pipeline

    return run_pipeline(todo, job, root)


def load_planner(job: BatchJob) -> Any:
    """The job's planner class: ``job.planner_class``, else the ``gar.planners`` entry point
    (``gar_tool`` never imports ``agents``); None when no planner is asked for."""
    if job.settings.planner is None:
        return None
    if job.planner_class is not None:
        return job.planner_class
    from gar_tool.integrations.serving import planner_class

    return planner_class()


# --------------------------------------------------------------------------- output
def write_output(out: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """``records`` to ``out`` atomically: JSONL (one record a line) or Parquet (flat columns;
    ``answers`` / ``evidence`` / ``error`` / ``planner`` as JSON strings)."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        if p.suffix.lower() == ".parquet":
            _write_parquet(tmp, records)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


PARQUET_JSON_COLUMNS = ("answers", "evidence", "error", "planner")


def _write_parquet(path: str, records: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("Parquet output needs pyarrow (pip install 'gar-agent[ray]'), or use a .jsonl --out") from None
    cols = ["id", "image", "image_id", "question", "answer", *PARQUET_JSON_COLUMNS]
    data = {c: [(json.dumps(r.get(c), ensure_ascii=False) if r.get(c) is not None else None)
                if c in PARQUET_JSON_COLUMNS else r.get(c) for r in records] for c in cols}
    pq.write_table(pa.table({c: pa.array(v, type=pa.string()) for c, v in data.items()}), path)


def read_output(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``gar batch`` output file (JSONL or Parquet), JSON columns decoded."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(p).to_pylist()
        return [{k: (json.loads(v) if k in PARQUET_JSON_COLUMNS and v is not None else v) for k, v in r.items()}
                for r in rows]
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = ["BatchJob", "BatchStats", "StageResources", "run_batch", "write_output", "read_output", "load_planner",
           "ProgressLog"]
