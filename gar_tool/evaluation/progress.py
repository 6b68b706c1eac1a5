"""Progress bars on stderr: tqdm when installed, otherwise a small built-in one."""

from __future__ import annotations

import sys
import time
from typing import IO, Protocol


class Bar(Protocol):
    """What the loops need from a progress bar."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


class SimpleBar:
    """``desc: 12/424 [00:31, 2.6 s/it] note`` redrawn in place (at most every 0.2 s)."""

    def __init__(self, total: int, desc: str, stream: IO[str], initial: int = 0) -> None:
        self.total, self.desc, self.stream = total, desc, stream
        self.n = initial
        self._start = time.monotonic()
        self._done_here = 0
        self._last = 0.0
        self._note = ""
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2 and self.n < self.total:
            return
        self._last = now
        elapsed = now - self._start
        rate = f", {elapsed / self._done_here:.1f} s/it" if self._done_here else ""
        m, s = divmod(int(elapsed), 60)
        self.stream.write(f"\r{self.desc}: {self.n}/{self.total} [{m:02d}:{s:02d}{rate}] {self._note}")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._done_here += n
        self._draw()

    def set_postfix_str(self, s: str) -> None:
        self._note = s
        self._draw()

    def close(self) -> None:
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()


class NullBar:
    """A bar that shows nothing (``--no-progress``, tests)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, *, enabled: bool = True, initial: int = 0,
                 stream: IO[str] | None = None) -> Bar:
    """A progress bar writing to ``stream`` (default stderr), or a silent one when disabled."""
    if not enabled:
        return NullBar()
    out = stream if stream is not None else sys.stderr
    try:
        from tqdm import tqdm
    except ImportError:
        return SimpleBar(total, desc, out, initial)
    return tqdm(total=total, desc=desc, initial=initial, file=out, dynamic_ncols=True)


__all__ = ["Bar", "SimpleBar", "NullBar", "progress_bar"]
