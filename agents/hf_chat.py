"""A local transformers chat model with tool calling, as a LangChain chat model.

``LocalHFChatModel(model="Qwen/Qwen2.5-1.5B-Instruct")`` runs the model in-process (CPU, CUDA or
MPS). Tools bound with ``bind_tools`` are passed to the model's own chat template
(``apply_chat_template(..., tools=...)``), and tool calls are parsed from the generated text in the
formats chat models use: Hermes / Qwen ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
Llama-3.x JSON ``{"name": ..., "parameters": {...}}``, and Mistral ``[TOOL_CALLS][...]``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

#: Files a local chat model needs (each a group of alternatives; weights: safetensors, single or sharded).
PLANNER_FILES = (("config.json",), ("tokenizer_config.json",), ("tokenizer.json", "tokenizer.model", "vocab.json"))
PLANNER_EXTRA = ("model-*.safetensors", "generation_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "merges.txt", "vocab.json", "tokenizer.model", "added_tokens.json")

_HERMES = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)
_MISTRAL = re.compile(r"\[TOOL_CALLS\]\s*(\[.*\])", re.S)


def parse_tool_calls(text: str) -> tuple[str, list[dict]]:
    """Split generated text into (remaining text, tool calls ``[{"name", "args", "id"}]``).

    Malformed JSON inside a tool-call marker is kept as a call with ``args={"__raw__": ...}`` and
    the name ``"invalid_tool_call"`` is *not* invented: such text stays in the content instead.
    """
    calls: list[dict] = []

    def add(obj: Any) -> bool:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return False
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return False
        if not isinstance(args, dict):
            return False
        calls.append({"name": obj["name"], "args": args, "id": f"call_{uuid.uuid4().hex[:12]}"})
        return True

    rest = text
    for m in list(_HERMES.finditer(text)):
        try:
            if add(json.loads(m.group(1))):
                rest = rest.replace(m.group(0), "")
        except json.JSONDecodeError:
            continue
    if not calls:
        m = _MISTRAL.search(text)
        if m:
            try:
                items = json.loads(m.group(1))
            except json.JSONDecodeError:
                items = []
            if isinstance(items, list) and all(add(i) for i in items) and items:
                rest = text[:m.start()]
    if not calls:
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                if add(json.loads(stripped)):
                    rest = ""
            except json.JSONDecodeError:
                pass
    return rest.strip(), calls


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
    model_config = ConfigDict(arbitrary_types_allowed=True)

    _lm: Any = PrivateAttr(default=None)
    _tok: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "local-transformers-chat"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any):
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
        self._tok, self._lm = tok, lm.to(dev).eval()

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import torch

        self._load()
        tools = kwargs.get("tools")
        with self._lock:
            ids = self._tok.apply_chat_template(to_chat_dicts(messages), tools=tools, add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
            ids = {k: v.to(self._lm.device) for k, v in ids.items()}
            gen = dict(max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                       pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id)
            if self.temperature > 0:
                gen["temperature"] = self.temperature
            with torch.no_grad():
                out = self._lm.generate(**ids, **gen)
        text = self._tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        for s in stop or []:
            text = text.split(s)[0]
        content, calls = parse_tool_calls(text) if tools else (text.strip(), [])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=content, tool_calls=calls))])


__all__ = ["LocalHFChatModel", "parse_tool_calls", "to_chat_dicts"]
