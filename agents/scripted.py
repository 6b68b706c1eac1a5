"""A scripted chat model: replies from a fixed list of steps, for tests, demos and benchmarks.

``ScriptedChatModel(steps=[...])`` answers its n-th call with ``steps[n]`` — a fixed
``AIMessage`` (with ``tool_calls`` for tool steps) or a function ``(messages, tools_bound) ->
AIMessage`` of the conversation so far — and repeats the last step after the end. It records what
it was sent (:attr:`calls`) and the names of the tools bound to it (:attr:`tool_names`). It plans
nothing: it exercises the orchestration around a model, not a model.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

Script = Callable[[list[BaseMessage], bool], AIMessage]


def call(name: str, **args: Any) -> dict[str, Any]:
    """A tool call for an ``AIMessage(tool_calls=[...])`` with a fresh id."""
    return {"name": name, "args": args, "id": f"call_{name}_{time.monotonic_ns()}"}


class ScriptedChatModel(BaseChatModel):
    """See the module docstring."""

    steps: list[Any]
    tool_names: list[str] = []
    _i: int = PrivateAttr(default=0)
    _seen: list = PrivateAttr(default_factory=list)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[tuple[list[BaseMessage], bool]]:
        """``(messages, tools_bound)`` of every call so far."""
        return self._seen

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self.tool_names = [t["function"]["name"] if isinstance(t, dict) else t.name for t in tools]
        return self.bind(tools_bound=True)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  tools_bound: bool = False, **kwargs: Any) -> ChatResult:
        with self._lock:
            step = self.steps[min(self._i, len(self.steps) - 1)]
            self._i += 1
            self._seen.append((list(messages), tools_bound))
        msg = step(list(messages), tools_bound) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=msg)])


__all__ = ["ScriptedChatModel", "Script", "call"]
