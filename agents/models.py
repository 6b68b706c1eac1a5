"""Planner chat models from one spec string.

=====================  ===========================================================================
spec                   model
=====================  ===========================================================================
``openai:MODEL``       :class:`~gar_agents.openai_compat.CompatChatOpenAI` (``ChatOpenAI`` with
                       request bodies every OpenAI-compatible server accepts); ``base_url``
                       (``--planner-base-url``) for any OpenAI-compatible server (vLLM, llama.cpp,
                       LM Studio, ...); key from ``OPENAI_API_KEY`` (a placeholder is sent to local
                       servers that need none)
``ollama:MODEL``       Ollama through its OpenAI-compatible endpoint (``OLLAMA_HOST`` or
                       ``http://127.0.0.1:11434``)
``anthropic:MODEL``    ``langchain_anthropic.ChatAnthropic`` (``pip install gar-agent[anthropic]``);
                       key from ``ANTHROPIC_API_KEY``
``hf:REPO_OR_DIR``     a local transformers chat model run in-process (the embedded default)
=====================  ===========================================================================

``timeout`` is seconds per request (API planners, default :data:`DEFAULT_TIMEOUT`; for ``hf:`` the
longest generation, after which it stops, default none) and ``retries`` how many times a request
that timed out, could not connect or got a 5xx / 429 answer is sent again (API planners).
"""

from __future__ import annotations

import os
from typing import Any

from gar_tool.errors import InputError

DEFAULT_PLANNER = "hf:Qwen/Qwen2.5-1.5B-Instruct"
PROVIDERS = ("openai", "ollama", "anthropic", "hf")
#: Seconds per planner request, and retries, when not given.
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 1


def check_timeout(timeout: Any, what: str = "timeout") -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InputError(f"{what} must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def check_retries(retries: Any, what: str = "retries") -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InputError(f"{what} must be an integer >= 0, got {retries!r}")
    return retries


def make_chat_model(spec: Any = DEFAULT_PLANNER, *, base_url: str | None = None, api_key: str | None = None,
                    temperature: float = 0.0, timeout: float | None = None, retries: int = DEFAULT_RETRIES,
                    max_tokens: int | None = 1024) -> Any:
    """Chat model for ``spec`` (see the module table); a LangChain chat model object is returned as is."""
    if not isinstance(spec, str):
        return spec
    max_time = None if timeout is None else check_timeout(timeout)
    timeout, retries = DEFAULT_TIMEOUT if max_time is None else max_time, check_retries(retries)
    provider, sep, name = spec.partition(":")
    provider = provider.strip().lower()
    if not sep or not name.strip():
        raise InputError(f"planner spec {spec!r} must look like PROVIDER:MODEL with PROVIDER one of {PROVIDERS}")
    name = name.strip()
    if provider in ("openai", "ollama"):
        try:
            from .openai_compat import CompatChatOpenAI
        except ImportError:
            raise InputError("the openai: planner needs langchain-openai (pip install gar-agent[openai])") from None
        if provider == "ollama" and base_url is None:
            host = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434").rstrip("/")
            base_url = host if host.startswith("http") else f"http://{host}"
            base_url += "/v1"
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if key is None:
            if base_url is None:
                raise InputError("openai: planner needs OPENAI_API_KEY, or --planner-base-url for a local server")
            key = "not-needed"
        kwargs: dict[str, Any] = {"model": name, "base_url": base_url, "api_key": key, "temperature": temperature,
                                  "timeout": timeout, "max_retries": retries, "max_tokens": max_tokens}
        return CompatChatOpenAI(**kwargs)
    if provider == "anthropic":
        try:
            from langchain_anthropic import ChatAnthropic
        except ImportError:
            raise InputError("the anthropic: planner needs langchain-anthropic "
                             "(pip install gar-agent[anthropic])") from None
        akw: dict[str, Any] = {"model": name, "temperature": temperature, "timeout": timeout,
                               "max_retries": retries, "max_tokens": max_tokens or 1024}
        if base_url:
            akw["base_url"] = base_url
        if api_key:
            akw["api_key"] = api_key
        return ChatAnthropic(**akw)
    if provider == "hf":
        from .hf_chat import LocalHFChatModel

        return LocalHFChatModel(model=name, temperature=temperature, max_new_tokens=max_tokens or 512,
                                max_time=max_time)
    raise InputError(f"unknown planner provider {provider!r} in {spec!r}; expected one of {PROVIDERS}")


__all__ = ["make_chat_model", "DEFAULT_PLANNER", "PROVIDERS", "DEFAULT_TIMEOUT", "DEFAULT_RETRIES",
           "check_timeout", "check_retries"]
