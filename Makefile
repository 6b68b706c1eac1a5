# The two commands of the README. Both create .venv at the repository root when missing.
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

# Main job: the planner agent answers a question about the bundled example photograph, on the
# embedded defaults (GAR-1B, Grounding DINO tiny, SAM ViT-B, Qwen2.5-1.5B-Instruct in-process).
# Override any of them, e.g. make demo PLANNER=openai:gpt-4o-mini MODEL=/models/GAR-1B
PLANNER ?= hf:Qwen/Qwen2.5-1.5B-Instruct
MODEL ?= HaochenWang/GAR-1B
DETECTOR ?= IDEA-Research/grounding-dino-tiny
SEGMENTER ?= sam
demo: setup
	mkdir -p out
	.venv/bin/gar ask examples/images/coffee.jpg "Is the spoon resting on the saucer, and what is in the cup?" \
		--planner $(PLANNER) --model $(MODEL) --detector $(DETECTOR) --segmenter $(SEGMENTER) --overlay out/demo.png

test: setup
	.venv/bin/mypy
	.venv/bin/python -m pytest -q
