"""Prompt template files shipped in the ``gar_prompts`` package (the repository folder ``prompts/``) (judge and planner prompts).

A file starts with a header between two ``---`` lines — ``name``, ``variables`` (comma separated,
the ``str.format`` placeholders the template uses; checked), ``source``/``usage`` notes — and the
template is everything after the closing ``---`` line, byte for byte. Files are read with
``importlib.resources``, so a non-editable install finds them.
"""

from __future__ import annotations

import importlib.resources
import string
from dataclasses import dataclass, field
from typing import Any

from gar_tool.errors import InputError


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt: ``text`` with ``str.format`` placeholders named in ``variables``."""

    name: str
    variables: tuple[str, ...]
    text: str
    meta: dict[str, str] = field(default_factory=dict)

    def render(self, **values: Any) -> str:
        """Fill the placeholders; ``InputError`` when a variable is missing or unknown."""
        if set(values) != set(self.variables):
            raise InputError(f"prompt {self.name!r} takes variables {sorted(self.variables)}, "
                             f"got {sorted(values)}")
        return self.text.format(**{k: str(v) for k, v in values.items()})


def parse_prompt_file(raw: str, name: str) -> PromptTemplate:
    """Parse the ``---`` header and the template body of a prompt file (see the module docstring)."""
    if not raw.startswith("---\n"):
        raise InputError(f"prompt file {name!r} must start with a '---' header line")
    end = raw.find("\n---\n", 3)
    if end < 0:
        raise InputError(f"prompt file {name!r}: header is not closed by a '---' line")
    meta: dict[str, str] = {}
    key = None
    for line in raw[4:end].splitlines():
        if line.startswith((" ", "\t")) and key:  # continuation line
            meta[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip()
            meta[key] = value.strip()
    body = raw[end + len("\n---\n"):]
    declared = tuple(v.strip() for v in meta.get("variables", "").split(",") if v.strip())
    used = {f for _, f, _, _ in string.Formatter().parse(body) if f is not None}
    if used != set(declared):
        raise InputError(f"prompt file {name!r}: header declares variables {sorted(declared)} but the "
                         f"template uses {sorted(used)}")
    return PromptTemplate(name=meta.get("name", name), variables=declared, text=body, meta=meta)


def load_prompt(name: str) -> PromptTemplate:
    """Load ``prompts/{name}.md`` from the installed ``gar_prompts`` package."""
    res = importlib.resources.files("gar_prompts").joinpath(f"{name}.md")
    if not res.is_file():
        raise InputError(f"prompt template {name!r} not found in the gar_prompts package")
    return parse_prompt_file(res.read_text(encoding="utf-8"), name)


__all__ = ["PromptTemplate", "parse_prompt_file", "load_prompt"]
