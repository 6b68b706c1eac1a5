"""What crosses the wire between the Ray deployments / stages, and how errors come back.

Ray pickles call arguments; what we choose to send decides the cost:

* **images** travel as ``(H, W, 3)`` ``uint8`` arrays (:func:`image_to_wire`). Ray moves numpy
  arrays out of band (shared memory on one node, one copy across nodes): a 1 MP image is 3 MB and
  needs no encoding, where PNG would cost tens of milliseconds of CPU per call on each side.
* **masks** travel as COCO compressed RLE (:func:`regions_to_wire`): a few hundred bytes to a few
  kB instead of ``H*W`` bytes, and exact (the box is recomputed from the mask on arrival).
  ``label`` / ``score`` / ``source`` / ``id`` travel with them.
* **errors** never travel as raised exceptions: Ray would re-raise them wrapped, with the remote
  traceback in the message, and that text would reach HTTP clients. A remote method returns an
  :class:`Outcome` instead, and the caller re-raises the original exception object locally, so a
  ``PromptError`` stays a ``PromptError`` with the same message as in-process.

:func:`answer_groups` is the GAR deployment's batch step: one batched ``GAR.answer`` per distinct
decoding options, failures isolated as the in-process micro-batcher isolates them, outcomes out.

This module does not import Ray.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np

from gar_tool.media.images import load_image
from gar_tool.regions.region import Region, Regions
from gar_tool.regions.rle import rle_decode, rle_encode

T = TypeVar("T")


def image_to_wire(image: Any) -> np.ndarray:
    """Any image form :func:`~gar_tool.media.images.load_image` accepts → ``(H, W, 3)`` ``uint8``
    RGB array (EXIF orientation applied), C-contiguous."""
    return np.ascontiguousarray(np.asarray(load_image(image), dtype=np.uint8))


def region_to_wire(region: Region) -> dict[str, Any]:
    """A region → ``{"rle", "label", "score", "source", "id"}`` (JSON-ready; RLE is COCO compressed)."""
    return {"rle": rle_encode(region.mask), "label": region.label, "score": region.score,
            "source": region.source, "id": region.id}


def regions_to_wire(regions: Sequence[Region]) -> list[dict[str, Any]]:
    return [region_to_wire(r) for r in regions]


def region_from_wire(d: dict[str, Any]) -> Region:
    """The inverse of :func:`region_to_wire` (same mask, hence the same box; metadata kept)."""
    return Region(rle_decode(d["rle"]), label=d.get("label"), score=d.get("score"),
                  source=d.get("source") or "rle", id=d.get("id"))


def regions_from_wire(items: Sequence[dict[str, Any]]) -> Regions:
    return Regions(region_from_wire(d) for d in items)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A remote call's result: ``value``, or the exception it raised (``error``)."""

    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        """The value, or raise the remote exception here (its message unchanged)."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def portable(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives pickling with its message, else a ``RuntimeError`` naming
    its type and message (so the caller still learns what failed)."""
    try:
        back = pickle.loads(pickle.dumps(exc))
        if type(back) is type(exc) and str(back) == str(exc):
            return exc
    except Exception:  # an exception type that cannot be pickled or rebuilt
        pass
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def capture(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Outcome[T]:
    """Run ``fn`` and return its :class:`Outcome` (every exception captured, none raised)."""
    try:
        return Outcome(value=fn(*args, **kwargs))
    except Exception as exc:  # transported to the caller, who re-raises it
        return Outcome(error=portable(exc))


def answer_groups(gar: Any, items: list[tuple[Any, Any]]) -> tuple[list[Outcome[Any]], int]:
    """One ``answer_each`` call per distinct decoding options: outcomes in the items' order, and
    how many GAR calls succeeded."""
    from gar_tool.gar.batching import answer_each

    out: list[Outcome[Any] | None] = [None] * len(items)
    calls = 0
    groups: dict[Any, list[int]] = {}
    for i, (_, opts) in enumerate(items):
        groups.setdefault(opts, []).append(i)
    for opts, idx in groups.items():
        results, n = answer_each(gar, [items[i][0] for i in idx], opts)
        calls += n
        for i, res in zip(idx, results):
            out[i] = Outcome(error=portable(res)) if isinstance(res, BaseException) else Outcome(value=res)
    return [o for o in out if o is not None], calls


__all__ = ["answer_groups", "image_to_wire", "region_to_wire", "regions_to_wire", "region_from_wire", "regions_from_wire",
           "Outcome", "portable", "capture"]
