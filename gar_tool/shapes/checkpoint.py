"""A tokenizer for the shapes world and a freshly initialised GAR checkpoint to train from.

:func:`build_tokenizer` trains a small byte-level BPE (``tokenizers``) on the texts the shapes
world produces — GAR's prompt layout and chat template, the questions, options and answers — so
that answers are one or two tokens; any other text still encodes, byte by byte. It carries GAR's
special tokens by name (``<|image|>``, ``<|reserved_special_token_{k+2}|>`` = crop token of
``<Prompt{k}>``, ``<Prompt0..4>``, ``<NO_Prompt>``, chat headers, ``<|eot_id|>``) as
:mod:`gar_tool.gar.processing.vocab` resolves them, and the PerceptionLM chat template.

:func:`init_checkpoint` writes a random GAR checkpoint in the released layout with that tokenizer
and the mask patch embedding set to zero (as GAR's training initialises it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gar_tool.gar.processing.prompts import PromptPlan, PromptSlot, render_user_text
from gar_tool.regions.refs import DESCRIBE_INSTRUCTION, prompt_token

#: Special tokens, in id order (ids 0..n-1), with the crop tokens of <Prompt0..4> by their names.
SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|video|>",
                  "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>",
                  "<|reserved_special_token_5|>", "<|reserved_special_token_6|>")
PROMPT_SLOTS = 5
#: Llama-3's pre-tokenizer pattern (the PerceptionLM tokenizer splits text this way).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB_SIZE = 768
#: The PerceptionLM template's default system message, and the shorter one of the shapes-world
#: model (its 40-token preamble would be a fifth of every sequence of a model this small).
PLM_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content "
              "that the user provides, and assist the user with a variety of tasks using natural language.")
SHAPES_SYSTEM = "You answer questions about shapes."


def chat_template(system_message: str = SHAPES_SYSTEM) -> str:
    """PerceptionLM's chat template with another default system message."""
    from gar_tool.testing.checkpoints import CHAT_TEMPLATE

    if PLM_SYSTEM not in CHAT_TEMPLATE:
        raise ValueError("the PerceptionLM chat template no longer holds its default system message")
    return CHAT_TEMPLATE.replace(PLM_SYSTEM, system_message.replace("'", "\\'"))


def corpus(n_scenes: int = 300, seed: int = 0) -> Iterator[str]:
    """Texts to train the tokenizer on: the chat template's fixed text (repeated, so that its
    words become tokens too), then the user texts and answers of shapes-world questions."""
    import jinja2

    from gar_tool.evaluation.gar_bench import vqa_question
    from gar_tool.shapes.questions import scene_items
    from gar_tool.shapes.world import sample_scene
    rng = np.random.default_rng(seed)
    crops = {k: SPECIAL_TOKENS[4] for k in range(PROMPT_SLOTS)}  # a special token: not learned
    describe = PromptPlan((PromptSlot(0, 0, True),), DESCRIBE_INSTRUCTION, True)
    chat = jinja2.Environment().from_string(chat_template()).render(
        bos_token=SPECIAL_TOKENS[0], add_generation_prompt=True,
        messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}])
    for _ in range(1000):
        yield chat
    for _ in range(n_scenes):
        r = sample_scene(rng)
        for it in scene_items(r, rng):
            slots = tuple(PromptSlot(k, k, True) for k in range(it.arity))
            for q, a in ((it.open_question, it.open_answer), (vqa_question(it.question, it.choices), it.answer)):
                yield render_user_text(PromptPlan(slots, q, False), crops, "default")
                yield a
        yield render_user_text(describe, crops, "default")
        yield r.scene.shapes[0].caption


