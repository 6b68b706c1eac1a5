"""Turning the region forms users type or send into :class:`~gar_tool.regions.region.Region` objects.

Two front doors share this module:

* CLI specs (strings): ``mask:PNG``, ``rle:JSON`` (a file or inline JSON of one COCO RLE dict),
  ``box:X1,Y1,X2,Y2``, ``points:X,Y[;X,Y...]`` (optionally ``X,Y,LABEL``), ``polygon:X,Y;X,Y;...``.
* Wire dicts (tools, HTTP, MCP): ``{"box": [x1, y1, x2, y2]}``,
  ``{"points": [[x, y], ...], "labels": [1, 0, ...]}``, ``{"rle": {"size": [h, w], "counts": ...}}``
  (or a bare RLE dict), ``{"polygon": [[x, y], ...]}``, ``{"scribble": [[x, y], ...]}``,
  ``{"mask": <2-D array>}``.

All coordinates are pixels, origin top-left. ``segmenter`` (optional) turns box / point prompts
into object masks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gar_tool.errors import RegionError
from gar_tool.regions.region import Region, Regions, Segmenter

Size = tuple[int, int]


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise RegionError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def parse_spec(spec: str, image_size: Size, *, image: Any = None,
               segmenter: Segmenter | None = None) -> Region:
    """One CLI region spec (see module doc) → Region for an image of ``image_size = (H, W)``."""
    kind, sep, body = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not body.strip():
        raise RegionError(f"region spec {spec!r} must look like KIND:VALUE "
                          "(mask:PNG, rle:JSON, box:X1,Y1,X2,Y2, points:X,Y;X,Y, polygon:X,Y;...)")
    if kind == "mask":
        return Region.from_mask_file(body, image_size)
    if kind == "rle":
        return Region.from_rle(_load_json(body, "rle"), image_size)
    if kind == "box":
        return Region.from_box(_numbers(body, "box"), image_size, image=image, segmenter=segmenter)
    if kind in ("points", "polygon", "scribble"):
        pts = [_numbers(p, kind) for p in body.split(";") if p.strip()]
        if kind == "polygon":
            return Region.from_polygon(pts, image_size)
        if kind == "scribble":
            return Region.from_scribble(pts, image_size)
        if any(len(p) not in (2, 3) for p in pts):
            raise RegionError(f"points: each point is X,Y or X,Y,LABEL; got {body[:80]!r}")
        labels: list[Any] = [p[2] if len(p) == 3 else 1 for p in pts]
        return Region.from_points([p[:2] for p in pts], image_size, labels,
                                  image=image, segmenter=segmenter)
    raise RegionError(f"unknown region kind {kind!r} in {spec!r}; expected mask, rle, box, points, polygon or scribble")


def _load_json(body: str, what: str) -> Any:
    """Inline JSON, or the JSON file ``body`` names (its size checked before it is read)."""
    from gar_tool.errors import InputError
    from gar_tool.media.images import read_file

    text = body.strip()
    if not text.startswith(("{", "[")):
        if not Path(text).is_file():
            raise RegionError(f"{what}: file not found: {text!r}")
        try:
            raw = read_file(text, f"{what} file", name="mask_file_bytes")
            text = raw.decode("utf-8")
        except InputError as exc:
            raise RegionError(str(exc)) from None
        except UnicodeDecodeError:
            raise RegionError(f"{what}: file {body.strip()!r} is not UTF-8 JSON text") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RegionError(f"{what}: not valid JSON ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def load_regions_json(path: str | Path, image_size: Size) -> Regions:
    """A JSON file holding a list of COCO RLE dicts in ``<PromptN>`` order (GAR-Bench ``mask_rles``)."""
    data = _load_json(str(path), "regions-json")
    if not isinstance(data, list) or not data:
        raise RegionError("regions-json must hold a non-empty list of COCO RLE dicts")
    return Regions(Region.from_rle(r, image_size) for r in data)


def coerce_region(obj: Any, image_size: Size, *, image: Any = None,
                  segmenter: Segmenter | None = None) -> Region:
    """Any accepted region form (Region, mask array, wire dict, CLI spec string) → Region."""
    if isinstance(obj, Region):
        if obj.size != tuple(image_size):
            raise RegionError(f"region mask is {obj.size} (HxW) but the image is {tuple(image_size)}")
        return obj
    if isinstance(obj, np.ndarray):
        return Region.from_mask(obj, image_size)
    if isinstance(obj, str):
        return parse_spec(obj, image_size, image=image, segmenter=segmenter)
    if isinstance(obj, dict):
        return _from_dict(obj, image_size, image=image, segmenter=segmenter)
    raise RegionError(f"cannot make a region from {type(obj).__name__}; pass a Region, a mask array, "
                      "a dict with box / points / rle / polygon, or a spec string")


def _meta(d: dict) -> dict[str, Any]:
    """``label`` (str), ``score`` (number in [0, 1]) and ``id`` (str) of a region dict, checked."""
    meta = {k: d[k] for k in ("label", "score", "id") if d.get(k) is not None}
    for key in ("label", "id"):
        if key in meta and not isinstance(meta[key], str):
            raise RegionError(f"region {key} must be a string, got {type(meta[key]).__name__}")
    if "score" in meta:
        score = meta["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
            raise RegionError(f"region score must be a number in [0, 1], got {score!r}")
        meta["score"] = float(score)
    return meta


def _from_dict(d: dict, image_size: Size, *, image: Any, segmenter: Segmenter | None) -> Region:
    meta = _meta(d)
    keys = [k for k in ("box", "points", "rle", "polygon", "scribble", "mask") if k in d]
    if "counts" in d and "size" in d:
        return Region.from_rle(d, image_size, **meta)
    if len(keys) != 1:
        raise RegionError(f"a region dict needs exactly one of box, points, rle, polygon, scribble, "
                          f"mask; got keys {sorted(d)}")
    k = keys[0]
    if k == "box":
        return Region.from_box(d["box"], image_size, image=image, segmenter=segmenter, **meta)
    if k == "points":
        return Region.from_points(d["points"], image_size, d.get("labels"), image=image,
                                  segmenter=segmenter, **meta)
    if k == "rle":
        return Region.from_rle(d["rle"], image_size, **meta)
    if k == "polygon":
        return Region.from_polygon(d["polygon"], image_size, **meta)
    if k == "scribble":
        return Region.from_scribble(d["scribble"], image_size, **meta)
    return Region.from_mask(d["mask"], image_size, **meta)


def coerce_regions(objs: Any, image_size: Size, *, image: Any = None,
                   segmenter: Segmenter | None = None) -> Regions:
    """A Regions, a single region form, or a sequence of region forms → Regions (order kept)."""
    if isinstance(objs, Regions):
        return Regions(coerce_region(r, image_size) for r in objs)
    if isinstance(objs, (Region, np.ndarray, str, dict)):
        return Regions([coerce_region(objs, image_size, image=image, segmenter=segmenter)])
    if isinstance(objs, Sequence):
        return Regions(coerce_region(o, image_size, image=image, segmenter=segmenter) for o in objs)
    raise RegionError(f"regions must be a Regions or a list of region forms, got {type(objs).__name__}")


__all__ = ["parse_spec", "load_regions_json", "coerce_region", "coerce_regions"]
