"""The benchmarks the harness knows, by CLI name, with the facts about their released files.

Sizes are those of the annotation files released with GAR (Haochen-Wang409/Grasp-Any-Region,
commit e479816); a test checks them against the shared copies of those files. They let a
prediction file be validated without the annotation folder at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gar_tool.errors import InputError

Kind = Literal["vqa", "caption-simple", "caption-detailed", "dlc", "videorefer-q"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark.

    Attributes:
        name: CLI name (``--benchmark``).
        kind: which scorer / runner handles it.
        annotation_file: path of the annotation file relative to the benchmark folder (``--data``).
        size: number of items (GAR-Bench) or objects (DLC-Bench) in the released annotations.
        title: human-readable name used in reports.
    """

    name: str
    kind: Kind
    annotation_file: str
    size: int
    title: str


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("gar-bench-vqa", "vqa", "annotations/GAR-Bench-VQA.json", 424, "GAR-Bench-VQA"),
        Benchmark("gar-bench-caption-simple", "caption-simple",
                  "annotations/GAR-Bench-Caption-Simple.json", 97, "GAR-Bench-Caption-Simple"),
        Benchmark("gar-bench-caption-detailed", "caption-detailed",
                  "annotations/GAR-Bench-Caption-Detailed.json", 107, "GAR-Bench-Caption-Detailed"),
        Benchmark("dlc-bench", "dlc", "annotations/qa.json", 100, "DLC-Bench"),
        # VideoRefer-Bench-Q (DAMO-NLP-SG/VideoRefer-Bench): 1,000 questions per its README; the file
        # is not in ../shared, so this size is not checked against it here.
        Benchmark("videorefer-bench-q", "videorefer-q", "VideoRefer-Bench-Q.json", 1000, "VideoRefer-Bench-Q"),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """Look a benchmark up by CLI name; ``InputError`` listing the known names otherwise."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise InputError(f"unknown benchmark {name!r}; expected one of: {', '.join(BENCHMARKS)}") from None


__all__ = ["Benchmark", "BENCHMARKS", "get_benchmark", "Kind"]
