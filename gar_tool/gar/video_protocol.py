"""The interface of anything that answers GAR questions about video clips, and its request type.

Kept apart from :class:`~gar_tool.gar.protocol.GARBackend` (images), which servers, batchers and
fakes implement: a backend that can also answer about clips implements this small Protocol too
(:class:`gar_tool.GAR` does), and the tools look for it::

    req = backend.video_request(clip, [track], None)                  # validates, no model work
    [ans] = backend.answer_video([req], DecodeOptions(max_new_tokens=64))

This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from gar_tool.gar.protocol import Compat, DecodeOptions, GARAnswer

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.video.clip import Clip
    from gar_tool.video.track import RegionTrack


@dataclass(frozen=True)
class GARVideoRequest:
    """One validated question about a clip.

    Attributes:
        clip: the sampled frames.
        tracks: one :class:`~gar_tool.video.track.RegionTrack` per object; ``tracks[k]`` is
            ``<Prompt{k}>`` of ``question``.
        question: the question, or ``None`` to describe the single tracked object.
        instruction: the describe instruction (``None``: GAR's own); only with ``question=None``.
        compat: ``"default"`` or ``"original"`` (BOS count and describe prompt number, as for images).
    """

    clip: "Clip"
    tracks: tuple["RegionTrack", ...]
    question: str | None = None
    instruction: str | None = None
    compat: Compat = "default"


@runtime_checkable
class GARVideoBackend(Protocol):
    """Anything that answers GAR questions about clips."""

    @property
    def prompt_slots(self) -> int:
        """How many objects one question can name."""
        ...

    def video_request(self, video: Any, tracks: Sequence[Any], question: str | None = None, *,
                      instruction: str | None = None, compat: Compat | None = None,
                      frames: int | None = None) -> GARVideoRequest:
        """Coerce and validate one clip request (raises :class:`~gar_tool.errors.InputError`)."""
        ...

    def answer_video(self, requests: Sequence[GARVideoRequest],
                     options: DecodeOptions | None = None) -> list[GARAnswer]:
        """Answers to ``requests``, in order."""
        ...


__all__ = ["GARVideoRequest", "GARVideoBackend"]
