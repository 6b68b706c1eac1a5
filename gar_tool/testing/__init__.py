"""Helpers for tests and benchmarks: tiny random checkpoints in the released on-disk layouts.

Nothing here is needed at inference time; it is shipped so that users' own tests (and ours) can
build a GAR checkpoint in seconds without weights or network.
"""

from __future__ import annotations

__all__: list[str] = []
