"""Packaging: the installed names are our own (next to the OpenAI Agents SDK), and the package list
in pyproject.toml matches the tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_package_list_matches_the_tree():
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "gar_tool").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    dirs = SETUPTOOLS["package-dir"]
    assert dirs == {"gar_agents": "agents", "gar_prompts": "prompts"}
    assert set(SETUPTOOLS["packages"]) == found | set(dirs)
    for folder in dirs.values():
        assert (REPO / folder / "__init__.py").is_file()


def test_wheel_installs_no_generic_top_level_names(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info",
                                                            "__pycache__", "tests", "out", "benchmarks"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("gar_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"gar_tool", "gar_agents", "gar_prompts"}
    assert {"gar_tool/py.typed", "gar_agents/py.typed", "gar_prompts/planner_system.md"} <= set(names)
    page = REPO / "gar_tool" / "integrations" / "http" / "static"  # the web page of gar serve
    assert {f"gar_tool/integrations/http/static/{f.name}" for f in page.iterdir()} <= set(names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    points = zipfile.ZipFile(wheel).read(entry).decode()
    assert "gar_agents.cli_ask:register" in points and "agents." not in points.replace("gar_agents.", "")


def test_importable_next_to_the_openai_agents_sdk(tmp_path):
    """`pip install gar-agent openai-agents`: both packages import (run outside the checkout, so
    the repository's agents/ folder is not on sys.path)."""
    code = ("import agents, gar_agents, inspect\n"
            "from agents import Agent, Runner\n"
            "from gar_agents import Planner\n"
            "from gar_tool.templates import load_prompt\n"
            "assert 'site-packages' in agents.__file__, agents.__file__\n"
            "assert inspect.isclass(Planner) and load_prompt('planner_system').variables\n"
            "print(Agent.__module__, Planner.__module__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a checkout on the path would shadow it
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["agents.agent", "gar_agents.planner"]
