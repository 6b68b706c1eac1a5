"""Helpers for the web page tests: reading server-sent events, planners that yield scripted events,
and headless Chromium (Debian's package, driven by Playwright) with a fresh profile."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import REPO

#: Where the browser tests save their screenshots (out/ is ignored by git).
SCREENSHOTS = Path(os.environ.get("GAR_TEST_SCREENSHOTS", REPO / "out" / "web-screenshots"))

#: Chromium flags for this machine's closed network: no background connections at all.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
                 "--no-default-browser-check"]


def sse_events(text: str) -> list[tuple[str, Any]]:
    """``[(event name, parsed JSON data), ...]`` of a ``text/event-stream`` body (comments skipped)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


class ScriptedEventsPlanner:
    """A planner whose ``stream`` yields the given events (dicts); an exception in the list is
    raised at that point. Records the questions and whether each run's generator was closed."""

    def __init__(self, events: list[Any], gate: threading.Event | None = None) -> None:
        self.events = events
        self.gate = gate
        self.questions: list[str] = []
        self.images: list[Any] = []
        self.closed = threading.Event()
        self.started = threading.Event()

    def stream(self, image: Any, question: str) -> Iterator[Any]:
        self.questions.append(question)
        self.images.append(image)
        try:
            for i, event in enumerate(self.events):
                if isinstance(event, BaseException):
                    raise event
                if i == 1:
                    self.started.set()
                    if self.gate is not None:
                        self.gate.wait(timeout=30)
                yield event
        finally:
            self.closed.set()


def chromium_path() -> str:
    """Debian's chromium (``GAR_CHROMIUM`` overrides); fails with the install command if absent."""
    path = os.environ.get("GAR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        pytest.fail("the browser tests need headless Chromium: apt-get install chromium "
                    "(scripts/setup.sh does it as root), or set GAR_CHROMIUM=/path/to/chromium")
    return path


class Browser:
    """``with Browser() as b: page = b.page(viewport=...)`` — Chromium through Playwright (each
    launch gets a fresh temporary ``--user-data-dir`` from Playwright); every page records console
    messages, page errors and the URLs it requested."""

    def __enter__(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                                    args=CHROMIUM_ARGS)
        except BaseException:
            self._pw.stop()
            raise
        return self

    def page(self, **context: Any) -> Any:
        ctx = self.browser.new_context(accept_downloads=True, **context)
        page = ctx.new_page()
        page.console_messages = []  # (type, text)
        page.page_errors = []
        page.requested = []
        page.on("console", lambda m: page.console_messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: page.page_errors.append(str(e)))
        page.on("request", lambda r: page.requested.append(r.url))
        return page

    def __exit__(self, *exc: Any) -> None:
        self.browser.close()
        self._pw.stop()


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def planner_entry_point(directory: Path) -> Path:
    """A distribution's metadata in ``directory`` declaring the ``gar.planners`` entry point exactly
    as pyproject.toml does, for environments installed before it existed: put ``directory`` on
    ``sys.path`` (or ``PYTHONPATH``) and ``importlib.metadata`` finds it."""
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["gar.planners"]
    info = directory / "gar_planner_entry_point-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gar-planner-entry-point\nVersion: 0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in declared.items())
    (info / "entry_points.txt").write_text(f"[gar.planners]\n{lines}")
    return directory
