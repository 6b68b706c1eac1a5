"""Training records: reading, validating and counting the bad ones.

Two sources, one :class:`Record`:

* a Hugging Face ``datasets`` folder (``datasets.load_from_disk``; GAR's original training
  format) with the columns ``image`` (an ``Image`` feature, a path, or ``"data:base64,…"``),
  ``mask_rle`` (a COCO RLE dict, or a list of them: ``mask_rle[N]`` is ``<PromptN>``) and
  ``conversations`` (``[{"from": "human" | "gpt", "value": "…"}]``);
* a JSONL manifest, one JSON object a line: ``image`` (a path, relative to the manifest's
  folder unless absolute), ``regions`` (a list of any region form the library accepts: COCO RLE,
  ``{"box": …}``, ``{"points": …}``, ``{"polygon": …}``, or a CLI spec string such as
  ``"box:10,20,90,120"``; ``mask:`` paths are relative to the manifest's folder) — or
  ``mask_rle`` as above — and ``conversations``.

Images are read as stored (no EXIF rotation): masks refer to the stored pixel grid, as in the
original training. :func:`load_records` checks every record before training starts — fields,
turn order, image header, every region against the image size, the ``<PromptN>`` references
against the regions and the prompt slots, the sequence length — and either stops at the first bad
record (``on_error="fail"``) or leaves it out and counts it by reason (``"skip"``). Each error
names the record (source, line or row) and the field.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

from PIL import Image, UnidentifiedImageError

from gar_tool.errors import InputError
from gar_tool.regions.forms import coerce_regions
from gar_tool.regions.region import Regions
from gar_tool.training.encoding import LengthError, Turn

OnError = Literal["fail", "skip"]
_ROLES = ("human", "gpt")


class RecordError(InputError):
    """A training record is malformed. ``where`` names the record, ``field`` the bad field."""

    def __init__(self, where: str, field_name: str, problem: str) -> None:
        super().__init__(f"{where}: field {field_name!r}: {problem}")
        self.where = where
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class Record:
    """One validated training record.

    Attributes:
        where: ``"train.jsonl line 12"`` / ``"dataset row 12"``.
        image: the encoded image bytes, or its path.
        regions: region forms in ``<PromptN>`` order (decoded again when the record is used).
        turns: the conversation.
        size: ``(height, width)`` of the stored image.
        length: sequence length of the encoded conversation (tokens).
        base: folder that relative ``mask:`` specs refer to.
    """

    where: str
    image: bytes | Path
    regions: tuple[Any, ...]
    turns: tuple[Turn, ...]
    size: tuple[int, int]
    length: int
    base: Path | None = None

    def load_image(self) -> Image.Image:
        """The RGB image (``RecordError`` when its pixels cannot be decoded)."""
        try:
            src = io.BytesIO(self.image) if isinstance(self.image, bytes) else self.image
            with Image.open(src) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise RecordError(self.where, "image", f"cannot be decoded ({exc})") from None

    def load_regions(self) -> Regions:
        return _regions(self.where, self.regions, self.size, self.base)


@dataclass
class RecordSet:
    """The usable records and what was left out: ``skipped`` counts by field,
    ``errors`` keeps the first messages (at most ``max_errors``)."""

    records: list[Record]
    source: str
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    max_errors: int = 20

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        if not self.skipped:
            return f"{len(self.records)} records from {self.source}"
        why = ", ".join(f"{n} bad {f}" for f, n in self.skipped.most_common())
        return f"{len(self.records)} records from {self.source}; skipped {self.num_skipped} ({why})"


# --------------------------------------------------------------------------------- raw records
def _raw_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name} line {n}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, RecordError(where, "<json>", f"not valid JSON ({exc.msg})")


def _raw_dataset(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - an extra
        raise InputError("reading a datasets folder needs the 'datasets' package "
                         "(pip install 'gar-agent[train]')") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"{str(path)!r} is not a datasets folder saved with save_to_disk ({exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(f"{str(path)!r} holds several splits ({', '.join(ds)}); pass one split's folder")
    if isinstance(ds.features.get("image"), datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))  # bytes / path, decoded later
    for i in range(len(ds)):
        yield f"{path.name} row {i}", ds[i]


def _image(where: str, value: Any, base: Path) -> tuple[bytes | Path, tuple[int, int]]:
    """``(bytes or path, (height, width))`` of an image field; reads only the header."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):  # datasets.Image(decode=False)
        value = value.get("bytes") or value.get("path")
    if isinstance(value, Image.Image):
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        value = buf.getvalue()
    if isinstance(value, str) and value.startswith("data:"):
        try:
            value = base64.b64decode(value.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error):
            raise RecordError(where, "image", "malformed data URI (expected data:...;base64,<data>)") from None
    if isinstance(value, str):
        p = Path(value)
        value = p if p.is_absolute() else base / p
        if not value.is_file():
            raise RecordError(where, "image", f"file not found: {str(value)!r}")
    if not isinstance(value, (bytes, Path)):
        raise RecordError(where, "image", f"expected a path, image bytes or data URI, got {type(value).__name__}")
    try:
        with Image.open(io.BytesIO(value) if isinstance(value, bytes) else value) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise RecordError(where, "image", f"not a readable image ({exc})") from None
    if w < 1 or h < 1:
        raise RecordError(where, "image", f"has no pixels ({w}x{h})")
    return value, (h, w)


