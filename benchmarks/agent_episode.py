"""Agent-episode benchmark: one ``Planner.ask`` end to end, ours vs an original-style pipeline, in one run.

A scripted chat model (:class:`gar_agents.scripted.ScriptedChatModel`) plays a fixed, realistic
plan for "Is the person holding the cup, and what is in it?":

1. ``gar_ground("a person. a cup.")`` → two regions (Grounding DINO boxes, SAM masks);
2. in **one reply**, as parallel tool calls: ``gar_measure`` of both, ``gar_relate`` × 7 about the
   pair and ``gar_describe`` × 1 of the cup (``--plan pair``: 8 ``gar_relate``) — 8 GAR questions;
3. the answer, citing both regions.

* **ours** — the planner as shipped: the turn's calls run together (``GARToolkit.call_many``), GAR
  behind the planner's MicroBatcher with its tile / vision / context caches, SAM's image
  embedding cached;
* **original-style** — every call from scratch, one at a time: the same calls one per reply, GAR
  with caches off and batch 1 (``CacheConfig.disabled()``), SAM one box at a time with the image
  encoded again for each, no batcher.

Random weights with the real sizes, built in memory (nothing is downloaded): GAR-1B (PE-L/14 vision,
16-layer 2048-wide Llama, 128k vocabulary, bf16), Grounding-DINO-tiny (Swin-T + BERT-base, 900
queries) and SAM ViT-B (fp32). Every GAR answer decodes exactly ``--new-tokens`` tokens. Prints a
per-phase table and the speed-up ratio with the thread count, machine load and the CPU's vector ISA::

    .venv/bin/python benchmarks/agent_episode.py                 # full size (~15 min on 2 cores)
    .venv/bin/python benchmarks/agent_episode.py --preset tiny   # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import episode  # noqa: E402  (the GAR builders and scene of the GAR episode benchmark)

from gar_tool.grounding import GroundingDetector, SamSegmenter  # noqa: E402

QUESTION = "Is the person holding the cup, and what is in it?"
RELATE = ["Is <Prompt0> holding <Prompt1>?", "Is <Prompt1> touching the hand of <Prompt0>?",
          "What is <Prompt0> doing with <Prompt1>?", "Is <Prompt1> in front of <Prompt0>?",
          "Is <Prompt0> looking at <Prompt1>?", "Are <Prompt0> and <Prompt1> on the same table?",
          "Is <Prompt1> closer to the camera than <Prompt0>?", "Is <Prompt1> about to be drunk from by <Prompt0>?"]
DESCRIBE = ["What is inside this cup?", "What material is this cup made of?"]
TARGET = 4.0


# --------------------------------------------------------------------------- models
def _bert_vocab(directory: Path, size: int) -> Path:
    """A WordPiece vocabulary of ``size`` entries whose [CLS] / [SEP] / "." / "?" ids are the ones
    Grounding DINO treats as special (as in bert-base-uncased)."""
    from transformers.models.grounding_dino.modeling_grounding_dino import SPECIAL_TOKENS

    fixed = dict(zip(SPECIAL_TOKENS, ["[CLS]", "[SEP]", ".", "?"]))
    fixed.update({0: "[PAD]", 100: "[UNK]", 103: "[MASK]"})
    words = iter("a the person man woman cup mug table hand holding".split())
    vocab = [fixed.get(i) or (next(words, None) if i > 2000 else None) or f"[unused{i}]" for i in range(size)]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


def build_grounding(preset: str, tmp: Path, from_scratch: bool) -> Any:
    """Grounding DINO (+ SAM) with random weights: ``full`` = grounding-dino-tiny / sam-vit-base
    sizes (the transformers config defaults), ``tiny`` = a few layers. ``from_scratch``: SAM
    forgets its image embedding before every call (the original-style pipeline)."""
    from transformers import (BertConfig, BertTokenizerFast, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SamConfig, SamImageProcessor,
                              SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig, SamVisionConfig,
                              SwinConfig)

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    if preset == "full":
        dino_cfg, size = GroundingDinoConfig(), 30522
        sam_cfg, sam_side = SamConfig(), 1024
        dino_proc = GroundingDinoImageProcessor()
    else:
        size = 2100
        dino_cfg = GroundingDinoConfig(
            backbone_config=SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                                       out_features=["stage2", "stage3", "stage4"]),
            text_config=BertConfig(vocab_size=size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32),
            d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
            encoder_attention_heads=2, decoder_attention_heads=2, num_queries=30, encoder_n_points=2,
            decoder_n_points=2, max_text_len=32)
        sam_side = 64
        sam_cfg = SamConfig(
            vision_config=SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                                          image_size=sam_side, patch_size=8, window_size=4, global_attn_indexes=[1],
                                          mlp_dim=32, num_pos_feats=8),
            prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=sam_side, patch_size=8,
                                                         mask_input_channels=4),
            mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=2,
                                                     num_attention_heads=2, iou_head_hidden_dim=16))
        dino_proc = GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 144})
    vocab_dir = tmp / "bert-vocab"
    vocab_dir.mkdir(exist_ok=True)
    tok = BertTokenizerFast.from_pretrained(str(_bert_vocab(vocab_dir, size)))
    dino = GroundingDinoForObjectDetection(dino_cfg).eval()
    sam = SamModel(sam_cfg).eval()
    sam_proc = SamProcessor(SamImageProcessor(size={"longest_edge": sam_side},
                                              pad_size={"height": sam_side, "width": sam_side}))
    seg = (FromScratchSegmenter if from_scratch else SamSegmenter)(sam, sam_proc, device=cpu, dtype=torch.float32)
    return GroundingDetector(dino, GroundingDinoProcessor(dino_proc, tok), segmenter=seg, device=cpu,
                             dtype=torch.float32)


class FromScratchSegmenter(SamSegmenter):
    """SAM the original way: one prompt at a time, the image encoded again for each (no embedding
    reuse, no prompt batching)."""

    def segment(self, image: Any, boxes: Any = None, points: Any = None, point_labels: Any = None,
                **kwargs: Any) -> Any:
        from gar_tool.regions.region import Regions

        out = []
        for box in list(boxes or []):
            self.reset_image()
            out.extend(super().segment(image, boxes=[box], **kwargs))
        for k, pts in enumerate(list(points or [])):
            self.reset_image()
            labels = None if point_labels is None else [point_labels[k]]
            out.extend(super().segment(image, points=[pts], point_labels=labels, **kwargs))
        return Regions(out)


# --------------------------------------------------------------------------- the plan
def _ids(messages: list) -> list[str]:
    from langchain_core.messages import ToolMessage

    for m in messages:
        if isinstance(m, ToolMessage) and str(m.content).startswith("Found"):
            return list(dict.fromkeys(re.findall(r"\br\d+\b", str(m.content))))[:2]
    return ["r1", "r2"]


def plan_calls(plan: str, ids: list[str]) -> list[dict]:
    """The GAR questions (and the measurement) of step 2, as tool calls."""
    from gar_agents.scripted import call

    n_relate = 8 if plan == "pair" else 7
    calls = [call("gar_measure", regions=ids)]
    calls += [call("gar_relate", regions=ids, question=q) for q in RELATE[:n_relate]]
    calls += [call("gar_describe", region=ids[1], instruction=q) for q in DESCRIBE[:8 - n_relate]]
    return calls


def scripted_model(plan: str, parallel: bool) -> Any:
    """The plan as a chat model: step 2 in one reply (``parallel``) or one call per reply."""
    from langchain_core.messages import AIMessage

    from gar_agents.scripted import ScriptedChatModel, call

    ground = AIMessage("", tool_calls=[call("gar_ground", image="-", phrases="a person. a cup.", box_threshold=0.0,
                                            max_regions=2)])
    if parallel:
        steps: list[Any] = [ground, lambda msgs, bound: AIMessage("", tool_calls=plan_calls(plan, _ids(msgs)))]
    else:
        steps = [ground] + [lambda msgs, bound, k=k: AIMessage("", tool_calls=[plan_calls(plan, _ids(msgs))[k]])
                            for k in range(9)]

    def answer(msgs: list, bound: bool) -> AIMessage:
        a, b = _ids(msgs)
        return AIMessage(f"Yes: the person ({a}) holds the cup ({b}); GAR describes what is in it.")

    return ScriptedChatModel(steps=steps + [answer])


# --------------------------------------------------------------------------- one run
def run_arm(name: str, kit: Any, model: Any, image: Any, max_steps: int) -> dict[str, Any]:
    from gar_agents import Planner, ToolCallFinished, ToolCallStarted

    starts: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {"grounding": [], "gar": [], "measure": []}
    phase = {"gar_ground": "grounding", "gar_relate": "gar", "gar_describe": "gar", "gar_measure": "measure"}
    turns: dict[tuple[str, int], list[float]] = {}
    with Planner(kit, model, max_steps=max_steps, batch=name == "ours") as planner:
        t0 = time.perf_counter()
        result = None
        for ev in planner.stream(image, QUESTION):
            now = time.perf_counter()
            if isinstance(ev, ToolCallStarted):
                starts[ev.call_id] = now
            elif isinstance(ev, ToolCallFinished):
                if not ev.ok:
                    raise RuntimeError(f"{name}: {ev.tool} failed: {ev.content}")
                key = (phase[ev.tool], ev.turn)
                span = turns.setdefault(key, [starts[ev.call_id], now])
                span[0], span[1] = min(span[0], starts[ev.call_id]), max(span[1], now)
            else:
                result = ev
        total = time.perf_counter() - t0
    for (ph, _), (a, b) in turns.items():
        spans[ph].append((a, b))
    times = {ph: sum(b - a for a, b in s) for ph, s in spans.items()}
    times["total"] = total
    times["planner + other"] = total - sum(times[p] for p in ("grounding", "gar", "measure"))
    return {"times": times, "result": result.result, "engine": dict(kit.gar.engine.timings)}


def machine() -> str:
    flags = ""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    isa = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if re.search(rf"\b{f}\b", flags)]
    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPUs, load average {load}, "
            f"torch CPU capability {cap}, ISA flags {' '.join(isa) or 'none found'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=["full", "tiny"], default="full")
    p.add_argument("--plan", choices=["mixed", "pair"], default="mixed",
                   help="mixed: 7 gar_relate + 1 gar_describe (two region sets); pair: 8 gar_relate")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiles", type=int, default=4, help="GAR tiles (4 = 2x2 grid + thumbnail)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from gar_tool.gar.engine import CacheConfig
    from gar_tool.gar.predictor import GAR
    from gar_tool.gar.protocol import DecodeOptions
    from gar_tool.tools import GARToolkit, ImageInputConfig

    # full size: the fastest dtype this CPU runs natively (bf16 only with AVX-512 BF16 / AMX)
    dtype = episode.pick_benchmark_dtype(None if args.preset == "full" else "float32")
    gar_args = argparse.Namespace(preset="gar1b" if args.preset == "full" else "tiny", tile_size=None,
                                  tiles=args.tiles, dtype=str(dtype).removeprefix("torch."))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        model, processor, tile = episode.build(gar_args, Path(d), dtype)
        det_ours = build_grounding(args.preset, Path(d), from_scratch=False)
        det_orig = build_grounding(args.preset, Path(d), from_scratch=True)
    print(f"# agent episode, preset {args.preset} (GAR {gar_args.preset} {gar_args.dtype}, grounding "
          f"{'grounding-dino-tiny + sam-vit-base' if args.preset == 'full' else 'tiny'} sizes, fp32), plan "
          f"{args.plan}, {args.new_tokens} new tokens, {args.tiles} tiles of {tile}px; built in "
          f"{time.perf_counter() - t0:.0f}s")
    print(f"# machine: {machine()}")
    decode = DecodeOptions(max_new_tokens=args.new_tokens, ignore_eos=True)
    image = episode.scene(tile, args.tiles, 1)[0]
    arms = {}
    for name, gar, det, parallel in (("ours", GAR(model, processor), det_ours, True),
                                     ("original-style", GAR(model, processor, cache=CacheConfig.disabled()),
                                      det_orig, False)):
        kit = GARToolkit(gar, det, inputs=ImageInputConfig(allowed_roots=[]), decode=decode)
        arms[name] = run_arm(name, kit, scripted_model(args.plan, parallel), image, max_steps=12)
        r = arms[name]["result"]
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"{name}: {len(r.steps)} tool calls in {max(s.turn for s in r.steps)} turns, stopped {r.stopped}, "
              f"total {arms[name]['times']['total']:.1f}s (load average after it {load})")
        print(f"    GAR engine: {episode._phases(arms[name]['engine'])}")
    ours, orig = arms["ours"]["times"], arms["original-style"]["times"]
    print("\n| phase | original-style (s) | ours (s) | speed-up |\n|---|---|---|---|")
    for ph in ("grounding", "gar", "measure", "planner + other", "total"):
        label = {"gar": "8 GAR questions", "grounding": "grounding (DINO + SAM)", "measure": "gar_measure"}.get(ph, ph)
        ratio = orig[ph] / ours[ph] if ours[ph] > 0 else float("nan")
        print(f"| {label} | {orig[ph]:.1f} | {ours[ph]:.1f} | {ratio:.2f}x |")
    print("(ours runs the calls of one turn together, so its phase spans overlap; 'total' is wall time)")
    same = [s.content for s in arms["ours"]["result"].steps] == [s.content for s in arms["original-style"]["result"].steps]
    ratio = orig["total"] / ours["total"]
    print(f"\nepisode speed-up: {ratio:.2f}x (target >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'MISSED'}); "
          f"same observations in both arms: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
