#!/usr/bin/env bash
# The exact commands that trained examples/shapes-gar from random initialisation on one CPU thread.
# Run from the repository root: bash examples/shapes-gar/train.sh [WORK] (default out/shapes).
# Every stage starts from the previous stage's model; data, seeds and step counts are fixed.
set -euo pipefail
W="${1:-out/shapes}"
PY="${PY:-.venv/bin/python}"
export OMP_NUM_THREADS=1
SHAPES="$PY -m gar_tool.shapes"
TRAIN="$PY -m gar_tool.cli train --batch-size 16 --micro-batch 16 --max-tiles 4 --threads 1 --no-progress --logging-steps 10"
CONST="--lr 5e-4 --scheduler constant_with_warmup --warmup 0.05"

# untrained model: vision tower 96 wide x 3 blocks on 112-px tiles, Llama 128 wide x 2 layers,
# untied LM head, the shapes-world tokenizer; the mask patch embedding starts at zero
$SHAPES init --out "$W/init128" --layers 2 --hidden-size 128 --heads 2 --kv-heads 1 --untied
# 1. colour alone (open answers)
$SHAPES data --out "$W/colour" --records 4000 --mix colour:1 --multiple-choice 0 --seed 8
$TRAIN --data "$W/colour/train.jsonl" --model "$W/init128" --out "$W/s1-128" $CONST --max-steps 200 --save-steps 1000
# 2. colour and shape
$SHAPES data --out "$W/cs" --records 8000 --mix colour:1,shape:2 --multiple-choice 0 --seed 12
$TRAIN --data "$W/cs/train.jsonl" --model "$W/s1-128" --out "$W/s2-128" $CONST --max-steps 300 --save-steps 1000
# 3. colour, shape and size
$SHAPES data --out "$W/css" --records 10000 --mix colour:1,shape:3,size:1 --multiple-choice 0 --seed 13
$TRAIN --data "$W/css/train.jsonl" --model "$W/s2-128" --out "$W/s3-128" $CONST --max-steps 400 --save-steps 1000
# 4. two-region questions (with some single-region ones kept)
$SHAPES data --out "$W/pairs" --records 12000 --multiple-choice 0 --seed 14 \
    --mix left:2,above:2,bigger:2,same-colour:1,same-shape:1,count:1,colour:0.5,shape:1,size:0.5
$TRAIN --data "$W/pairs/train.jsonl" --model "$W/s3-128" --out "$W/s4-128" $CONST --max-steps 700 --save-steps 350
# 5. every question kind, half of them multiple choice (GAR-Bench's format), up to 3 questions per
#    conversation, region captions; cosine schedule to zero
$SHAPES data --out "$W/train" --records 150000 --turns 3 --seed 1
$SHAPES data --out "$W/eval" --records 400 --turns 3 --seed 9
$TRAIN --data "$W/train/train.jsonl" --eval-data "$W/eval/train.jsonl" --eval-steps 400 --model "$W/s4-128" \
    --out "${OUT:-examples/shapes-gar}" --lr 5e-4 --scheduler cosine --warmup 0.02 --max-steps 2400 \
    --save-steps 200 --save-total-limit 2 --logging-steps 25