def _region_forms(where: str, rec: dict) -> tuple[str, tuple[Any, ...]]:
    keys = [k for k in ("mask_rle", "regions") if rec.get(k) is not None]
    if len(keys) != 1:
        raise RecordError(where, "mask_rle", "expected exactly one of 'mask_rle' (COCO RLE or list) or "
                          f"'regions' (list of region forms), found {keys or 'neither'}")
    key = keys[0]
    value = rec[key]
    forms = [value] if isinstance(value, (dict, str)) else value
    if not isinstance(forms, list) or not forms:
        got = "an empty list" if isinstance(forms, list) else type(value).__name__
        raise RecordError(where, key, f"expected a non-empty list of regions, got {got}")
    return key, tuple(forms)


def _regions(where: str, forms: Sequence[Any], size: tuple[int, int], base: Path | None,
             key: str = "regions") -> Regions:
    fixed = []
    for f in forms:
        if isinstance(f, str) and base is not None and f.split(":", 1)[0].strip().lower() in ("mask", "rle"):
            kind, _, body = f.partition(":")
            body = body.strip()
            if not body.startswith(("{", "[")) and not Path(body).is_absolute():
                f = f"{kind}:{base / body}"
        fixed.append(f)
    try:
        return coerce_regions(fixed, size)
    except InputError as exc:
        raise RecordError(where, key, str(exc)) from None


def _turns(where: str, value: Any) -> tuple[Turn, ...]:
    if not isinstance(value, list) or not value:
        raise RecordError(where, "conversations", f"expected a non-empty list of turns, got {type(value).__name__}")
    out = []
    for i, t in enumerate(value):
        if not isinstance(t, dict) or t.get("from") not in _ROLES or not isinstance(t.get("value"), str):
            raise RecordError(where, "conversations", f"turn {i} must be {{\"from\": \"human\"|\"gpt\", "
                              f"\"value\": str}}, got {str(t)[:80]}")
        out.append(Turn(t["from"], t["value"]))
    return tuple(out)


def parse_record(where: str, rec: Any, base: Path, check: Callable[[Regions, tuple[Turn, ...], tuple[int, int]], int]
                 ) -> Record:
    """Validate one raw record; ``check(regions, turns, size)`` returns the encoded length or
    raises ``InputError`` (prompt references, special tokens) or ``LengthError``."""
    if isinstance(rec, RecordError):
        raise rec
    if not isinstance(rec, dict):
        raise RecordError(where, "<record>", f"expected a JSON object, got {type(rec).__name__}")
    for name in ("image", "conversations"):
        if rec.get(name) is None:
            raise RecordError(where, name, "missing")
    image, size = _image(where, rec["image"], base)
    key, forms = _region_forms(where, rec)
    regions = _regions(where, forms, size, base, key)
    turns = _turns(where, rec["conversations"])
    try:
        length = check(regions, turns, size)
    except LengthError as exc:
        raise RecordError(where, "length", str(exc)) from None
    except InputError as exc:
        raise RecordError(where, "conversations", str(exc)) from None
    return Record(where, image, forms, turns, size, length, base)


def load_records(path: str | Path, check: Callable[[Regions, tuple[Turn, ...], tuple[int, int]], int], *,
                 on_error: OnError = "fail", progress: bool = False) -> RecordSet:
    """Read and validate every record of a datasets folder or a ``.jsonl`` manifest.

    Raises:
        RecordError: the first bad record, with ``on_error="fail"``.
        InputError: ``path`` is neither, or no usable record is left.
    """
    if on_error not in ("fail", "skip"):
        raise InputError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl":
        raw, base = _raw_jsonl(p), p.parent
    elif p.is_dir():
        raw, base = _raw_dataset(p), p
    else:
        raise InputError(f"training data must be a datasets folder (save_to_disk) or a .jsonl manifest, "
                         f"got {str(p)!r}")
    out = RecordSet([], str(p))
    if progress:
        from tqdm.auto import tqdm

        raw = tqdm(raw, desc="checking records", unit="rec")
    for where, rec in raw:
        try:
            out.records.append(parse_record(where, rec, base, check))
        except RecordError as exc:
            if on_error == "fail":
                raise
            out.skipped[exc.field] += 1
            if len(out.errors) < out.max_errors:
                out.errors.append(str(exc))
    if not out.records:
        raise InputError(f"no usable training record in {str(p)!r}"
                         + (f" ({out.num_skipped} skipped; first: {out.errors[0]})" if out.errors else ""))
    return out


__all__ = ["OnError", "Record", "RecordError", "RecordSet", "load_records", "parse_record"]
