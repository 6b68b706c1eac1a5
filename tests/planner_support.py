"""Scripted chat models for planner tests: they emit real tool calls (LangChain ``AIMessage``
tool calls, or OpenAI wire-format replies from a stub server), as a function of the conversation.
They test orchestration, not intelligence."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

Script = Callable[[list[BaseMessage], bool], AIMessage]


def call(name: str, **args: Any) -> dict:
    return {"name": name, "args": args, "id": f"call_{name}_{time.monotonic_ns()}"}


def ids_in_last_tool_message(messages: list[BaseMessage]) -> list[str]:
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            return list(dict.fromkeys(re.findall(r"\br\d+\b", str(m.content))))
    return []


class ScriptedChatModel(BaseChatModel):
    """Each call runs the next step of ``steps`` (functions of (messages, tools_bound) → AIMessage,
    or fixed AIMessages); after the last step it repeats the last one. Records what it saw."""

    steps: list[Any]
    tool_names: list[str] = []
    _i: int = PrivateAttr(default=0)
    _seen: list = PrivateAttr(default_factory=list)
    _bound: bool = PrivateAttr(default=False)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[tuple[list[BaseMessage], bool]]:
        return self._seen

    def bind_tools(self, tools, **kwargs):
        self.tool_names = [t.name for t in tools]
        return self.bind(tools_bound=True)

    def _generate(self, messages, stop=None, run_manager=None, tools_bound: bool = False, **kwargs) -> ChatResult:
        step = self.steps[min(self._i, len(self.steps) - 1)]
        self._i += 1
        self._seen.append((list(messages), tools_bound))
        msg = step(list(messages), tools_bound) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=msg)])


class OpenAIStub:
    """A minimal OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 (a thread),
    replying from ``replies``: functions of the request body returning an OpenAI ``message`` dict."""

    def __init__(self, replies: list[Callable[[dict], dict]]) -> None:
        import uvicorn

        self.replies = replies
        self.requests: list[dict] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request):
            body = await request.json()
            self.requests.append(body)
            try:
                reply = self.replies[min(len(self.requests), len(self.replies)) - 1](body)
            except Exception as exc:  # a scripted refusal: answer as OpenAI does, with a 400
                return JSONResponse({"error": {"message": str(exc), "type": "invalid_request_error"}}, 400)
            return {"id": f"cmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
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
    return {"content": None, "tool_calls": [{"id": f"call_{i}", "type": "function",
                                             "function": {"name": name, "arguments": json.dumps(args)}}]}


def last_tool_text(body: dict) -> str:
    for m in reversed(body["messages"]):
        if m.get("role") == "tool":
            return str(m.get("content"))
    return ""
