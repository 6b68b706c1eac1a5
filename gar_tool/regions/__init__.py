"""Region prompts: the canonical ``Region`` / ``Regions`` objects and every form they come from.

* :mod:`.region` — ``Region`` (bool ``H×W`` mask + xyxy box + metadata) and ``Regions``;
* :mod:`.forms` — masks, COCO RLE, boxes, points, polygons, scribbles and CLI spec strings → ``Region``;
* :mod:`.rle` — COCO RLE encode / decode.

No torch here: this layer is pure numpy.
"""

from __future__ import annotations

from gar_tool.regions.forms import coerce_region, coerce_regions, load_regions_json, parse_spec
from gar_tool.regions.region import Region, Regions

__all__ = ["Region", "Regions", "coerce_region", "coerce_regions", "parse_spec", "load_regions_json"]
