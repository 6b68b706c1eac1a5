"""Grounding: text → boxes (Grounding DINO) and boxes / points → masks (SAM), as :class:`Regions`.

```python
from gar_tool.grounding import GroundingDetector, SamSegmenter

det = GroundingDetector.from_pretrained("IDEA-Research/grounding-dino-tiny", segmenter=True)
regions = det.detect("photo.jpg", "a dog. a ball.")      # labelled, scored, SAM masks
sam = SamSegmenter.from_pretrained("facebook/sam-vit-base")
regions = sam.segment("photo.jpg", boxes=[[10, 20, 200, 240]])
```

Modules: :mod:`.phrases` (prompt text rules), :mod:`.postprocess` (raw outputs → boxes),
:mod:`.checkpoints` (local directory / hub id loading), :mod:`.sam` (SAM), :mod:`.detector` (Grounding DINO).
The model classes are imported on first use, so ``import gar_tool.grounding`` (e.g. for
:func:`parse_phrases` or the defaults) does not import torch; transformers is imported only when a
model is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gar_tool.grounding.defaults import DEFAULT_DETECTOR, DEFAULT_SEGMENTER
from gar_tool.grounding.phrases import parse_phrases

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.grounding.detector import GroundingDetector
    from gar_tool.grounding.sam import SamSegmenter, load_segmenter

_LAZY = {"GroundingDetector": ".detector", "SamSegmenter": ".sam", "load_segmenter": ".sam"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_DETECTOR", "DEFAULT_SEGMENTER", "GroundingDetector", "SamSegmenter",
           "load_segmenter", "parse_phrases"]
