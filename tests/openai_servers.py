"""Behaviours of real OpenAI-compatible servers, for :class:`planner_support.OpenAIStub`.

Each check refuses a request the way the named server does (status code and message), so a test
fails exactly where that server would; each reply wrapper answers as that server does. They were
written from what was observed against llama-cpp-python's server, vLLM and api.openai.com.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from planner_support import Refuse

#: What a request-schema-strict server accepts at the top level of a chat-completions body.
KNOWN_FIELDS = frozenset({"model", "messages", "tools", "tool_choice", "temperature", "top_p", "max_tokens", "n",
                          "stream", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
                          "response_format", "user", "logprobs", "top_logprobs", "parallel_tool_calls"})


def ignores_tools_unless_tool_choice(reply: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """llama-cpp-python's server (default chat format): without ``tool_choice`` the tools are not
    offered to the model, which answers in prose."""
    def answer(body: dict) -> dict:
        if "tool_choice" not in body:
            return {"content": "It is probably a red cup on a table."}
        return reply(body)
    return answer


def rejects_null_content(body: dict) -> None:
    """llama-cpp-python: ``content: null`` in an assistant message is a 500."""
    for m in body["messages"]:
        if m.get("role") == "assistant" and m.get("content") is None:
            raise Refuse(500, "Internal Server Error: 'NoneType' object is not subscriptable")


def content_parts_in_user_messages_only(body: dict) -> None:
    """Servers whose chat templates take strings: content parts outside user messages are a 400."""
    for m in body["messages"]:
        if m.get("role") != "user" and isinstance(m.get("content"), list):
            raise Refuse(400, f"{m['role']} message content must be a string")


def images_in_user_messages_only(body: dict) -> None:
    """api.openai.com: an image part in a tool (or system / assistant) message is a 400."""
    for m in body["messages"]:
        parts = m.get("content") if isinstance(m.get("content"), list) else []
        if m.get("role") != "user" and any(isinstance(p, dict) and p.get("type") == "image_url" for p in parts):
            raise Refuse(400, "Image URLs are only allowed for messages with role 'user'")


def tool_choice_needs_tools(body: dict) -> None:
    """api.openai.com: ``tool_choice`` / ``parallel_tool_calls`` without ``tools`` is a 400."""
    if not body.get("tools"):
        for key in ("tool_choice", "parallel_tool_calls"):
            if key in body:
                raise Refuse(400, f"'{key}' is only allowed when 'tools' are specified")


def history_arguments_are_json(body: dict) -> None:
    """vLLM: the ``arguments`` of every tool call in the history must be a JSON object string."""
    for m in body["messages"]:
        for c in m.get("tool_calls") or []:
            args = c.get("function", {}).get("arguments")
            try:
                ok = isinstance(json.loads(args), dict)
            except (TypeError, json.JSONDecodeError):
                ok = False
            if not ok:
                raise Refuse(400, f"tool call arguments are not a JSON object: {args!r}")
            if not c.get("id") or not c.get("function", {}).get("name"):
                raise Refuse(400, "a tool call in the history has no id or no name")


def tool_messages_answer_calls(body: dict) -> None:
    """api.openai.com: every tool message answers a call of the assistant message before it, every
    call is answered, and call ids are unique."""
    pending: list[str] = []
    seen: set[str] = set()
    for m in body["messages"]:
        role = m.get("role")
        if role == "assistant":
            if pending:
                raise Refuse(400, f"tool calls {pending} were not answered by tool messages")
            ids = [c.get("id") for c in m.get("tool_calls") or []]
            if len(set(ids)) != len(ids) or seen & set(ids):
                raise Refuse(400, f"duplicate tool call ids {ids}")
            seen |= set(ids)
            pending = list(ids)
        elif role == "tool":
            if m.get("tool_call_id") not in pending:
                raise Refuse(400, "messages with role 'tool' must be a response to a preceding message with "
                                  "'tool_calls'")
            pending.remove(m["tool_call_id"])
        elif pending and role != "user":
            raise Refuse(400, f"tool calls {pending} were not answered by tool messages")


def rejects_unknown_fields(body: dict) -> None:
    """A server with a strict request schema: unknown top-level fields are a 400 (and so a
    token limit sent as ``max_completion_tokens`` instead of ``max_tokens``)."""
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise Refuse(400, f"unknown request fields {unknown}")


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def grammar_problems(schema: dict, max_repeat: int = 4) -> list[str]:
    """What a GBNF-style grammar converter (llama.cpp's json-schema-to-grammar) cannot take or blows
    up on: string lengths, patterns and formats, long repetitions, ``$ref``, ``oneOf`` / ``allOf``,
    tuple forms and conditionals."""
    bad = []
    for node in _walk(schema):
        for key in ("maxLength", "pattern", "format", "$ref", "oneOf", "allOf", "not", "if", "prefixItems",
                    "patternProperties", "dependentSchemas"):
            if key in node:
                bad.append(f"{key}={node[key]!r}"[:60])
        for key in ("minItems", "maxItems", "minLength"):
            if isinstance(node.get(key), int) and node[key] > max_repeat:
                bad.append(f"{key}={node[key]}")
    return bad


def grammar_compiler(body: dict) -> None:
    """llama.cpp with grammar-constrained tool calls: a schema it cannot turn into a grammar makes
    it fail (the issue saw ``maxLength`` 2000 crash the server)."""
    for t in body.get("tools") or []:
        problems = grammar_problems(t["function"].get("parameters", {}))
        if problems:
            raise Refuse(500, f"failed to build the grammar of {t['function']['name']}: {problems[:3]}")


def strict_problems(schema: dict) -> list[str]:
    """Where a schema breaks OpenAI strict mode: objects must list every property in ``required``
    and set ``additionalProperties: false``; no ``default`` or length / count / value bounds."""
    bad = []
    for node in _walk(schema):
        if node.get("type") == "object" or "properties" in node:
            props = list(node.get("properties", {}))
            if sorted(node.get("required", [])) != sorted(props):
                bad.append(f"required {node.get('required')} != properties {props}")
            if node.get("additionalProperties") is not False:
                bad.append("additionalProperties is not false")
        for key in ("default", "minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum", "pattern",
                    "format", "oneOf", "$ref"):
            if key in node and not isinstance(node.get(key), dict):
                bad.append(key)
    return bad


def strict_mode(body: dict) -> None:
    """api.openai.com: a tool with ``"strict": true`` must have a strict-mode schema."""
    for t in body.get("tools") or []:
        fn = t["function"]
        if fn.get("strict"):
            problems = strict_problems(fn.get("parameters", {}))
            if problems:
                raise Refuse(400, f"Invalid schema for function '{fn['name']}': {problems[:3]}")


__all__ = ["ignores_tools_unless_tool_choice", "rejects_null_content", "content_parts_in_user_messages_only",
           "images_in_user_messages_only", "tool_choice_needs_tools", "history_arguments_are_json",
           "tool_messages_answer_calls", "rejects_unknown_fields", "grammar_compiler", "grammar_problems",
           "strict_mode", "strict_problems", "KNOWN_FIELDS"]
