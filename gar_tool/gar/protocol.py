"""The one interface of anything that answers GAR requests, and its request / answer types.

``GARBackend`` is what the tools layer, the servers, the planner and the evaluation harness call.
It is implemented by :class:`gar_tool.GAR` (the model in this process), by
:class:`gar_tool.gar.batching.MicroBatcher` (the same model, concurrent callers micro-batched), by
:class:`gar_tool.integrations.http.RemoteGAR` (a ``gar serve`` server over HTTP) and by
:class:`gar_tool.testing.FakeGAR` (tests)::

    req = backend.request(image, [mask_a, mask_b], "Is <Prompt0> left of <Prompt1>?")  # validates
    [ans] = backend.answer([req], DecodeOptions(max_new_tokens=64))                     # batch entry
    backend.describe(image, region).text                                               # one-off forms

``request`` coerces and validates in the caller's thread (a bad request fails alone, before any
batching); ``answer`` runs a list of requests, as one batch where the backend can. ``describe`` and
``relate`` are the convenience forms built on those two (:class:`GARFrontMixin`), so every backend
accepts the same arguments. This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence, overload, runtime_checkable

from gar_tool.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from gar_tool.regions import Regions

Compat = Literal["default", "original"]
COMPAT_MODES: tuple[str, ...] = ("default", "original")
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings. ``max_new_tokens`` counts generated tokens, the stop token included."""

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False  # decode exactly max_new_tokens (benchmarks)

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if self.do_sample and not self.temperature > 0:
            raise InputError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class GARRequest:
    """One validated question to GAR.

    Attributes:
        image: the RGB ``PIL.Image`` (EXIF orientation applied).
        regions: :class:`~gar_tool.regions.Regions` sized like the image; ``regions[i]`` is
            ``<Prompt{i}>`` of ``question``.
        question: the question, or ``None`` to describe the single region.
        instruction: the describe instruction (``None``: GAR's own); only with ``question=None``.
        compat: ``"default"`` (training layout) or ``"original"`` (released inference, quirks).
    """

    image: "Image.Image"
    regions: "Regions"
    question: str | None = None
    instruction: str | None = None
    compat: Compat = "default"


