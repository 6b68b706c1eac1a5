"""The component interfaces the tools call: a detector (``gar_ground``) and a segmenter (box /
points region prompts → object masks). GAR itself is a :class:`gar_tool.gar.protocol.GARBackend`.

:class:`gar_tool.grounding.GroundingDetector` and :class:`gar_tool.grounding.SamSegmenter` implement
them; so do the fakes of the tests. Coordinates are image pixels, origin top-left, boxes
``[x1, y1, x2, y2]`` with ``x2`` / ``y2`` exclusive; returned regions have ``(H, W)`` bool masks of
the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.regions.region import Regions


@runtime_checkable
class Detector(Protocol):
    """Open-vocabulary detection: the regions of ``image`` matching ``phrases``."""

    def detect(self, image: Any, phrases: Sequence[str], box_threshold: float = 0.35,
               text_threshold: float = 0.25, max_regions: int | None = None) -> "Regions":
        """Regions with ``label`` (the phrase matched) and ``score`` (detector confidence 0-1),
        highest score first, at most ``max_regions``; an empty result when nothing scores above
        ``box_threshold``."""
        ...


@runtime_checkable
class Segmenter(Protocol):
    """Prompts → object masks (SAM)."""

    def segment(self, image: Any, boxes: Any = None, points: Any = None, point_labels: Any = None) -> "Regions":
        """One region per box (``[[x1, y1, x2, y2], ...]``), then one per point set
        (``[[[x, y], ...], ...]`` with ``point_labels`` 1 = on the object, 0 = background)."""
        ...


def load_detector(spec: Any, *, segmenter: Any = None, device: Any = None, dtype: Any = None) -> Detector:
    """A detector from a CLI / config value: ``"shapes-world"`` (:data:`gar_tool.shapes.SHAPES_DETECTOR`)
    → the offline shapes-world detector (no model; it has no ``segmenter``); anything else →
    Grounding DINO from that directory / hub id, its boxes refined by ``segmenter`` (a value of
    :func:`gar_tool.grounding.load_segmenter`)."""
    from gar_tool.shapes import SHAPES_DETECTOR

    if str(spec) == SHAPES_DETECTOR:
        from gar_tool.shapes.detector import ShapesDetector

        return ShapesDetector()
    from gar_tool.grounding import GroundingDetector

    return GroundingDetector.from_pretrained(spec, segmenter=segmenter, device=device, dtype=dtype)


__all__ = ["Detector", "Segmenter", "load_detector"]
