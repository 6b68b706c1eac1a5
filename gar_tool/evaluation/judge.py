"""The LLM judge: prompt templates (package data in ``prompts/``) and an OpenAI-compatible client.

Prompt files (``prompts/judge_*.md``) start with a header between two ``---`` lines listing the
template ``variables`` and the ``source`` of the text; the template is everything after the
closing ``---`` line, byte for byte, with ``str.format`` placeholders. They hold the judge prompts of
GAR's evaluation scripts verbatim, so re-judging asks exactly what the paper's judge was asked.

The client speaks the chat-completions protocol of any OpenAI-compatible server
(``POST {base_url}/chat/completions``: OpenAI, Azure's v1 endpoint, vLLM, Ollama, llama.cpp ...)
with the original request settings (temperature 0, top_p 1, no penalties). The HTTP transport is
injectable (``httpx.MockTransport`` in tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from gar_tool.errors import GARError, InputError
from gar_tool.templates import PromptTemplate, load_prompt, parse_prompt_file  # noqa: F401  (re-exported)

#: Providers accepted by ``--judge PROVIDER:MODEL``.
JUDGE_PROVIDERS = ("openai",)


class JudgeError(GARError):
    """The judge endpoint failed (HTTP error, malformed reply, call budget used up)."""


# ---------------------------------------------------------------------------------------- client
@dataclass(frozen=True)
class JudgeSpec:
    """``--judge PROVIDER:MODEL`` parsed."""

    provider: str
    model: str


def parse_judge_spec(spec: str) -> JudgeSpec:
    """``"openai:gpt-4o-2024-11-20"`` → ``JudgeSpec("openai", "gpt-4o-2024-11-20")``."""
    provider, sep, model = spec.partition(":")
    if not sep or not model.strip():
        raise InputError(f"--judge must look like PROVIDER:MODEL (e.g. openai:gpt-4o), got {spec!r}")
    if provider not in JUDGE_PROVIDERS:
        raise InputError(f"unknown judge provider {provider!r}; expected one of: {', '.join(JUDGE_PROVIDERS)}")
    return JudgeSpec(provider, model.strip())


class ChatJudge:
    """Minimal OpenAI-compatible chat-completions client for judging.

    Args:
        model: model name sent in every request.
        base_url: server root including the API prefix, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:8007/v1``; requests go to ``{base_url}/chat/completions``.
        api_key: sent as ``Authorization: Bearer ...`` when given.
        transport: an ``httpx`` transport (``httpx.MockTransport`` in tests); default: network.
        timeout: seconds per request.
        max_retries: extra attempts after a transport error, HTTP 429 or 5xx (backoff 1, 2, 4 s ...).
        max_calls: budget of requests for this client (like the original ``--api-call-limit``);
            ``None`` = unlimited.
        sleep: called with the backoff delay (injectable so tests do not wait).
    """

    def __init__(self, model: str, base_url: str, api_key: str | None = None, *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 120.0,
                 max_retries: int = 2, max_calls: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise InputError(f"--judge-base-url must be an http(s) URL, got {base_url!r}")
        self.model = model
        self.endpoint = str(base_url).rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(transport=transport, timeout=timeout, headers=headers)
        self.max_retries = max(0, int(max_retries))
        self.max_calls = max_calls
        self.calls = 0
        self._sleep = sleep

    def __enter__(self) -> "ChatJudge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def complete(self, content: str | list[dict[str, Any]], *, max_tokens: int = 1000,
                 temperature: float = 0.0) -> str:
        """One user turn (a string or OpenAI content parts) → the reply text (``""`` if empty)."""
        if self.max_calls is not None and self.calls >= self.max_calls:
            raise JudgeError(f"judge call budget of {self.max_calls} requests used up; rerun to "
                             "continue (finished items are kept)")
        self.calls += 1
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens, "temperature": temperature, "top_p": 1,
                "frequency_penalty": 0, "presence_penalty": 0}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = self._client.post(self.endpoint, json=body)
            except httpx.TransportError as exc:
                if last:
                    raise JudgeError(f"judge endpoint {self.endpoint} unreachable: {exc}") from None
                self._sleep(2.0 ** attempt)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                if not last:
                    self._sleep(2.0 ** attempt)
                    continue
            if resp.status_code >= 400:
                raise JudgeError(f"judge endpoint {self.endpoint} answered HTTP {resp.status_code}: "
                                 f"{resp.text[:300]}")
            return self._content(resp)
        raise JudgeError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _content(self, resp: httpx.Response) -> str:
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(f"judge endpoint {self.endpoint}: expected an OpenAI chat completion "
                             f"(choices[0].message.content), got {resp.text[:300]!r}") from None
        return content if isinstance(content, str) else ""


__all__ = [
    "JUDGE_PROVIDERS", "JudgeError", "PromptTemplate", "parse_prompt_file", "load_prompt", "JudgeSpec",
    "parse_judge_spec", "ChatJudge",
]
