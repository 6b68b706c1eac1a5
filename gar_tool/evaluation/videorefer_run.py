"""Running GAR over VideoRefer-Bench-Q (``gar eval run --benchmark videorefer-bench-q``).

Per item (the protocol is in :mod:`gar_tool.evaluation.videorefer`): sample the frames, build one
track per object (from the annotation; in single-frame mode optionally propagated by a SAM 2
tracker), ask GAR the multiple-choice question with greedy decoding, and record the answer. The
output is VideoRefer's prediction format, one JSON object per line — ``{"id", "video", "Answer",
"pred", "type", "options"}`` — scored by ``gar eval score`` (or VideoRefer's own script). Runs
resume after an interruption (``<out>.progress.jsonl``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from gar_tool.errors import InputError, PromptError, RegionError
from gar_tool.evaluation.files import open_run_log
from gar_tool.evaluation.runner import RunStats, Task, run_loop
from gar_tool.evaluation.videorefer import (Mode, gar_question, key_frame_indices, load_items, multi_indices,
                                            object_tracks)


def run_videorefer(predictor: Any, data_dir: str | Path, out: str | Path, *, mode: Mode = "single",
                   frames: int = 16, tracker: Any = None, limit: int | None = None, max_new_tokens: int = 1024,
                   model_name: str = "", show_progress: bool = True) -> RunStats:
    """Predict the items of VideoRefer-Bench-Q, resumably, and write ``out`` (JSON lines).

    Args:
        predictor: a :class:`~gar_tool.gar.video_protocol.GARVideoBackend` (``gar_tool.GAR``).
        data_dir: the benchmark folder (annotation file + videos / frame folders).
        out: output file; ``<out>.progress.jsonl`` logs finished items.
        mode: ``"single"`` (the key frame's mask) or ``"multi"`` (the annotated masks).
        frames: frames per item (16: VideoRefer-Bench-Q's protocol).
        tracker: a :class:`~gar_tool.video.tracker.Sam2VideoTracker` propagating the key-frame
            masks in single mode (None: masks on the key frame only).
    """
    from gar_tool.gar.protocol import DecodeOptions
    from gar_tool.video.clip import check_frame_count
    from gar_tool.video.decode import frame_files, load_clip

    if mode not in ("single", "multi"):
        raise InputError(f"mode must be 'single' or 'multi', got {mode!r}")
    if tracker is not None and mode != "single":
        raise InputError("a tracker propagates the key frame's masks: it applies to mode 'single' only")
    check_frame_count(frames, "--frames")
    items = load_items(data_dir)
    root = Path(data_dir)
    header = {"task": "run", "benchmark": "videorefer-bench-q", "model": model_name, "mode": mode,
              "frames": frames, "tracker": None if tracker is None else str(getattr(tracker, "name", "sam2")),
              "max_new_tokens": max_new_tokens}
    log = open_run_log(out, header)
    stats = RunStats(benchmark="VideoRefer-Bench-Q", total=len(items), out=str(out))
    opts = DecodeOptions(max_new_tokens=max_new_tokens)

    def work(task: Task) -> dict[str, Any]:
        try:
            return answer(task)
        except (RegionError, PromptError):
            raise  # the loop records the item as failed and goes on
        except InputError as exc:  # unreadable frames, a frame_idx outside the video, ...: this item only
            raise RegionError(str(exc)) from None

    def answer(task: Task) -> dict[str, Any]:
        item = task.item
        video = task.image
        total = len(frame_files(video)) if video.is_dir() else None
        if mode == "single":
            key = int(item["frame_idx"])
            if total is None:
                total = load_clip(video, 1).source_frames
            idx, k = key_frame_indices(total, frames, key)
            clip = load_clip(video, indices=idx)
            tracks = object_tracks(item, clip)
            if tracker is not None:
                tracks = [tracker.track(clip, t.regions[k], k) if t.regions[k] is not None else t for t in tracks]
        else:
            clip = load_clip(video, indices=multi_indices(item, frames))
            tracks = object_tracks(item, clip)
        req = predictor.video_request(clip, tracks, gar_question(item))
        [ans] = predictor.answer_video([req], opts)
        return {"pred": ans.text.strip(), "frames": list(clip.source_indices),
                "states": [list(t.states) for t in tracks]}

    tasks = [Task(str(item["id"]), root / item["video"], item) for item in items]
    try:
        run_loop(tasks, work, log, stats, limit=limit, show_progress=show_progress, desc="VideoRefer-Bench-Q")
    finally:
        records = log.records
        done = [{"id": it["id"], "video": it["video"], "Answer": it["Answer"], "pred": records[str(it["id"])]["pred"],
                 "type": it["type"], "options": it["options"]} for it in items if str(it["id"]) in records]
        if done:
            _write_jsonl(out, done)
    return stats


def _write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, replacing ``path`` atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["run_videorefer"]
