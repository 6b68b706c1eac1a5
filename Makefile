# The two commands of the README. Both create .venv at the repository root when missing.
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

# Main job: describe a region of the bundled example image with GAR-1B (needs the checkpoint).
MODEL ?= HaochenWang/GAR-1B
demo: setup
	.venv/bin/gar describe examples/images/coffee.jpg --region box:170,15,410,300 --model $(MODEL)

test: setup
	.venv/bin/python -m pytest -q
