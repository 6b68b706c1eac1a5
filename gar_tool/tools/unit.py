"""One tool as a unit: validate → prepare → execute → finish, with every error mapped.

A tool call has three phases so that several calls can run together (``GARToolkit.call_many``)
with exactly the results they have one at a time:

* ``prepare(kit, inp)`` — *ordered*: resolve the image, look up region ids, turn inline region
  prompts into masks (segmenting box / points prompts), build the model requests. Calls are
  prepared in their order; nothing is written to the session store yet.
* ``execute(kit, prepared)`` — the model work, *concurrent*: it reads the store but never writes
  it (GAR calls from concurrent executes share batches through a
  :class:`~gar_tool.gar.batching.MicroBatcher`).
* ``finish(kit, prepared, computed)`` — cheap and *ordered*: store the call's new regions — its
  inline prompts (:func:`store_regions`), then ``gar_ground``'s detections — and build the
  :class:`~gar_tool.tools.results.ToolResult`. Region ids are therefore assigned in call order,
  exactly as when the calls run one at a time.

Errors: invalid arguments and bad input are :class:`~gar_tool.tools.errors.ToolInputError`
(retry with other arguments); a model that fails is a
:class:`~gar_tool.tools.errors.ToolFailure` (``"<tool>: the model failed (...)"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, Sequence, TypeVar

from pydantic import BaseModel

from gar_tool.tools.errors import ToolError, ToolFailure, ToolInputError, as_tool_error
from gar_tool.tools.results import ToolResult
from gar_tool.tools.specs import ToolSpec

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.protocol import GARAnswer, GARBackend, GARRequest
    from gar_tool.regions.region import Region
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.store import StoredImage

I = TypeVar("I", bound=BaseModel)
P = TypeVar("P")
C = TypeVar("C")


class ToolUnit(Generic[I, P, C]):
    """Base of the tools of :mod:`gar_tool.tools.registry` (see the module docstring)."""

    spec: ToolSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def available(self, kit: "GARToolkit") -> bool:
        """Whether ``kit`` has the component this tool needs."""
        need = self.spec.needs
        return need is None or getattr(kit, need, None) is not None

    def prepare(self, kit: "GARToolkit", inp: I) -> P:
        raise NotImplementedError

    def execute(self, kit: "GARToolkit", prepared: P) -> C:
        raise NotImplementedError

    def finish(self, kit: "GARToolkit", prepared: P, computed: C) -> ToolResult:
        raise NotImplementedError

    def gar_requests(self, prepared: P) -> "Sequence[GARRequest]":
        """The GAR requests ``execute`` would answer (empty for tools that do not ask GAR); see
        :class:`GARUnit`."""
        return ()

    # ------------------------------------------------------------------ driver
    def stage(self, kit: "GARToolkit", args: Any) -> "Staged":
        """Validate ``args`` (a dict or the input model) and prepare the call; raises ToolError."""
        try:
            model = self.spec.input_model
            inp = args if isinstance(args, model) else model.model_validate(_nulls_as_defaults(model, args))
            return Staged(self, kit, self.prepare(kit, inp))  # type: ignore[arg-type]
        except Exception as exc:
            raise _mapped(exc, self.name) from _cause(exc)

    def __call__(self, kit: "GARToolkit", args: Any) -> ToolResult:
        staged = self.stage(kit, args)
        staged.execute()
        return staged.finish()


class GARUnit(ToolUnit[I, P, C]):
    """A tool whose model work is one ``gar.answer`` call: ``execute`` answers
    :meth:`gar_requests` and hands the answers to :meth:`from_answers`. Calls run together answer
    all their requests in one ``answer`` call (one batch: ``GARToolkit.call_many``)."""

    def gar_requests(self, prepared: P) -> "Sequence[GARRequest]":
        raise NotImplementedError

    def from_answers(self, kit: "GARToolkit", prepared: P, answers: "list[GARAnswer]") -> C:
        raise NotImplementedError

    def execute(self, kit: "GARToolkit", prepared: P) -> C:
        gar = need_gar(kit, self.name)
        return self.from_answers(kit, prepared, gar.answer(list(self.gar_requests(prepared)), kit.decode))


class Staged:
    """A prepared call: :meth:`execute` (any thread), then :meth:`finish` (in call order)."""

    def __init__(self, unit: ToolUnit, kit: "GARToolkit", prepared: Any) -> None:
        self.unit, self.kit, self.prepared = unit, kit, prepared
        self._computed: Any = None
        self._error: ToolError | None = None
        self._done = False

    def execute(self) -> None:
        """Run the model work; errors are kept for :meth:`finish` (never raised here)."""
        try:
            self._computed = self.unit.execute(self.kit, self.prepared)
        except Exception as exc:
            self._error = model_error(exc, self.unit.name)
        self._done = True

    @property
    def gar_requests(self) -> "Sequence[GARRequest]":
        return self.unit.gar_requests(self.prepared)

    def answered(self, answers: "list[GARAnswer]") -> None:
        """Complete a :class:`GARUnit` call from answers to its :attr:`gar_requests` obtained
        elsewhere (one ``answer`` call shared with other calls)."""
        try:
            self._computed = self.unit.from_answers(self.kit, self.prepared, answers)  # type: ignore[attr-defined]
        except Exception as exc:
            self._error = model_error(exc, self.unit.name)
        self._done = True

    def finish(self) -> ToolResult:
        """The result (raises the call's ToolError)."""
        if not self._done:
            raise RuntimeError("Staged.finish() called before execute()")
        if self._error is not None:
            raise self._error from _cause(self._error)
        try:
            return self.unit.finish(self.kit, self.prepared, self._computed)
        except Exception as exc:
            raise _mapped(exc, self.unit.name) from _cause(exc)


def _nulls_as_defaults(model: type[BaseModel], args: Any) -> Any:
    """``args`` without the ``null`` values of optional arguments: OpenAI strict function calling
    sends every argument, ``null`` for one the model leaves out, which means its default."""
    if not isinstance(args, dict):
        return args
    fields = model.model_fields
    return {k: v for k, v in args.items()
            if not (v is None and k in fields and not fields[k].is_required() and fields[k].default is not None)}


# --------------------------------------------------------------------------- helpers for units
def need_gar(kit: "GARToolkit", tool: str) -> "GARBackend":
    if kit.gar is None:
        raise ToolFailure(f"{tool} is not available: this toolkit has no GAR model "
                          "(start it with a model, e.g. --model HaochenWang/GAR-1B)")
    return kit.gar


def region_arg(kit: "GARToolkit", img: "StoredImage", spec: Any, where: str) -> "Region":
    """A region argument → a region of ``img``: the stored region of an id, or the mask of an inline
    prompt (box / points prompts segmented when the toolkit has a segmenter), not stored yet (its
    ``id`` is None; :func:`store_regions` stores it in ``finish``). ``where`` names the argument in
    error messages (``"regions[2]"``)."""
    from gar_tool.regions.forms import coerce_region
    from gar_tool.tools.schemas import region_wire

    if isinstance(spec, str):
        return kit.store.get_region(spec, img.image_id)
    try:
        region = coerce_region(region_wire(spec), img.size, image=img.image, segmenter=kit.segmenter)
    except ToolInputError:
        raise
    except Exception as exc:
        err = as_tool_error(exc)
        if isinstance(err, ToolInputError):
            raise ToolInputError(f"{where}: {err}") from None
        raise err from exc
    return region.with_meta(id=None)


def store_regions(kit: "GARToolkit", img: "StoredImage", regions: "list[Region]") -> "list[Region]":
    """``regions`` with the inline ones stored (deduplicated: a mask already stored for the image
    keeps its id), in order."""
    return [r if r.id is not None else kit.store.put_region(img.image_id, r, dedupe=True) for r in regions]


def model_call(tool: str, fn: Callable[[], Any]) -> Any:
    """Run a model step of ``prepare`` / ``finish``; errors mapped like :meth:`Staged.execute`."""
    try:
        return fn()
    except Exception as exc:
        raise model_error(exc, tool) from _cause(exc)


def model_error(exc: BaseException, tool: str) -> ToolError:
    """InputError stays an input error; anything else is ``"<tool>: the model failed (...)"``."""
    err = as_tool_error(exc, tool)
    if isinstance(err, ToolFailure) and not isinstance(exc, ToolError):
        failure = ToolFailure(f"{tool}: the model failed ({type(exc).__name__}: {exc})", tool=tool)
        failure.__cause__ = exc
        return failure
    return err


def _mapped(exc: BaseException, tool: str) -> ToolError:
    return as_tool_error(exc, tool)


def _cause(exc: BaseException) -> BaseException | None:
    """What a re-raised ToolError should chain to: the original failure (kept for logs), not the
    pydantic / InputError an agent already reads in the message."""
    if isinstance(exc, ToolInputError):
        return None
    return exc.__cause__ if isinstance(exc, ToolError) else exc


__all__ = ["ToolUnit", "GARUnit", "Staged", "need_gar", "region_arg", "store_regions", "model_call", "model_error"]
