"""``gar batch`` manifests: JSONL, Parquet, or a folder of images with one question.

* **JSONL** — one object a line: ``{"id"?, "image", "question"?, "regions"?, "phrases"?,
  "instruction"?}``. ``image`` is a path (relative paths are relative to the manifest's folder), a
  ``data:`` URI or base64; ``regions`` a list of tool region dicts (``{"box": [x1, y1, x2, y2]}``,
  ``{"points": ..., "labels": ...}``, ``{"rle": {...}}``, ``{"polygon": ...}``); ``phrases`` a
  string (``"a cup. a saucer."``) or a list of phrases.
* **Parquet** — the same columns (``regions`` may be a JSON string or a list of structs).
* **a folder** — every image file in it (sorted by name, not recursive), each with the command
  line's ``--question`` / ``--phrases``; the item id is the file name.

Item ids default to the file name (folders) or ``line-N`` / ``row-N`` (1-based); they must be
unique, since resuming skips the ids already answered. This module does not import Ray.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gar_tool.errors import InputError
from gar_tool.grounding.phrases import parse_phrases
from gar_tool.integrations.ray.items import BatchItem

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int | None = None
    image: str = Field(min_length=1)
    question: str | None = None
    regions: list[dict[str, Any]] | str | None = None
    phrases: str | list[str] | None = None
    instruction: str | None = None

    @field_validator("question", "instruction")
    @classmethod
    def _blank(cls, v: str | None) -> str | None:
        return v if v is None or v.strip() else None


def _item(row: Any, default_id: str, where: str) -> BatchItem:
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    try:
        r = _Row.model_validate({k: v for k, v in row.items() if v is not None})
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()[:3]]
        raise InputError(f"{where}: " + "; ".join(parts)) from None
    regions = r.regions
    if isinstance(regions, str):
        try:
            regions = json.loads(regions) if regions.strip() else []
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: regions is not valid JSON ({exc.msg})") from None
        if not isinstance(regions, list):
            raise InputError(f"{where}: regions must be a list of region objects")
    try:
        phrases = parse_phrases(r.phrases) if r.phrases else []
    except InputError as exc:
        raise InputError(f"{where}: phrases: {exc}") from None
    return BatchItem(id=default_id if r.id is None else str(r.id), image=r.image, question=r.question,
                     regions=list(regions or []), phrases=phrases, instruction=r.instruction)


def read_manifest(path: str | Path, *, question: str | None = None,
                  phrases: str | None = None) -> tuple[list[BatchItem], Path]:
    """The items of ``path`` and the folder relative image paths are read from.

    ``question`` / ``phrases`` are required-or-used only for a folder (every image gets them); for
    JSONL / Parquet they are defaults for rows that have none.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"folder {str(p)!r} has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        rows: Iterable[tuple[Any, str, str]] = (({"image": f.name}, f.name, f"{p / f.name}") for f in files)
    elif not p.is_file():
        raise InputError(f"manifest not found: {str(p)!r} (give a .jsonl or .parquet file, or a folder of images)")
    elif p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(p)
    elif p.suffix.lower() in (".parquet", ".pq"):
        rows = _parquet_rows(p)
    else:
        raise InputError(f"manifest {str(p)!r}: expected a .jsonl or .parquet file or a folder, got {p.suffix!r}")
    items: list[BatchItem] = []
    seen: set[str] = set()
    for row, default_id, where in rows:
        if isinstance(row, dict):
            row = dict(row)
            if question is not None and not row.get("question"):
                row["question"] = question
            if phrases is not None and not row.get("phrases"):
                row["phrases"] = phrases
        item = _item(row, default_id, where)
        if item.id in seen:
            raise InputError(f"{where}: item id {item.id!r} appears twice; ids must be unique (resume skips "
                             "the ids already answered)")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InputError(f"manifest {str(p)!r} has no items")
    return items, (p if p.is_dir() else p.parent).resolve()


def _jsonl_rows(p: Path) -> Iterable[tuple[Any, str, str]]:
    with p.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p.name} line {n}: not valid JSON ({exc.msg})") from None
            yield row, f"line-{n}", f"{p.name} line {n}"


def _parquet_rows(p: Path) -> Iterable[tuple[Any, str, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading a Parquet manifest needs pyarrow (pip install 'gar-agent[ray]')") from None
    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow's errors: ArrowInvalid, OSError, ...
        raise InputError(f"{p.name}: not a readable Parquet file ({exc})") from None
    for n, row in enumerate(table.to_pylist(), start=1):
        yield row, f"row-{n}", f"{p.name} row {n}"


__all__ = ["read_manifest", "IMAGE_SUFFIXES"]
