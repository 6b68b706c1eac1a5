"""The shapes world: synthetic scenes of coloured shapes with exact masks, questions about them
and everything needed to train and evaluate a small GAR on them offline.

* :mod:`.world` — scenes (kind, colour, size class, overlap) and their rendering;
* :mod:`.questions` — single- and two-region questions with computed answers;
* :mod:`.dataset` — training records (JSONL / ``datasets``) and GAR-Bench-style benchmarks;
* :mod:`.checkpoint` — the shapes-world tokenizer and an untrained checkpoint to start from.

Command line: ``python -m gar_tool.shapes data|bench|init`` (see ``--help``).
"""
