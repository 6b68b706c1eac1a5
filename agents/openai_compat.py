"""``ChatOpenAI`` that speaks the OpenAI wire format the way every OpenAI-compatible server accepts.

LangChain's ``ChatOpenAI`` writes requests for api.openai.com. Servers that copy the API (vLLM,
llama.cpp / llama-cpp-python, LM Studio, Ollama, ...) differ in what they reject, so
:class:`CompatChatOpenAI` normalises every request body before it is sent:

* an assistant message's ``content`` is ``""``, never ``null`` (llama-cpp-python answers 500 to
  ``null`` next to ``tool_calls``; an empty string works with every server, OpenAI included);
* ``system``, ``tool`` and ``assistant`` contents that are lists of text parts become one string
  (several servers accept content parts in user messages only);
* every ``tool_calls[].function.arguments`` is a JSON object string (``"{}"`` when the model's
  own was malformed: the planner answers such a call with an error, and servers that parse the
  history refuse invalid JSON there);
* to any server other than api.openai.com, the token limit is sent as ``max_tokens`` — the
  field every server knows — rather than OpenAI's newer ``max_completion_tokens``.

Replies are checked before LangChain reads them: a tool call whose ``arguments`` are not a JSON
object (cut-off or single-quoted JSON, a list, a number) or that has no function name becomes an
``invalid_tool_calls`` entry saying so — LangChain itself would raise on some of these and
end the run.

``tool_choice`` is sent by the planner when it binds tools (``"auto"``), because some servers
(llama-cpp-python) offer the tools to the model only when it is set; it is never sent without
tools (OpenAI answers 400 to that).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI

from .toolcall_text import read_arguments

_JOIN_ROLES = ("system", "tool", "assistant", "developer")


def normalise_message(message: dict[str, Any]) -> dict[str, Any]:
    """One chat-completions message dict made acceptable to every server (see the module doc)."""
    role = message.get("role")
    content = message.get("content")
    if role == "assistant" and content is None:
        message["content"] = ""
    elif role in _JOIN_ROLES and isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" for p in content):
        message["content"] = "\n".join(str(p.get("text", "")) for p in content)
    for call in message.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments")
        if isinstance(args, dict):
            fn["arguments"] = json.dumps(args, ensure_ascii=False)
        elif not _is_json_object(args):
            fn["arguments"] = "{}"
    return message


def _is_json_object(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def is_openai_host(base_url: str | None) -> bool:
    """Whether requests go to OpenAI itself (no base URL, or an ``*.openai.com`` host)."""
    if not base_url:
        return True
    host = (urlparse(base_url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def split_bad_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove the malformed tool calls from a reply ``message`` dict (in place); return them as
    LangChain ``InvalidToolCall`` dicts. Well-formed calls get their arguments as a JSON string."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return []
    keep, bad = [], []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        raw = fn.get("arguments") if isinstance(fn, dict) else None
        cid = call.get("id") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(name, str) or not name.strip():
            bad.append({"name": None, "args": json.dumps(call)[:2000], "id": cid, "type": "invalid_tool_call",
                        "error": "the tool call has no function name"})
            continue
        args, error = read_arguments(name, raw)
        if error is not None:
            bad.append({"name": name, "args": raw if isinstance(raw, str) else json.dumps(raw), "id": cid,
                        "type": "invalid_tool_call", "error": error})
            continue
        fn["arguments"] = json.dumps(args, ensure_ascii=False)
        keep.append(call)
    message["tool_calls"] = keep or None
    return bad


class CompatChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` whose request bodies every OpenAI-compatible server accepts, and which reads
    malformed tool calls in replies as invalid calls (see the module docstring)."""

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        data = response if isinstance(response, dict) else None
        if data is None and hasattr(response, "model_dump"):
            data = response.model_dump(exclude={"choices": {"__all__": {"message": {"parsed"}}}}, warnings=False)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            return super()._create_chat_result(response, generation_info)
        bad = [split_bad_calls(c["message"]) if isinstance(c, dict) and isinstance(c.get("message"), dict) else []
               for c in data["choices"]]
        result = super()._create_chat_result(data, generation_info)
        for gen, extra in zip(result.generations, bad):
            if extra:
                gen.message.invalid_tool_calls.extend(extra)  # type: ignore[attr-defined]
        return result

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages") or []:
            if isinstance(message, dict):
                normalise_message(message)
        if not is_openai_host(self.openai_api_base) and "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        return payload


__all__ = ["CompatChatOpenAI", "normalise_message", "split_bad_calls", "is_openai_host"]
