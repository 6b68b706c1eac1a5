"""What a planner run found: the regions it used, what GAR was asked and said, the tool trace, and
the result object returned to callers. Everything here is JSON-ready through ``to_dict``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal, get_args

from gar_tool.regions.refs import DESCRIBE_INSTRUCTION
from gar_tool.tools.outputs import RegionOut

REGION_ID = re.compile(r"\br(\d+)\b")

#: Values of :attr:`PlannerResult.stopped`.
Stopped = Literal["answer", "budget", "fallback", "no_tools", "error"]
STOPPED: tuple[Stopped, ...] = get_args(Stopped)


@dataclass
class Step:
    """One tool call of the run (in order). ``turn`` is the planner reply it came from (1-based);
    calls of one turn ran together."""

    index: int
    tool: str
    args: dict[str, Any]
    ok: bool
    content: str  # what the planner saw (result text or error message)
    call_id: str = ""
    turn: int = 0


@dataclass
class GARExchange:
    """One question GAR answered: ``regions[i]`` is ``<Prompt{i}>`` of ``question``."""

    tool: str
    question: str
    regions: list[str]
    answer: str


def merge_regions(old: dict[str, RegionOut], new: dict[str, RegionOut]) -> dict[str, RegionOut]:
    """Regions by id; a later sighting of an id keeps the earlier label / score when it has none
    (a graph-state reducer)."""
    out = dict(old)
    for rid, region in new.items():
        prev = out.get(rid)
        if prev is not None:
            region = region.model_copy(update={"label": region.label if region.label is not None else prev.label,
                                               "score": region.score if region.score is not None else prev.score})
        out[rid] = region
    return out


def harvest(tool: str, output: dict[str, Any], args: dict[str, Any]) -> tuple[dict[str, RegionOut], list[GARExchange]]:
    """The regions and GAR exchanges in one tool's structured output."""
    regions: dict[str, RegionOut] = {}
    found: Iterable[Any] = list(output.get("regions") or [])
    if isinstance(output.get("region"), dict):
        found = [*found, output["region"]]
    for r in found:
        if isinstance(r, dict) and "rle" in r:
            region = RegionOut.model_validate(r)
            regions = merge_regions(regions, {region.id: region})
    gar: list[GARExchange] = []
    if tool == "gar_describe" and output.get("region") is not None:  # (a clip answer has a track instead)
        gar.append(GARExchange(tool, args.get("instruction") or DESCRIBE_INSTRUCTION, [output["region"]["id"]],
                               output["description"]))
    elif tool == "gar_relate":
        gar.append(GARExchange(tool, output["question"], [r["id"] for r in output["regions"]],
                               output.get("answer_with_ids") or output["answer"]))
    return regions, gar


@dataclass
class Evidence:
    """Regions (by id, as the tools returned them) and GAR exchanges seen in a run."""

    regions: dict[str, RegionOut] = field(default_factory=dict)
    gar: list[GARExchange] = field(default_factory=list)

    def record(self, tool: str, output: dict[str, Any], args: dict[str, Any]) -> None:
        """Take the regions and GAR answers out of a tool's structured output."""
        regions, gar = harvest(tool, output, args)
        self.regions = merge_regions(self.regions, regions)
        self.gar.extend(gar)

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
        answer: the final answer text (region ids cited like ``r2``); empty when the run failed.
        image_id: id of the image in the toolkit's session store.
        evidence: regions used and GAR exchanges.
        steps: the tool trace.
        stopped: ``"answer"`` (the planner answered after using tools), ``"budget"`` (step budget
            used up, forced answer), ``"fallback"`` (no usable answer; evidence summary),
            ``"no_tools"`` (it answered without calling any tool: the answer is not grounded in
            the image) or ``"error"`` (the run failed; see ``error``).
        cited: region ids cited in the answer that exist; ``invented``: cited ids no tool returned
            (removed from the answer text).
        warnings: things the caller should know (e.g. that no tool was used).
        error: why the run failed (``stopped == "error"``), else None.
        overlay_png: PNG bytes of the image with the cited (else all evidence) regions drawn.
    """

    question: str
    answer: str
    image_id: str
    evidence: Evidence
    steps: list[Step]
    stopped: Stopped
    cited: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    overlay_png: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self, include_rle: bool = True) -> dict[str, Any]:
        """JSON-ready form (no overlay bytes; see :meth:`save_overlay`)."""
        regions = [r.model_dump(mode="json", exclude_none=True) for r in self.evidence.regions.values()]
        if not include_rle:
            for r in regions:
                r.pop("rle", None)
        order = {rid: i for i, rid in enumerate(self.cited)}
        regions.sort(key=lambda r: (order.get(r["id"], len(order)), int(r["id"][1:])))
        return {"question": self.question, "answer": self.answer, "image_id": self.image_id,
                "stopped": self.stopped, "cited": self.cited, "invented": self.invented,
                "warnings": self.warnings, "error": self.error,
                "evidence": {"regions": regions, "gar": [asdict(g) for g in self.evidence.gar]},
                "steps": [asdict(s) for s in self.steps]}

    def save_overlay(self, path: str) -> None:
        if self.overlay_png is None:
            raise ValueError("this result has no overlay")
        with open(path, "wb") as f:
            f.write(self.overlay_png)


__all__ = ["Step", "GARExchange", "Evidence", "PlannerResult", "cited_ids", "merge_regions", "harvest",
           "REGION_ID", "STOPPED"]
