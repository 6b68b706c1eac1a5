"""The resumable inference loop shared by the benchmark runners, and what it needs from GAR.

The predictor is injected: anything with GAR's ``relate`` / ``describe`` signatures works (the
real :class:`gar_tool.GAR`, or a fake in tests). The loop visits the benchmark's items in order,
skips those already in the progress log (a previous, interrupted run), skips and counts items
whose image is missing, stops after ``limit`` finished items, and appends each new result to the
log before moving on, so an interruption loses at most the item being computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from gar_tool.errors import InputError, PromptError, RegionError
from gar_tool.evaluation.files import ProgressLog
from gar_tool.evaluation.progress import progress_bar


@runtime_checkable
class Answer(Protocol):
    """What ``relate`` / ``describe`` return: the decoded text and the generated token ids."""

    text: str
    token_ids: Sequence[int]


@runtime_checkable
class RegionPredictor(Protocol):
    """The part of :class:`gar_tool.GAR` the GAR-Bench runner uses.

    ``prompt_slots`` regions fit in one question; ``regions[i]`` is ``<Prompt{i}>``.
    """

    prompt_slots: int

    def relate(self, image: Any, regions: Any, question: str, *, max_new_tokens: int) -> Answer: ...


@runtime_checkable
class RegionDescriber(Protocol):
    """The part of :class:`gar_tool.GAR` the DLC-Bench runner uses."""

    def describe(self, image: Any, region: Any, *, max_new_tokens: int) -> Answer: ...


@dataclass(frozen=True)
class Task:
    """One benchmark item to run: a unique ``key``, its image file and the raw ``item``."""

    key: str
    image: Path
    item: Any


@dataclass
class RunStats:
    """What a run did; ``lines()`` renders the summary printed at the end."""

    benchmark: str
    total: int
    visited: int = 0
    new: int = 0
    resumed: int = 0
    missing_images: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    out: str = ""

    @property
    def done(self) -> int:
        return self.new + self.resumed

    def lines(self) -> list[str]:
        out = [f"{self.benchmark}: {self.done} of {self.total} items have predictions "
               f"({self.new} new, {self.resumed} from an earlier run) -> {self.out}"]
        if self.missing_images:
            ex = ", ".join(self.missing_images[:3])
            out.append(f"skipped {len(self.missing_images)} of the {self.visited} items visited: image "
                       f"file missing (e.g. {ex})")
        for key, msg in list(self.failed.items())[:5]:
            out.append(f"failed {key}: {msg}")
        if len(self.failed) > 5:
            out.append(f"... {len(self.failed) - 5} more failures")
        out.extend(self.notes)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "total": self.total, "visited": self.visited, "new": self.new,
                "resumed": self.resumed, "missing_images": len(self.missing_images),
                "failed": dict(self.failed), **self.counters, "out": self.out}


def run_loop(tasks: Sequence[Task], work: Callable[[Task], dict[str, Any]], log: ProgressLog,
             stats: RunStats, *, limit: int | None = None, show_progress: bool = True,
             desc: str = "GAR") -> None:
    """Run ``work`` on every task not yet in ``log``, appending each result to it.

    ``work`` returns the record to store (JSON-serialisable); a ``RegionError`` / ``PromptError``
    from it marks the item failed (bad mask, regions that do not fit) and the loop continues; any other exception propagates after the
    finished items are safely logged.
    """
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive number of items, got {limit}")
    target = len(tasks) if limit is None else min(limit, len(tasks))
    stats.resumed = sum(t.key in log for t in tasks)
    bar = progress_bar(target, desc, enabled=show_progress, initial=min(stats.resumed, target))
    try:
        for task in tasks:
            if stats.done >= target:
                break
            stats.visited += 1
            if task.key in log:
                continue
            if not task.image.exists():  # an image or video file, or a folder of frames
                stats.missing_images.append(task.key)
                continue
            try:
                record = work(task)
            except (RegionError, PromptError) as exc:
                stats.failed[task.key] = str(exc)
                continue
            log.append(task.key, record)
            stats.new += 1
            bar.update()
    finally:
        bar.close()


__all__ = ["Answer", "RegionPredictor", "RegionDescriber", "Task", "RunStats", "run_loop"]
