"""Re-judging GAR-Bench caption predictions with an LLM judge (the paper's GPT-4o protocol).

One request per item, as in GAR's ``eval_simple.py`` / ``eval_detailed.py``: a single user turn
made of ``"\\n1. The original image:\\n"`` + the image, then for every region ``k``
``"\\n{2k+2}. <Prompt{k}>:\\n"`` + its focal crop and ``"\\n{2k+3}. The mask of <Prompt{k}>:\\n"``
+ the cropped mask, and finally the judge prompt (``prompts/judge_gar_bench_caption_*.md``).
The reply is stored verbatim as ``eval_result``; scoring counts exactly ``"True"``.

``text_only=True`` sends the judge prompt alone (no images): it needs no image folder but is *not*
the paper's protocol, so its numbers are not comparable with the published ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gar_tool.errors import InputError
from gar_tool.evaluation.benchmarks import Benchmark
from gar_tool.evaluation.files import atomic_write_json, open_run_log
from gar_tool.evaluation.judge import ChatJudge, PromptTemplate, load_prompt
from gar_tool.evaluation.progress import progress_bar
from gar_tool.regions.refs import prompt_token

#: Prompt file per caption task.
PROMPT_NAMES = {"caption-simple": "judge_gar_bench_caption_simple",
                "caption-detailed": "judge_gar_bench_caption_detailed"}

#: ``max_tokens`` of the original judge requests.
JUDGE_MAX_TOKENS = 1000


def caption_prompt(item: dict[str, Any], template: PromptTemplate) -> str:
    """The judge prompt of one item: the template filled from the item's fields."""
    return template.render(**{v: item[v] for v in template.variables})


def caption_content(item: dict[str, Any], template: PromptTemplate, data_dir: Path | None) -> str | list[dict]:
    """The user-turn content for one item: OpenAI content parts (with images) or plain text.

    Args:
        item: a prediction item (annotation fields + ``model_output``).
        template: the task's judge prompt.
        data_dir: the GAR-Bench folder (``item["image"]`` is relative to it); ``None`` = text only.
    """
    prompt = caption_prompt(item, template)
    if data_dir is None:
        return prompt
    from gar_tool.regions.rle import rle_decode
    from gar_tool.evaluation.judge_images import focal_crops, image_part, open_rgb, png_data_url, text_part

    path = data_dir / item["image"]
    if not path.is_file():
        raise InputError(f"image of {item['image']!r} not found at {str(path)!r} (the judge shows it; "
                         "pass the GAR-Bench folder as --data, or --judge-text-only)")
    pixels = open_rgb(path)
    parts = [text_part("\n1. The original image:\n"), image_part(png_data_url(pixels))]
    for k, rle in enumerate(item["mask_rles"]):
        crop, crop_mask = focal_crops(pixels, rle_decode(rle))
        parts += [text_part(f"\n{2 * k + 2}. {prompt_token(k)}:\n"), image_part(crop),
                  text_part(f"\n{2 * k + 3}. The mask of {prompt_token(k)}:\n"), image_part(crop_mask)]
    parts.append(text_part(prompt))
    return parts


def judge_captions(predictions: Sequence[dict[str, Any]], bench: Benchmark, judge: ChatJudge, *,
                   data_dir: str | Path | None = None, out: str | Path | None = None,
                   show_progress: bool = True) -> list[dict[str, Any]]:
    """Judge every prediction and return the items with a fresh ``eval_result``.

    With ``out``, finished verdicts are logged to ``<out>.progress.jsonl`` as they arrive, a rerun
    after an interruption only asks for the missing ones, and the judged list is written to
    ``out`` atomically (the original's ``*_eval.json`` format; also on interruption, then partial).
    """
    if bench.kind not in PROMPT_NAMES:
        raise InputError(f"{bench.name} is not a caption task; judging applies to "
                         f"{', '.join(PROMPT_NAMES)}")
    template = load_prompt(PROMPT_NAMES[bench.kind])
    root = Path(data_dir) if data_dir is not None else None
    log = None
    if out is not None:
        log = open_run_log(out, {"task": "judge", "benchmark": bench.name, "judge_model": judge.model,
                                 "with_images": root is not None})
    # A logged verdict is reused only for the same model output (the log may predate an edit).
    current = {p["image"]: p["model_output"] for p in predictions}
    done = {k: r for k, r in (log.records if log is not None else {}).items()
            if r.get("model_output") == current.get(k)}
    bar = progress_bar(len(predictions), f"judging {bench.title}", enabled=show_progress,
                       initial=sum(1 for p in predictions if p["image"] in done))
    try:
        for item in predictions:
            key = item["image"]
            if key in done:
                continue
            reply = judge.complete(caption_content(item, template, root), max_tokens=JUDGE_MAX_TOKENS)
            done[key] = {"model_output": item["model_output"], "eval_result": reply}
            if log is not None:
                log.append(key, done[key])
            bar.update()
    finally:
        bar.close()
        judged = [{**item, "eval_result": done[item["image"]]["eval_result"]}
                  for item in predictions if item["image"] in done]
        if out is not None and judged:
            atomic_write_json(out, judged)  # also on interruption: a valid (partial) file
    return judged


__all__ = ["PROMPT_NAMES", "JUDGE_MAX_TOKENS", "caption_prompt", "caption_content", "judge_captions"]
