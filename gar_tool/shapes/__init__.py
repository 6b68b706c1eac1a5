"""The shapes world: synthetic scenes of coloured shapes with exact masks, questions about them
and everything needed to train and evaluate a small GAR on them offline.

* :mod:`.world` — scenes (kind, colour, size class, overlap) and their rendering;
* :mod:`.questions` — single- and two-region questions with computed answers;
* :mod:`.dataset` — training records (JSONL / ``datasets``) and GAR-Bench-style benchmarks;
* :mod:`.checkpoint` — the shapes-world tokenizer and an untrained checkpoint to start from.

* :mod:`.detector` — a classical detector for shapes-world images (``gar_ground`` offline).

Command line: ``python -m gar_tool.shapes data|bench|init|scene`` (see ``--help``).
"""

#: ``--detector`` value (``gar ground``, ``gar serve``, ``GARToolkit.load``) of the offline
#: shapes-world detector, :class:`gar_tool.shapes.detector.ShapesDetector`.
SHAPES_DETECTOR = "shapes-world"
