# The two commands of the README. Both create .venv at the repository root when missing.
.PHONY: setup demo try test

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
		--planner $(PLANNER) --model $(MODEL) --detector $(DETECTOR) --segmenter $(SEGMENTER) --overlay out/demo.png \
		|| { code=$$?; echo "make demo: no weights here? 'make try' runs a small GAR trained in this repository, nothing downloaded" >&2; exit $$code; }

# Offline, nothing downloaded: the small GAR trained here (examples/shapes-gar) on a new
# shapes-world scene; the offline shapes detector stands in for Grounding DINO + SAM.
try: setup
	mkdir -p out/try
	.venv/bin/python -m gar_tool.shapes scene --out out/try/scene.png --seed 0 --masks out/try/masks > out/try/shapes.json
	.venv/bin/gar ground out/try/scene.png "purple triangle. red square" --detector shapes-world
	.venv/bin/gar describe out/try/scene.png --region mask:out/try/masks/0.png --model examples/shapes-gar
	.venv/bin/gar relate out/try/scene.png "What colour is <Prompt0>?" --region mask:out/try/masks/3.png --model examples/shapes-gar
	.venv/bin/gar relate out/try/scene.png "Is <Prompt0> bigger than <Prompt1>?" --model examples/shapes-gar \
		--region mask:out/try/masks/0.png --region mask:out/try/masks/1.png

test: setup
	.venv/bin/mypy
	.venv/bin/python -m pytest -q
