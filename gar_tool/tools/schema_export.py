"""The exported JSON schemas of the tools: one transformation of the pydantic models, two profiles.

Every adapter (LangChain, MCP, HTTP, ``gar tools --schema``) publishes what this module returns, so
a tool looks the same to every client.

**Clean** (both profiles): ``$ref`` / ``$defs`` inlined (the models are not recursive), ``oneOf``
written as ``anyOf``, pydantic's ``title`` keys removed; in input schemas an optional argument is
its plain type (omit it to get the default) rather than ``anyOf [..., null]``. Output schemas keep
``null`` where a value can be null, so clients validating ``structuredContent`` accept real results.

**Simple** (every input schema): nothing a grammar-constrained decoder (llama.cpp's GBNF
converter, vLLM / SGLang guided decoding) turns into a large grammar or cannot compile — no
``maxLength``, ``pattern`` or ``format``, and ``minItems`` / ``maxItems`` / ``minLength`` only up to
:data:`SMALL_REPEAT` (a box has 4 numbers, a point 2). The bounds that are dropped are enforced in
validation (:mod:`gar_tool.tools.bounds`) and stated in the descriptions.

**Strict** (``strict=True``, OpenAI strict function calling): the simple schema where every
object lists all its properties in ``required`` and has ``additionalProperties: false``, an
optional property is ``anyOf [T, {"type": "null"}]`` (the input models read ``null`` as the
default), and no ``default`` or value / length / count bound is left (strict mode has rejected
``minLength``, ``minItems``, ``minimum`` and the like; validation checks them and the descriptions
state them).
"""

from __future__ import annotations

import copy
from typing import Any

#: Largest repetition count kept in a simple schema (minItems / maxItems / minLength).
SMALL_REPEAT = 4

_DROPPED = frozenset({"maxLength", "pattern", "format"})
_BOUNDED = frozenset({"minItems", "maxItems", "minLength"})
_NULL = {"type": "null"}
_NOT_STRICT = frozenset({"default", "minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum",
                         "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "pattern", "format"})


# --------------------------------------------------------------------------- clean
def _clean(node: Any, defs: dict[str, Any], inputs: bool) -> Any:
    if isinstance(node, list):
        return [_clean(v, defs, inputs) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _clean(merged, defs, inputs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "title"):
            continue
        if key == "properties":
            out[key] = {name: _property(sub, defs, inputs) for name, sub in value.items()}
        elif key == "oneOf":
            out["anyOf"] = _clean(value, defs, inputs)
        else:
            out[key] = _clean(value, defs, inputs)
    return out


def _property(node: dict[str, Any], defs: dict[str, Any], inputs: bool) -> Any:
    prop = _clean(node, defs, inputs)
    if not inputs or "anyOf" not in prop or prop.get("default", 0) is not None:
        return prop
    branches = [b for b in prop["anyOf"] if b != _NULL]
    if len(branches) == len(prop["anyOf"]):
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    if len(branches) == 1:
        return {**branches[0], **rest}
    return {"anyOf": branches, **rest}


def clean_schema(schema: dict[str, Any], *, inputs: bool) -> dict[str, Any]:
    """A pydantic JSON schema without ``$ref``/``$defs``/titles (see the module docstring); input
    schemas are also made *simple*."""
    out = _clean(schema, schema.get("$defs", {}), inputs)
    if inputs:
        out.pop("description", None)  # the tool description says it; parameters stay plain
        out = simple_schema(out)
    return out


# --------------------------------------------------------------------------- simple
def simple_schema(schema: Any) -> Any:
    """``schema`` without the keywords grammar-constrained decoders choke on (module docstring)."""
    if isinstance(schema, list):
        return [simple_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: simple_schema(sub) for name, sub in value.items()}
        elif key in _DROPPED or (key in _BOUNDED and isinstance(value, int) and value > SMALL_REPEAT):
            continue
        else:
            out[key] = simple_schema(value)
    return out


# --------------------------------------------------------------------------- strict
def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in node:
        branches = node["anyOf"] if _NULL in node["anyOf"] else [*node["anyOf"], _NULL]
        return {**node, "anyOf": branches}
    description = node.get("description")
    inner = {k: v for k, v in node.items() if k != "description"}
    out: dict[str, Any] = {"anyOf": [inner, _NULL]}
    if description is not None:
        out["description"] = description
    return out


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k not in _NOT_STRICT and k != "properties"}
    if "properties" in node:
        required = set(node.get("required", []))
        props = {}
        for name, sub in node["properties"].items():
            prop = _strict(sub)
            props[name] = prop if name in required else _nullable(prop)
        out["properties"] = props
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict-mode form of a simple input schema (see the module docstring)."""
    return _strict(copy.deepcopy(schema))


__all__ = ["SMALL_REPEAT", "clean_schema", "simple_schema", "strict_schema"]
