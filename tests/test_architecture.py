"""The layering the README's architecture section states, checked on the source: imports flow one
way, adapters do not import each other, and nothing outside the GAR package reaches into its
private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

SOURCES = sorted(p for d in ("gar_tool", "agents", "benchmarks", "examples") for p in (REPO / d).rglob("*.py")
                 if "__pycache__" not in p.parts)


def _module(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = ["gar_agents" if rel.parts[0] == "agents" else rel.parts[0], *rel.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module(path).split(".")
    pkg = me if path.name == "__init__.py" else me[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            out.append((base, [a.name for a in node.names]))
    return out


def test_sources_were_found():
    assert len(SOURCES) > 100


def test_gar_tool_never_imports_the_planner():
    bad = [(_module(p), m) for p in SOURCES if _module(p).startswith("gar_tool")
           for m, _ in _imports(p) if m.split(".")[0] in ("gar_agents", "agents")]
    assert not bad


ADAPTERS = ("gar_tool.integrations.langchain", "gar_tool.integrations.mcp", "gar_tool.integrations.http",
            "gar_tool.integrations.ray")


def test_adapters_do_not_import_each_other():
    bad = []
    for path in (p for p in SOURCES if _module(p).startswith(ADAPTERS)):
        mine = next(a for a in ADAPTERS if _module(path).startswith(a))
        allowed = {"gar_tool.integrations.ray": ("gar_tool.integrations.http",)}.get(mine, ())  # Ray fronts gar serve's app
        bad += [(_module(path), m) for m, _ in _imports(path) if m.startswith(ADAPTERS)
                and not m.startswith(mine) and not m.startswith(allowed)]
    assert not bad


def test_nothing_outside_the_gar_package_touches_its_private_names():
    outside = [p for p in SOURCES if not _module(p).startswith("gar_tool.gar")]
    private = [(_module(p), m, n) for p in outside for m, names in _imports(p) if m.startswith("gar_tool.gar")
               for n in names if n.startswith("_")]
    assert not private
    reach = [(_module(p), hit) for p in outside
             for hit in re.findall(r"\b(?:gar|batcher|engine|backend)\._[a-z]\w*", p.read_text(encoding="utf-8"))]
    assert not reach


def test_regions_and_media_do_not_import_torch():
    """The lowest layers stay numpy-only (the HTTP client and the tools' schemas import them)."""
    for d in ("regions", "media"):
        for path in (REPO / "gar_tool" / d).rglob("*.py"):
            assert not [m for m, _ in _imports(path) if m.split(".")[0] == "torch"], path
