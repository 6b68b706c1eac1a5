"""What the HTTP and MCP servers share (neither adapter imports the other; both import this).

* :func:`load_toolkit` — load the components once at start-up into a :class:`GARToolkit` whose GAR
  calls go through a :class:`~gar_tool.gar.batching.MicroBatcher` (concurrent requests share batches);
* :func:`with_batcher` — the same for a toolkit built elsewhere;
* :func:`component_names` — which models serve which tool (health / status output);
* :class:`BackgroundToolkit` — a toolkit loading in a worker thread while the server already
  answers (``gar mcp`` answers ``initialize`` and ``tools/list`` at once);
* :func:`agent_error_text` — the one-line text an agent reads for a failed call;
* :func:`planner_class` — the planner agent's class, from the ``gar.planners`` entry point.

Nothing here imports FastAPI, uvicorn or the MCP SDK; torch is imported only when models load.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from gar_tool.errors import GARError, InputError
from gar_tool.tools.core import GARToolkit
from gar_tool.tools.errors import FINAL_HINT, RETRY_HINT, agent_error_text  # noqa: F401  (re-exported)
from gar_tool.tools.inputs import ImageInputConfig

log = logging.getLogger(__name__)

def with_batcher(toolkit: GARToolkit, max_batch: int = 8, max_wait: float = 0.01) -> GARToolkit:
    """A toolkit sharing ``toolkit``'s components, store and input rules whose GAR calls go through
    a new :class:`~gar_tool.gar.batching.MicroBatcher` (``toolkit`` itself is returned when it has no
    GAR or already has a batcher). Close it with :func:`close_toolkit` at shut-down."""
    from gar_tool.gar.batching import MicroBatcher

    if toolkit.gar is None or isinstance(toolkit.gar, MicroBatcher):
        return toolkit
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise InputError(f"max_batch must be a positive integer, got {max_batch!r}")
    if not max_wait >= 0:
        raise InputError(f"max_wait must be >= 0 seconds, got {max_wait!r}")
    return toolkit.with_gar(MicroBatcher(toolkit.gar, max_batch=max_batch, max_wait=max_wait))


def batcher_of(toolkit: Any) -> Any:
    """The toolkit's :class:`~gar_tool.gar.batching.MicroBatcher`, or None."""
    from gar_tool.gar.batching import MicroBatcher

    gar = getattr(toolkit, "gar", None)
    return gar if isinstance(gar, MicroBatcher) else None


def close_toolkit(toolkit: Any) -> None:
    """Stop the toolkit's micro-batcher worker, if it has one (server shut-down)."""
    batcher = batcher_of(toolkit)
    if batcher is not None:
        batcher.close()


