"""The planner agent as a benchmark predictor, for ``gar eval run --agent SPEC``.

GAR-Bench gives the regions of each item as masks. The predictor puts them in the toolkit's
session store (so the planner can refer to them as ``r1``, ``r2`` …), rewrites the question's
``<PromptN>`` as those ids, lets the planner work with the gar tools, and returns the option letter
it settles on (the planner is asked to end with ``Answer: X``). Registered through the
``gar.predictors`` entry point (``gar_tool`` never imports ``agents``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gar_tool.evaluation.letters import parse_letter
from gar_tool.media.images import load_image
from gar_tool.regions.forms import coerce_regions
from gar_tool.regions.refs import map_prompts

from .planner import Planner

_INSTRUCTION = ("\n\nWork with the regions named above (they are already in the session store). "
                "End your reply with 'Answer: X', X being the letter of the correct option.")


@dataclass
class AgentAnswer:
    text: str
    token_ids: list[int] = field(default_factory=list)
    raw: str = ""


class PlannerPredictor:
    """``relate(image, regions, question)`` answered by the planner agent over ``toolkit``."""

    #: the tools split questions with many regions themselves: the runner never needs to
    prompt_slots = 10 ** 6

    def __init__(self, toolkit: Any, model: Any, max_steps: int = 6, base_url: str | None = None) -> None:
        self.toolkit = toolkit
        self.planner = Planner(toolkit, model, max_steps=max_steps, base_url=base_url)

    def relate(self, image: Any, regions: Any, question: str, *, max_new_tokens: int = 256) -> AgentAnswer:
        pil = load_image(image)
        stored = self.toolkit.store.put_image(pil)
        regs = coerce_regions(regions, (pil.height, pil.width))
        ids = [self.toolkit.store.put_region(stored.image_id, r).id for r in regs]
        named = map_prompts(question, lambda k: ids[k] if k < len(ids) else None)
        result = self.planner.ask(pil, named + _INSTRUCTION)
        tail = result.answer.rsplit("Answer:", 1)[-1]
        letter = parse_letter(tail) or parse_letter(result.answer)
        return AgentAnswer(letter or result.answer, [], result.answer)


def make_predictor(gar: Any, spec: str, *, base_url: str | None = None, detector: Any = None,
                   max_steps: int = 6) -> PlannerPredictor:
    """Entry point ``gar.predictors:planner``: a predictor over a toolkit built around ``gar``."""
    from gar_tool.tools import GARToolkit

    return PlannerPredictor(GARToolkit(gar, detector, max_new_tokens=64), spec, max_steps, base_url)


__all__ = ["PlannerPredictor", "make_predictor", "AgentAnswer"]
