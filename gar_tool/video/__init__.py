"""Video regions: clips of sampled frames, region tracks through them, and the SAM 2 tracker.

```python
from gar_tool.video import load_clip, coerce_track, Sam2VideoTracker

clip = load_clip("dog.mp4", num_frames=16)                   # PyAV; or a folder / list of frames
tracker = Sam2VideoTracker.from_pretrained("facebook/sam2.1-hiera-tiny")
track = tracker.track(clip, {"box": [40, 60, 200, 380]}, frame=0)   # prompt on sampled frame 0
track.states                                                 # "given" / "tracked" / "absent" per frame
```

Modules: :mod:`.clip` (``Clip``, sampling, limits), :mod:`.decode` (``load_clip``),
:mod:`.track` (``RegionTrack``, ``coerce_track``), :mod:`.tracker` (SAM 2 video),
:mod:`.sheet` (contact sheets). Importing this package does not import torch or PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.video.clip import DEFAULT_FRAMES, Clip, uniform_indices
    from gar_tool.video.decode import is_video_path, load_clip
    from gar_tool.video.sheet import contact_sheet
    from gar_tool.video.track import RegionTrack, coerce_track
    from gar_tool.video.tracker import DEFAULT_TRACKER, Sam2VideoTracker, load_tracker

_LAZY = {"Clip": ".clip", "DEFAULT_FRAMES": ".clip", "uniform_indices": ".clip", "load_clip": ".decode",
         "is_video_path": ".decode", "RegionTrack": ".track", "coerce_track": ".track",
         "Sam2VideoTracker": ".tracker", "DEFAULT_TRACKER": ".tracker", "load_tracker": ".tracker",
         "contact_sheet": ".sheet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
