"""A local transformers chat model with tool calling, as a LangChain chat model.

``LocalHFChatModel(model="Qwen/Qwen2.5-1.5B-Instruct")`` runs the model in-process (CPU, CUDA or
MPS). Tools bound with ``bind_tools`` are passed to the model's own chat template
(``apply_chat_template(..., tools=...)``), and tool calls are parsed from the generated text in the
formats chat models use (Hermes / Qwen ``<tool_call>``, Llama-3.x JSON, Mistral ``[TOOL_CALLS]``;
see :mod:`gar_agents.toolcall_text`). A malformed call is returned as an ``invalid_tool_calls``
entry with the reason, never as the answer. ``max_time`` bounds one generation in seconds.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from .toolcall_text import parse_tool_calls

#: Files a local chat model needs (each a group of alternatives; weights: safetensors, single or sharded).
PLANNER_FILES = (("config.json",), ("tokenizer_config.json",), ("tokenizer.json", "tokenizer.model", "vocab.json"))
PLANNER_EXTRA = ("model-*.safetensors", "generation_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "merges.txt", "vocab.json", "tokenizer.model", "added_tokens.json")


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[dict]:
    """LangChain messages → the ``[{"role", "content", ...}]`` list chat templates take."""
    out: list[dict] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": _text(m.content)})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": _text(m.content)})
        elif isinstance(m, AIMessage):
            d: dict[str, Any] = {"role": "assistant", "content": _text(m.content)}
            if m.tool_calls:
                d["tool_calls"] = [{"type": "function", "id": c.get("id"),
                                    "function": {"name": c["name"], "arguments": c["args"]}}
                                   for c in m.tool_calls]
            out.append(d)
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "content": _text(m.content), "tool_call_id": m.tool_call_id,
                        "name": getattr(m, "name", None)})
        else:
            out.append({"role": "user", "content": _text(m.content)})
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        return "\n".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


class LocalHFChatModel(BaseChatModel):
    """In-process transformers chat model (loaded on first use; safetensors only, no remote code)."""

    model: str
    device: str | None = None
    dtype: str | None = None
    max_new_tokens: int = 512
    temperature: float = 0.0
    max_time: float | None = None
    model_config = ConfigDict(arbitrary_types_allowed=True)

    _lm: Any = PrivateAttr(default=None)
    _tok: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "local-transformers-chat"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Tools go to the chat template; ``tool_choice`` is accepted and ignored (the template
        always offers the tools)."""
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _load(self) -> None:
        if self._lm is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from gar_tool.hub import check_safetensors, loading, resolve_model_dir
        from gar_tool.runtime import pick_device, pick_dtype, quiet_transformers

        dev = pick_device(self.device)
        directory = resolve_model_dir(self.model, PLANNER_FILES, what="planner model", option="--planner hf:DIR "
                                      "(or use an API planner: openai:MODEL --planner-base-url URL)",
                                      extra=PLANNER_EXTRA)
        check_safetensors(directory, "planner model")
        with quiet_transformers(), loading("planner model", directory):
            tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
            lm = AutoModelForCausalLM.from_pretrained(str(directory), dtype=pick_dtype(self.dtype, dev),
                                                      use_safetensors=True, local_files_only=True)
        self._tok, self._lm = tok, lm.to(dev).eval()  # type: ignore[arg-type]

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import torch

        self._load()
        tools = kwargs.get("tools")
        with self._lock:
            ids = self._tok.apply_chat_template(to_chat_dicts(messages), tools=tools, add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
            ids = {k: v.to(self._lm.device) for k, v in ids.items()}
            gen: dict[str, Any] = dict(max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                                       pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id)
            if self.temperature > 0:
                gen["temperature"] = self.temperature
            if self.max_time is not None:
                gen["max_time"] = self.max_time
            with torch.no_grad():
                out = self._lm.generate(**ids, **gen)
        text = self._tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        for s in stop or []:
            text = text.split(s)[0]
        if not tools:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text.strip()))])
        parsed = parse_tool_calls(text)
        msg = AIMessage(content=parsed.content, tool_calls=parsed.calls, invalid_tool_calls=parsed.invalid)
        return ChatResult(generations=[ChatGeneration(message=msg)])


__all__ = ["LocalHFChatModel", "parse_tool_calls", "to_chat_dicts"]
