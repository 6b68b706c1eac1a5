"""What a planner run found: the regions it used, what GAR was asked and said, the tool trace, and
the result object returned to callers."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from gar_tool.regions.refs import DESCRIBE_INSTRUCTION

REGION_ID = re.compile(r"\br(\d+)\b")


@dataclass
class Step:
    """One tool call of the run (in order)."""

    index: int
    tool: str
    args: dict[str, Any]
    ok: bool
    content: str  # what the planner saw (result text or error message)


@dataclass
class GARExchange:
    """One question GAR answered: ``regions[i]`` is ``<Prompt{i}>`` of ``question``."""

    tool: str
    question: str
    regions: list[str]
    answer: str


@dataclass
class Evidence:
    """Regions (by id: ``id, label, score, box, area, rle``) and GAR exchanges seen in a run."""

    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    gar: list[GARExchange] = field(default_factory=list)

    def add_region(self, region: dict[str, Any]) -> None:
        keep = {k: region.get(k) for k in ("id", "label", "score", "box", "area", "rle", "source")}
        old = self.regions.get(region["id"], {})
        self.regions[region["id"]] = {**old, **{k: v for k, v in keep.items() if v is not None}}

    def record(self, tool: str, output: dict[str, Any], args: dict[str, Any]) -> None:
        """Take the regions and GAR answers out of a tool's structured output."""
        for r in output.get("regions", []) or []:
            if isinstance(r, dict) and "rle" in r:
                self.add_region(r)
        if tool == "gar_describe":
            self.add_region(output["region"])
            self.gar.append(GARExchange(tool, args.get("instruction") or DESCRIBE_INSTRUCTION,
                                        [output["region"]["id"]], output["description"]))
        elif tool == "gar_relate":
            self.gar.append(GARExchange(tool, output["question"], [r["id"] for r in output["regions"]],
                                        output.get("answer_with_ids") or output["answer"]))

    @property
    def ids(self) -> set[str]:
        return set(self.regions)


def cited_ids(text: str) -> list[str]:
    """Region ids (``r12``) mentioned in ``text``, in first-mention order."""
    seen: list[str] = []
    for m in REGION_ID.finditer(text):
        rid = f"r{m.group(1)}"
        if rid not in seen:
            seen.append(rid)
    return seen


@dataclass
class PlannerResult:
    """The planner's answer with its evidence.

    Attributes:
        question: the question asked.
        answer: the final answer text (region ids cited like ``r2``).
        image_id: id of the image in the toolkit's session store.
        evidence: regions used (cited ones first) and GAR exchanges.
        steps: the tool trace.
        stopped: ``"answer"`` (the planner answered), ``"budget"`` (step budget used up, forced
            answer) or ``"fallback"`` (the planner produced no usable answer; evidence summary).
        cited: region ids cited in the answer that exist; ``invented``: cited ids no tool returned
            (removed from the answer text).
        overlay_png: PNG bytes of the image with the cited (else all evidence) regions drawn.
    """

    question: str
    answer: str
    image_id: str
    evidence: Evidence
    steps: list[Step]
    stopped: str
    cited: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    overlay_png: bytes | None = None

    def to_dict(self, include_rle: bool = True) -> dict[str, Any]:
        """JSON-ready form (no overlay bytes; see :meth:`save_overlay`)."""
        regions = [dict(r) for r in self.evidence.regions.values()]
        if not include_rle:
            for r in regions:
                r.pop("rle", None)
        order = {rid: i for i, rid in enumerate(self.cited)}
        regions.sort(key=lambda r: (order.get(r["id"], len(order)), int(r["id"][1:])))
        return {"question": self.question, "answer": self.answer, "image_id": self.image_id,
                "stopped": self.stopped, "cited": self.cited, "invented": self.invented,
                "evidence": {"regions": regions, "gar": [asdict(g) for g in self.evidence.gar]},
                "steps": [asdict(s) for s in self.steps]}

    def save_overlay(self, path: str) -> None:
        if self.overlay_png is None:
            raise ValueError("this result has no overlay")
        with open(path, "wb") as f:
            f.write(self.overlay_png)


__all__ = ["Step", "GARExchange", "Evidence", "PlannerResult", "cited_ids", "REGION_ID"]
