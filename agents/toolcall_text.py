"""Tool calls written as text: what a local chat model generates, and what a server that does not
parse tool calls hands back as plain content.

:func:`parse_tool_calls` finds every *attempted* call and splits it into well-formed calls
(``{"name", "args", "id"}``, LangChain's ``ToolCall`` shape) and malformed ones
(``{"name", "args" (the raw text), "id", "error"}``, LangChain's ``InvalidToolCall`` shape), so a
malformed call becomes an error the planner reads instead of a final answer. Formats:

* Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (a missing closing
  tag is tolerated: the call runs to the next tag or the end);
* Llama 3.x: a JSON object ``{"name": ..., "parameters": {...}}`` alone or after text,
  ``<|python_tag|>{...}``, ``<function=NAME>{...}</function>``;
* Mistral: ``[TOOL_CALLS] [{...}, ...]`` and ``[TOOL_CALLS]NAME[ARGS]{...}``;
* a ```` ```json ```` fenced block holding a call or a list of calls;
* the OpenAI shape ``{"type": "function", "function": {"name": ..., "arguments": "..."}}``.

``arguments`` may be an object or a JSON string of one. Malformed: invalid JSON (single quotes,
trailing commas, unbalanced braces), arguments that are not an object, a call without a name.
Text outside the calls is returned as the content.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

_ARG_KEYS = ("arguments", "parameters", "args", "input")
_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|\Z)", re.S)
_FUNCTION_TAG = re.compile(r"<function=([\w.\-]+)>(.*?)(?:</function>|\Z)", re.S)
_MISTRAL_NAMED = re.compile(r"\[TOOL_CALLS\]\s*([\w.\-]+)\s*\[ARGS\]\s*(.*?)(?=\[TOOL_CALLS\]|\Z)", re.S)
_MISTRAL = re.compile(r"\[TOOL_CALLS\]\s*(.*?)(?=\[TOOL_CALLS\]|\Z)", re.S)
_PYTHON_TAG = re.compile(r"<\|python_tag\|>(.*?)(?:<\|eom_id\|>|<\|eot_id\|>|\Z)", re.S)
_FENCE = re.compile(r"```(?:json|tool_call|tool)?\s*\n?(.*?)```", re.S)
#: Where a bare call object starts: ``{"name":`` / ``{'name':`` / ``{"function":`` / ``[{"name":``.
_BARE = re.compile(r"""(?:\[\s*)?\{\s*["']?(?:name|function|type)["']?\s*:""")
_NAME = re.compile(r"""["']name["']\s*:\s*["']([^"']+)["']""")


@dataclass
class ParsedCalls:
    """``content`` (text outside the calls), well-formed ``calls`` and malformed ``invalid`` ones."""

    content: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


def _hint(raw: str, exc: json.JSONDecodeError) -> str:
    why = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if "'" in raw and '"' not in raw.split(":", 1)[0]:
        why += "; JSON needs double quotes"
    return why


class _Collector:
    def __init__(self) -> None:
        self.out = ParsedCalls("")

    def bad(self, raw: str, error: str, name: str | None = None) -> None:
        if name is None:
            m = _NAME.search(raw)
            name = m.group(1) if m else None
        self.out.invalid.append({"name": name, "args": raw.strip()[:2000], "id": _new_id(), "error": error,
                                 "type": "invalid_tool_call"})

    def obj(self, obj: Any, raw: str, name: str | None = None, strict: bool = True) -> bool:
        """Add a decoded call (or list of calls); False when ``obj`` is not a call at all."""
        if isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
            return all([self.obj(o, json.dumps(o), None, strict) for o in obj])
        if not isinstance(obj, dict):
            if name is not None:
                self.bad(raw, f"the arguments of {name} must be a JSON object, got {type(obj).__name__}", name)
                return True
            return False
        if name is None and isinstance(obj.get("function"), dict):  # the OpenAI shape
            obj = obj["function"]
        if name is not None:
            args: Any = obj
        else:
            key = next((k for k in _ARG_KEYS if k in obj), None)
            if not isinstance(obj.get("name"), str) or not obj["name"].strip():
                if key is None and strict:
                    return False
                self.bad(raw, "the tool call has no \"name\" string")
                return True
            if key is None and strict:
                return False
            name, args = obj["name"].strip(), obj.get(key, {}) if key else {}
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                self.bad(args, f"the arguments of {name} are {_hint(args, exc)}", name)
                return True
        if not isinstance(args, dict):
            self.bad(raw, f"the arguments of {name} must be a JSON object, got {type(args).__name__}", name)
            return True
        self.out.calls.append({"name": name, "args": args, "id": _new_id(), "type": "tool_call"})
        return True

    def text(self, raw: str, name: str | None = None, strict: bool = False) -> bool:
        """Add the call(s) written in ``raw`` (JSON); malformed JSON is an invalid call."""
        body = raw.strip()
        fenced = _FENCE.fullmatch(body)
        if fenced:
            body = fenced.group(1).strip()
        try:
            obj = json.loads(body) if body else {}
        except json.JSONDecodeError as exc:
            if not body and name is None:
                return False
            self.bad(body, f"the tool call is {_hint(body, exc)}", name)
            return True
        return self.obj(obj, body, name, strict)


def read_arguments(name: str, raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A call's ``arguments`` (a JSON object string, an object, empty) → ``(args, None)``, or
    ``(None, why it cannot be read)``."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if not isinstance(raw, str):
        return None, f"the arguments of {name} must be a JSON object, got {type(raw).__name__}"
    try:
        args = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"the arguments of {name} are {_hint(raw, exc)}"
    if not isinstance(args, dict):
        return None, f"the arguments of {name} must be a JSON object, got {type(args).__name__}"
    return args, None


def parse_tool_calls(text: str) -> ParsedCalls:
    """Find the tool calls written in ``text`` (see the module docstring)."""
    col = _Collector()
    rest = text
    for pattern, named in ((_TAG, False), (_FUNCTION_TAG, True), (_MISTRAL_NAMED, True), (_MISTRAL, False),
                           (_PYTHON_TAG, False)):
        for m in list(pattern.finditer(rest)):
            if named:
                col.text(m.group(2), m.group(1))
            else:
                col.text(m.group(1))
            rest = rest.replace(m.group(0), " ", 1)
    for m in list(_FENCE.finditer(rest)):
        if _BARE.match(m.group(1).strip()):
            col.text(m.group(1), strict=True)
            rest = rest.replace(m.group(0), " ", 1)
    rest = _bare_calls(rest, col)
    col.out.content = " ".join(rest.split()) if col.out.calls or col.out.invalid else text.strip()
    return col.out


def _bare_calls(text: str, col: _Collector) -> str:
    """Call objects written without any marker, anywhere in ``text``; returns the text without them."""
    decoder = json.JSONDecoder()
    out, pos = [], 0
    while True:
        m = _BARE.search(text, pos)
        if m is None:
            out.append(text[pos:])
            return "".join(out)
        start = m.start()
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raw = text[start:]
            if _NAME.search(raw) or "'" in raw[:20]:  # an attempted call that is not JSON: up to the end
                out.append(text[pos:start])
                col.bad(raw, f"the tool call is {_hint(raw, exc)}")
                return "".join(out)
            out.append(text[pos:m.end()])
            pos = m.end()
            continue
        if col.obj(obj, text[start:end]):
            out.append(text[pos:start])
        else:
            out.append(text[pos:end])
        pos = end


__all__ = ["ParsedCalls", "parse_tool_calls", "read_arguments"]