@dataclass(frozen=True)
class GARAnswer:
    """One answer.

    Attributes:
        text: decoded answer (the end-of-turn token removed; ``<PromptN>`` mentions kept).
        token_ids: generated token ids, the stop token excluded (empty when the backend does not
            report them, e.g. over HTTP).
        finish_reason: ``"stop"`` (the model ended its turn) or ``"length"`` (max_new_tokens hit).
        prompt_tokens: length of the model input in tokens (0 when not reported).
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int


@runtime_checkable
class GARBackend(Protocol):
    """Anything that answers GAR requests (see the module docstring)."""

    @property
    def prompt_slots(self) -> int:
        """How many regions one question can name (5 for the released checkpoints)."""
        ...

    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Compat | None = None) -> GARRequest:
        """Coerce and validate one request (raises :class:`~gar_tool.errors.InputError`)."""
        ...

    def answer(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        """Answers to ``requests``, in order (computed together where the backend can)."""
        ...

    def describe(self, image: Any, region: Any, *, instruction: str | None = None,
                 compat: Compat | None = None, **decode: Any) -> Any:
        """Describe one region (a list of images → a list of answers)."""
        ...

    def relate(self, image: Any, regions: Any, question: Any, *, compat: Compat | None = None,
               **decode: Any) -> Any:
        """Answer a question about regions (a list of images → a list of answers)."""
        ...


def check_mode(compat: str) -> Compat:
    """``compat`` if it is a known mode, else :class:`~gar_tool.errors.PromptError`."""
    from gar_tool.errors import PromptError

    if compat not in COMPAT_MODES:
        raise PromptError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
    return compat  # type: ignore[return-value]


class GARFrontMixin:
    """``describe`` / ``relate`` for a class that has ``request`` and ``answer``.

    Single forms return one :class:`GARAnswer`; batch forms (``image`` a list) return a list, with
    ``region`` / ``regions`` / ``question`` lists of the same length (one question string is used
    for every image). ``**decode`` are :class:`DecodeOptions` fields.
    """

    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Compat | None = None) -> GARRequest:
        raise NotImplementedError

    def answer(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        raise NotImplementedError

    @overload
    def describe(self, image: list[Any] | tuple[Any, ...], region: Any, *, instruction: str | None = None,
                 compat: Compat | None = None, **decode: Any) -> list[GARAnswer]: ...
    @overload
    def describe(self, image: Any, region: Any, *, instruction: str | None = None,
                 compat: Compat | None = None, **decode: Any) -> GARAnswer: ...

    def describe(self, image: Any, region: Any, *, instruction: str | None = None,
                 compat: Compat | None = None, **decode: Any) -> GARAnswer | list[GARAnswer]:
        """Describe one region. ``image`` a list → batch (``region`` a list of the same length)."""
        opts = decode_options(decode)
        images, batched = _listify(image)
        regions = _broadcast(region, len(images), batched, "region")
        reqs = [self.request(img, [reg], None, instruction=instruction, compat=compat)
                for img, reg in zip(images, regions)]
        out = self.answer(reqs, opts)
        return out if batched else out[0]

    @overload
    def relate(self, image: list[Any] | tuple[Any, ...], regions: Any, question: Any, *,
               compat: Compat | None = None, **decode: Any) -> list[GARAnswer]: ...
    @overload
    def relate(self, image: Any, regions: Any, question: Any, *, compat: Compat | None = None,
               **decode: Any) -> GARAnswer: ...

    def relate(self, image: Any, regions: Any, question: Any, *, compat: Compat | None = None,
               **decode: Any) -> GARAnswer | list[GARAnswer]:
        """Answer ``question`` about ``regions`` (``regions[i]`` = ``<Prompt{i}>``).

        ``image`` a list → batch: ``regions`` and ``question`` lists of the same length (a single
        question string is used for every image).
        """
        opts = decode_options(decode)
        images, batched = _listify(image)
        regs = _broadcast(regions, len(images), batched, "regions")
        questions = _broadcast(question, len(images), batched and not isinstance(question, str), "question")
        reqs = [self.request(img, reg, q, compat=compat) for img, reg, q in zip(images, regs, questions)]
        out = self.answer(reqs, opts)
        return out if batched else out[0]


def check_texts(question: Any, instruction: Any) -> None:
    """:class:`~gar_tool.errors.InputError` unless ``question`` and ``instruction`` are each a
    string or None."""
    for what, value in (("question", question), ("instruction", instruction)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{what} must be a string, got {type(value).__name__}")


def coerce_request(image: Any, regions: Any, question: str | None, instruction: str | None,
                   compat: Compat | None, default: Compat) -> GARRequest:
    """The :class:`GARRequest` of ``GARBackend.request``'s arguments, coerced — the image loaded
    (:func:`~gar_tool.media.images.load_image`), the regions sized like it
    (:func:`~gar_tool.regions.forms.coerce_regions`), ``question`` / ``instruction`` checked by
    :func:`check_texts`, ``compat`` a known mode (``default`` when None) — but not checked against
    a model's prompt rules. Raises :class:`~gar_tool.errors.InputError`."""
    from gar_tool.media.images import load_image
    from gar_tool.regions.forms import coerce_regions

    pil = load_image(image)
    check_texts(question, instruction)
    mode = default if compat is None else check_mode(compat)
    return GARRequest(pil, coerce_regions(regions, (pil.height, pil.width)), question, instruction, mode)


def decode_options(decode: dict[str, Any]) -> DecodeOptions:
    """``DecodeOptions(**decode)``, with unknown names reported as :class:`InputError`."""
    from dataclasses import fields

    known = {f.name for f in fields(DecodeOptions)}
    unknown = sorted(set(decode) - known)
    if unknown:
        raise InputError(f"unknown decoding option(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    return DecodeOptions(**decode)


def _listify(image: Any) -> tuple[list[Any], bool]:
    if isinstance(image, (list, tuple)):
        if not image:
            raise InputError("empty batch: pass at least one image")
        return list(image), True
    return [image], False


def _broadcast(value: Any, n: int, as_list: bool, what: str) -> list[Any]:
    if not as_list:
        return [value] * n
    if not isinstance(value, (list, tuple)) or len(value) != n:
        got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise InputError(f"batch of {n} images needs {n} {what}, got {got}")
    return list(value)


__all__ = ["GARBackend", "GARRequest", "GARAnswer", "DecodeOptions", "GARFrontMixin", "Compat",
           "COMPAT_MODES", "FinishReason", "check_mode", "check_texts", "coerce_request", "decode_options"]