def _none(value: Any) -> Any:
    """CLI values ``"none"`` / ``""`` → None (leave the component out)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    return value


def image_inputs(allow_dirs: Sequence[str | os.PathLike] | None = None, allow_urls: bool = False,
                 **limits: Any) -> ImageInputConfig:
    """Image input rules of a server: paths under ``allow_dirs`` (default: the working directory),
    URLs only with ``allow_urls``. Raises :class:`InputError` for a directory that does not exist."""
    roots = None
    if allow_dirs:
        roots = []
        for d in allow_dirs:
            path = Path(d).expanduser()
            if not path.is_dir():
                raise InputError(f"--allow-dir {str(d)!r} is not a directory")
            roots.append(path)
    return ImageInputConfig(allowed_roots=roots, allow_urls=allow_urls, **limits)


def load_toolkit(model: str | None, detector: str | None = None, segmenter: Any = None, *,
                 device: str | None = None, dtype: str | None = None, compat: str = "default",
                 inputs: ImageInputConfig | None = None, max_new_tokens: int = 256, max_batch: int = 8,
                 max_wait: float = 0.01, tracker: Any = None) -> tuple[GARToolkit, dict[str, str | None]]:
    """Load the components once (``None`` / ``"none"`` = leave one out) and return
    ``(toolkit, names)``: a micro-batched toolkit and ``{"gar", "detector", "segmenter"}`` names
    for status output. ``tracker``: a SAM 2 video checkpoint for ``gar_track``."""
    model, detector, segmenter, tracker = _none(model), _none(detector), _none(segmenter), _none(tracker)
    if model is None and detector is None:
        raise InputError("nothing to serve: give --model (GAR) and/or --detector (Grounding DINO)")
    kit = GARToolkit.load(model=model, detector=detector, segmenter=segmenter, device=device, dtype=dtype,
                          compat=compat, inputs=inputs, max_new_tokens=max_new_tokens, tracker=tracker)
    names = {"gar": None if model is None else str(model), "detector": None if detector is None else str(detector),
             "segmenter": None if kit.segmenter is None else str(segmenter)}
    return with_batcher(kit, max_batch=max_batch, max_wait=max_wait), names


def planned_tools(model: Any, detector: Any, tracker: Any = None) -> list[str]:
    """The tools a toolkit loaded with these components will offer (``None`` / ``"none"`` = left out)."""
    from gar_tool.tools.specs import TOOL_SPECS

    have = {"gar": _none(model) is not None, "detector": _none(detector) is not None,
            "tracker": _none(tracker) is not None, None: True}
    return [s.name for s in TOOL_SPECS if have[s.needs]]


class StillLoading(Exception):
    """:meth:`BackgroundToolkit.get` timed out: the models are still loading (``elapsed`` seconds so far)."""

    def __init__(self, elapsed: float) -> None:
        super().__init__(f"still loading after {elapsed:.0f} s")
        self.elapsed = elapsed


class BackgroundToolkit:
    """A toolkit loaded in a worker thread while the server already answers (``gar mcp``).

    ``load()`` returns ``(toolkit, names)`` (e.g. :func:`load_toolkit` with the server's
    arguments); ``tools`` are the tool names it will offer (:func:`planned_tools`), listed before
    the load ends. :meth:`get` waits for the load (at most ``timeout`` seconds, then
    :class:`StillLoading`) and re-raises its failure, if it failed, to every caller.
    """

    def __init__(self, load: Callable[[], tuple[GARToolkit, dict[str, str | None]]], tools: Sequence[str],
                 names: dict[str, str | None] | None = None) -> None:
        self._load = load
        self.tools = list(tools)
        self.names = dict(names or {})
        self._done = threading.Event()
        self._toolkit: GARToolkit | None = None
        self._error: BaseException | None = None
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> "BackgroundToolkit":
        """Start loading (once) in a daemon thread."""
        if self._thread is None:
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="gar-model-load", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._toolkit, names = self._load()
            self.names.update(names)
        except Exception as exc:  # kept for the callers: a load failure must not end the server
            self._error = exc
            log.error("loading the models failed: %s", exc if isinstance(exc, GARError) else repr(exc))
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self._toolkit is not None

    def get(self, timeout: float | None = None) -> GARToolkit:
        """The loaded toolkit (waits up to ``timeout`` s; :class:`StillLoading` after it)."""
        self.start()
        if not self._done.wait(timeout):
            raise StillLoading(time.monotonic() - self._started)
        if self._error is not None:
            raise self._error
        return self._toolkit  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the loaded toolkit's batcher (if the load finished)."""
        if self._toolkit is not None:
            close_toolkit(self._toolkit)


def component_names(toolkit: Any, names: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """``{"gar", "detector", "segmenter"}``: the given names, else each component's ``name``
    attribute or class name (None for a missing component)."""
    out: dict[str, str | None] = {}
    for key in ("gar", "detector", "segmenter"):
        given = (names or {}).get(key)
        obj = getattr(toolkit, key, None)
        if given is not None:
            out[key] = given
        elif obj is None:
            out[key] = None
        else:
            name = getattr(obj, "name", None)
            out[key] = name if isinstance(name, str) else type(obj).__name__
    return out


def planner_class() -> Any:
    """The planner agent's class (``gar_agents.Planner``: ``cls(toolkit, spec, max_steps=,
    base_url=)``) from the ``gar.planners`` entry point, so that ``gar_tool`` never imports the
    planner package; :class:`InputError` when no installed package declares it."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="gar.planners") if ep.name == "planner"]
    if not found:
        raise InputError("--planner needs the agents package installed (entry point gar.planners:planner)")
    return found[0].load()


__all__ = ["agent_error_text", "planner_class", "with_batcher", "batcher_of", "close_toolkit", "image_inputs", "load_toolkit", "component_names",
           "planned_tools", "BackgroundToolkit", "StillLoading",
           "RETRY_HINT", "FINAL_HINT"]
