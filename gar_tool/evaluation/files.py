"""Reading and writing evaluation files safely: JSON with clear errors, atomic writes, and an
append-only JSONL progress log that makes long runs (model inference, LLM judging) resumable.

Crash safety: a finished file is only ever replaced by :func:`atomic_write_json` (temporary file in
the same directory, ``fsync``, ``os.replace``), so a reader sees either the old or the new file,
never half of one. Progress is appended one JSON line per finished item and flushed; a line cut
short by a crash is dropped (and the log rewritten without it) when the log is read back.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

from gar_tool.errors import InputError


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse the JSON file at ``path``; ``InputError`` naming the file when it is missing or not JSON."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} not found: {str(p)!r}")
    try:
        with p.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {str(p)!r} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} {str(p)!r} is not UTF-8 text (expected a JSON file)") from None


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 4) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file + ``os.replace``).

    ``ensure_ascii=False`` and ``indent=4`` match the files the original GAR scripts write.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(p)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_temp(target: Path) -> tuple[int, str]:
    """A new file beside ``target`` (``O_EXCL``, random name) created with mode ``0o666`` so the
    process umask decides its permissions, as for any file the user writes (``tempfile.mkstemp``
    would make the finished output ``0600``)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {str(target)!r}")


class ProgressLog:
    """Append-only JSONL log of finished items, keyed by a string, for resumable loops.

    Line 1 is ``{"header": {...}}`` describing the run (benchmark, model, settings); the other lines
    are ``{"key": KEY, "record": {...}}``. Reopening a log whose header differs from the current
    run's raises ``InputError`` (mixing two runs' outputs silently would be worse than stopping).

    Args:
        path: the log file (conventionally ``<output>.progress.jsonl``).
        header: JSON-serialisable description of the run; compared on resume.
    """

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = json.loads(json.dumps(header))  # normalise (tuples -> lists) for comparison
        self._records: dict[str, dict[str, Any]] = {}
        self._load()

    # ------------------------------------------------------------------ reading
    def _lines(self) -> Iterator[tuple[int, Any]]:
        with self.path.open("r", encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.endswith("\n"):
                    return  # cut short by a crash: the item is simply redone
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"progress log {str(self.path)!r} line {n} is not JSON; delete the "
                                     "file to start over") from None

    def _load(self) -> None:
        if not self.path.exists():
            return
        header_seen = False
        good: list[str] = []
        with self.path.open("r", encoding="utf-8") as fh:
            raw = fh.readlines()
        for n, obj in self._lines():
            if n == 1:
                if not isinstance(obj, dict) or obj.get("header") != self.header:
                    got = obj.get("header") if isinstance(obj, dict) else obj
                    raise InputError(
                        f"progress log {str(self.path)!r} belongs to another run: expected header "
                        f"{json.dumps(self.header, sort_keys=True)}, found {json.dumps(got, sort_keys=True)}; "
                        "use another --out or delete the log")
                header_seen = True
            elif isinstance(obj, dict) and isinstance(obj.get("key"), str) and isinstance(obj.get("record"), dict):
                self._records[obj["key"]] = obj["record"]
            else:
                raise InputError(f"progress log {str(self.path)!r} line {n}: expected "
                                 '{"key": ..., "record": {...}}')
            good.append(raw[n - 1])
        if not header_seen:
            good = []
        if len(good) != len(raw):  # drop a torn last line so that appends start on a fresh line
            self._rewrite(good)

    def _rewrite(self, lines: list[str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, self.path)

    # ------------------------------------------------------------------ API
    @property
    def records(self) -> dict[str, dict[str, Any]]:
        """Finished items, ``key -> record`` (a copy)."""
        return dict(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def append(self, key: str, record: dict[str, Any]) -> None:
        """Record one finished item (flushed and fsynced before returning)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8") as fh:
                fh.write(json.dumps({"header": self.header}, ensure_ascii=False) + "\n")
        line = json.dumps({"key": key, "record": record}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._records[key] = record


def progress_path(out: str | os.PathLike) -> Path:
    """The progress log that belongs to output file ``out``: ``<out>.progress.jsonl``."""
    p = Path(out)
    return p.with_name(p.name + ".progress.jsonl")


def open_run_log(out: str | os.PathLike, header: dict[str, Any]) -> ProgressLog:
    """The progress log of output ``out``; refuses an existing ``out`` that has no log (a file this
    harness did not produce — published outputs, say — is never overwritten)."""
    log_path = progress_path(out)
    if Path(out).exists() and not log_path.exists():
        raise InputError(f"output {str(out)!r} exists and has no progress log {log_path.name!r}; "
                         "choose another --out (existing results are never overwritten)")
    return ProgressLog(log_path, header)


__all__ = ["read_json", "atomic_write_json", "ProgressLog", "progress_path", "open_run_log"]