def build_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = VOCAB_SIZE,
                    system_message: str = SHAPES_SYSTEM) -> Any:
    """A ``PreTrainedTokenizerFast`` (byte-level BPE trained on ``texts``, default :func:`corpus`)
    with GAR's special tokens and the PerceptionLM chat template (default system message
    ``system_message``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Llama-3's split rule (newline runs are one piece, numbers in groups of three), then bytes.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    gar_tokens = [prompt_token(k) for k in range(PROMPT_SLOTS)] + ["<NO_Prompt>"]
    # GAR's tokens are special here too, so that no merges are spent on their spelling.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS) + gar_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus() if texts is None else texts, trainer)
    bos = SPECIAL_TOKENS[0]
    # Like Llama-3 tokenizers, encoding with special tokens prepends BOS (compat="original" relies on it).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>",
                                   pad_token="<|end_of_text|>")
    fast.add_tokens(gar_tokens, special_tokens=True)
    fast.chat_template = chat_template(system_message)
    return fast


def init_checkpoint(directory: str | Path, *, tile_size: int = 112, max_num_tiles: int = 4,
                    vision_width: int = 96, vision_depth: int = 3, vision_heads: int = 3,
                    hidden_size: int = 192, num_layers: int = 4, num_heads: int = 3, num_kv_heads: int = 1,
                    intermediate_size: int = 512, tie_embeddings: bool = True, roi_double_scale: bool = False,
                    seed: int = 0, tokenizer: Any = None) -> Path:
    """Write an untrained GAR checkpoint for the shapes world to ``directory`` and return it.

    The PerceptionLM parts get transformers' / timm's default initialisation; the mask patch
    embedding starts at zero. ``roi_double_scale`` is written to ``config.json`` (``False``: the
    RoI box is scaled once).
    """
    import torch
    from safetensors.torch import load_file, save_file

    from gar_tool.gar.checkpoint import MASK_EMBED_KEY
    from gar_tool.testing.checkpoints import build_gar_checkpoint

    out = build_gar_checkpoint(
        directory, tokenizer=tokenizer if tokenizer is not None else build_tokenizer(),
        hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size, tie_embeddings=tie_embeddings, vision_width=vision_width, vision_depth=vision_depth,
        vision_heads=vision_heads, tile_size=tile_size, max_num_tiles=max_num_tiles,
        prompt_slots=PROMPT_SLOTS, roi_double_scale=roi_double_scale, seed=seed)
    weights = Path(out) / "model.safetensors"
    state = load_file(str(weights))
    state[MASK_EMBED_KEY] = torch.zeros_like(state[MASK_EMBED_KEY])
    save_file(state, str(weights), metadata={"format": "pt"})
    return Path(out)


LLM_LAYER = "mllm.model.language_model.layers.{}."
#: The projections that write into the residual stream; zero in a new layer, so it adds nothing.
RESIDUAL_WRITERS = ("self_attn.o_proj.weight", "mlp.down_proj.weight")


def grow_llm(model: str | Path, directory: str | Path, *, add_layers: int, seed: int = 0) -> Path:
    """Copy the checkpoint ``model`` to ``directory`` with ``add_layers`` more LLM decoder layers
    on top, each initialised so that the grown model computes exactly what ``model`` computes.

    A new layer's norms are ones, its query/key/value and gate/up projections are drawn from
    N(0, initializer_range²) and its attention output and down projections are zero: the layer
    adds nothing to the residual stream until training moves those two, and gradients reach them
    at once. (Training a small model in stages and deepening it once the lower layers work is
    model growth; the shipped shapes-world model uses it for the multiple-choice stage.)
    """
    import json
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from gar_tool.errors import InputError

    src, out = Path(model), Path(directory)
    if add_layers <= 0:
        raise InputError(f"add_layers must be positive, got {add_layers}")
    if not (src / "config.json").is_file() or not (src / "model.safetensors").is_file():
        raise InputError(f"{str(src)!r} is not a GAR checkpoint folder (config.json + model.safetensors)")
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("config.json", "model.safetensors", "training_log.json"):
            shutil.copy2(f, out / f.name)
    cfg = json.loads((src / "config.json").read_text())
    text = cfg["mllm_config"]["text_config"]
    n, std = int(text["num_hidden_layers"]), float(text.get("initializer_range", 0.02))
    state = load_file(str(src / "model.safetensors"))
    template = {k[len(LLM_LAYER.format(n - 1)):]: v for k, v in state.items() if k.startswith(LLM_LAYER.format(n - 1))}
    gen = torch.Generator().manual_seed(seed)
    for i in range(n, n + add_layers):
        for name, like in template.items():
            if name.endswith("layernorm.weight"):
                new = torch.ones_like(like)
            elif name in RESIDUAL_WRITERS:
                new = torch.zeros_like(like)
            else:
                new = (torch.randn(like.shape, generator=gen) * std).to(like.dtype)
            state[LLM_LAYER.format(i) + name] = new
    text["num_hidden_layers"] = n + add_layers
    if isinstance(text.get("layer_types"), list):
        text["layer_types"] = text["layer_types"] + [text["layer_types"][-1]] * add_layers
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


__all__ = ["grow_llm", "PLM_SYSTEM", "SHAPES_SYSTEM", "chat_template", "SPECIAL_TOKENS", "PROMPT_SLOTS", "VOCAB_SIZE", "corpus", "build_tokenizer", "init_checkpoint"]
