"""Ask the same question about every image of a folder with the planner agent; write JSONL.

    python examples/batch_qa.py IMAGES_DIR "How many people are there?" --out answers.jsonl \
        [--planner openai:MODEL --planner-base-url URL] [--model ..] [--detector ..] [--segmenter none]

One JSON object a line: {"image", "answer", "cited", "stopped", "steps", "error"}. Images already in
--out are skipped, so an interrupted run can be resumed.
"""

import argparse
import json
from pathlib import Path

from gar_agents import Planner, make_chat_model
from gar_tool.errors import GARError
from gar_tool.tools import GARToolkit

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("question")
    p.add_argument("--out", default="answers.jsonl")
    p.add_argument("--planner", default="hf:Qwen/Qwen2.5-1.5B-Instruct")
    p.add_argument("--planner-base-url", default=None)
    p.add_argument("--model", default="HaochenWang/GAR-1B")
    p.add_argument("--detector", default="IDEA-Research/grounding-dino-tiny")
    p.add_argument("--segmenter", default="sam")
    p.add_argument("--max-steps", type=int, default=6)
    args = p.parse_args(argv)

    out = Path(args.out)
    done = {json.loads(line)["image"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    images = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in SUFFIXES and f.name not in done)
    seg = None if args.segmenter == "none" else args.segmenter
    kit = GARToolkit.load(model=args.model, detector=args.detector, segmenter=seg, max_new_tokens=128)
    planner = Planner(kit, make_chat_model(args.planner, base_url=args.planner_base_url), max_steps=args.max_steps)
    with planner, out.open("a") as f:
        for img in images:
            row = {"image": img.name, "answer": None, "cited": [], "stopped": None, "steps": 0, "error": None}
            try:
                r = planner.ask(img, args.question)
                row.update(answer=r.answer, cited=r.cited, stopped=r.stopped, steps=len(r.steps))
            except GARError as exc:  # one bad image does not stop the batch
                row["error"] = str(exc)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(f"{img.name}: {row['answer'] or row['error']}")


if __name__ == "__main__":
    main()
