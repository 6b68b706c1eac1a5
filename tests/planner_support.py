"""Scripted chat models for planner tests: they emit real tool calls (LangChain ``AIMessage``
tool calls, or OpenAI wire-format replies from a stub server), as a function of the conversation.
They test orchestration, not intelligence."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from typing import Any, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from langchain_core.messages import BaseMessage, ToolMessage

from gar_agents.scripted import ScriptedChatModel, call  # noqa: F401  (re-exported for the tests)


def ids_in_last_tool_message(messages: list[BaseMessage]) -> list[str]:
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            return list(dict.fromkeys(re.findall(r"\br\d+\b", str(m.content))))
    return []


class Refuse(Exception):
    """Raised by a stub ``check`` to refuse a request the way a server does: HTTP ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OpenAIStub:
    """A minimal OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 (a thread),
    replying from ``replies``: functions of the request body returning an OpenAI ``message`` dict
    (a reply that raises is refused with a 400, as OpenAI refuses a bad request).

    ``checks`` are functions of the body that raise :class:`Refuse` to refuse it (the behaviours
    of real servers, see ``openai_servers``); ``delay(n, body)`` gives seconds to wait before
    answering request ``n`` (1-based); ``response_id`` fixes the response id (some servers send
    the same one every time). ``requests`` holds every body received, refused ones included."""

    def __init__(self, replies: list[Callable[[dict], dict]], *, checks: Sequence[Callable[[dict], None]] = (),
                 delay: Callable[[int, dict], float] | None = None, response_id: str | None = None) -> None:
        import uvicorn

        self.replies = replies
        self.checks = list(checks)
        self.delay = delay
        self.requests: list[dict] = []
        self.answered = 0
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request):
            body = await request.json()
            self.requests.append(body)
            n = len(self.requests)
            if self.delay is not None:
                await asyncio.sleep(self.delay(n, body))
            try:
                for check in self.checks:
                    check(body)
            except Refuse as exc:
                return JSONResponse({"error": {"message": str(exc), "type": "server_error"}}, exc.status)
            try:
                reply = self.replies[min(self.answered + 1, len(self.replies)) - 1](body)
            except Exception as exc:  # a scripted refusal: answer as OpenAI does, with a 400
                return JSONResponse({"error": {"message": str(exc), "type": "invalid_request_error"}}, 400)
            self.answered += 1
            return {"id": response_id or f"cmpl-{n}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "message": {"role": "assistant", **reply},
                                 "finish_reason": "tool_calls" if reply.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "OpenAIStub":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def openai_tool_call(name: str, args: dict, i: int = 0) -> dict:
    return openai_tool_calls([(name, args)], i)


def openai_tool_calls(calls: Sequence[tuple[str, Any]], first: int = 0) -> dict:
    """An assistant message with several tool calls (``args`` a dict, or a raw arguments string)."""
    return {"content": None, "tool_calls": [
        {"id": f"call_{first + k}", "type": "function",
         "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
        for k, (name, args) in enumerate(calls)]}


def last_tool_text(body: dict) -> str:
    for m in reversed(body["messages"]):
        if m.get("role") == "tool":
            return str(m.get("content"))
    return ""
