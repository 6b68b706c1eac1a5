"""``gar batch``'s unit of work: one manifest item, grounded, then answered — the same two steps
on the in-process path and on every Ray Data actor. This module does not import Ray.

An item (:class:`BatchItem`) has an image, an optional question, optional ``regions`` (tool
region dicts: box / points / rle / polygon, in pixels) and optional ``phrases``. Its *prompt
list* is the given regions in order, then one region per phrase — the detector's best-scoring
detection of that phrase — so ``<PromptN>`` in the question names entry N of that list:

* with a question: ``gar_relate`` over the prompt list (split into parts past GAR's prompt slots,
  as the tool does);
* without one: ``gar_describe`` of every region of the list (with ``instruction`` when given);
* with ``--planner``: the planner agent answers the question; the prompt list is put in its
  session store first and ``<PromptN>`` rewritten as those region ids.

:func:`ground_item` turns the image and the prompts into masks (SAM for box / point prompts when a
segmenter is loaded); :func:`answer_item` runs GAR through an ordinary
:class:`~gar_tool.tools.GARToolkit` with a fresh session store per item, so region ids (``r1``,
``r2``, … in prompt-list order) and texts do not depend on which process ran the item. A record is
JSON: ``{"id", "image", "image_id", "question", "answer", "answers", "evidence", "error"}``; a bad
item gets ``error = {"type": "invalid_input" | "failure", "message"}`` and ``answer = null``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from pydantic import TypeAdapter

from gar_tool.errors import InputError
from gar_tool.integrations.ray.wire import region_from_wire, regions_to_wire
from gar_tool.regions.forms import coerce_region
from gar_tool.regions.refs import map_prompts
from gar_tool.regions.region import Region
from gar_tool.tools.errors import ToolError, ToolInputError, as_tool_error
from gar_tool.tools.inputs import ImageInputConfig, ImageResolver
from gar_tool.tools.schemas import RegionInput, region_wire
from gar_tool.tools.store import SessionStore

_REGION = TypeAdapter(RegionInput)


@dataclass(frozen=True)
class BatchItem:
    """One manifest row (see the module docstring). ``id`` is unique in the manifest."""

    id: str
    image: str
    question: str | None = None
    regions: list[dict[str, Any]] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    instruction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BatchItem":
        return cls(**d)


@dataclass(frozen=True)
class BatchSettings:
    """What every item is run with (part of the resume check: a log of other settings is refused)."""

    max_new_tokens: int = 256
    box_threshold: float = 0.35
    text_threshold: float = 0.25
    planner: str | None = None
    planner_base_url: str | None = None
    max_steps: int = 6


def error_of(exc: BaseException) -> dict[str, str]:
    """``{"type", "message"}`` of a failed item (``invalid_input``: the item's fault)."""
    err = as_tool_error(exc)
    return {"type": "invalid_input" if isinstance(err, ToolInputError) else "failure", "message": str(err)}


def _record(item: BatchItem, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item.id, "image": item.image, "image_id": None, "question": item.question,
                           "answer": None, "answers": [], "evidence": {"regions": [], "gar": []}, "error": None}
    rec.update(kw)
    return rec


# --------------------------------------------------------------------------- ground
def ground_item(item: BatchItem, inputs: ImageInputConfig, detector: Any, segmenter: Any,
                settings: BatchSettings) -> dict[str, Any]:
    """The item's prompt list as masks: ``{"id", "image_id", "regions": [wire region], "error"}``."""
    try:
        img = ImageResolver(SessionStore(max_images=1), inputs).resolve(item.image)
        regions: list[Region] = []
        for i, spec in enumerate(item.regions):
            try:
                plain = region_wire(_REGION.validate_python(spec))
                if isinstance(plain, str):
                    raise InputError("region ids are not valid in a manifest; give box / points / rle / polygon")
                regions.append(coerce_region(plain, img.size, image=img.image, segmenter=segmenter or None))
            except Exception as exc:
                err = as_tool_error(exc)
                if isinstance(err, ToolInputError):
                    raise ToolInputError(f"regions[{i}]: {err}") from None
                raise err from exc
        if item.phrases:
            regions.extend(_best_per_phrase(item.phrases, img.image, detector, settings))
        return {"id": item.id, "image_id": img.image_id, "regions": regions_to_wire(regions), "error": None}
    except Exception as exc:  # the item fails, the batch goes on
        return {"id": item.id, "image_id": None, "regions": [], "error": error_of(exc)}


def _best_per_phrase(phrases: list[str], image: Any, detector: Any, settings: BatchSettings) -> list[Region]:
    if detector is None:
        raise ToolInputError("the item has phrases but no grounding detector is loaded (--detector)")
    found = detector.detect(image, phrases, box_threshold=settings.box_threshold,
                            text_threshold=settings.text_threshold)
    best = []
    for phrase in phrases:
        cands = [r for r in found if (r.label or "").lower() == phrase.lower()]
        if not cands:
            raise ToolInputError(f"no region found for phrase {phrase!r} (box_threshold "
                                 f"{settings.box_threshold}); try a lower --box-threshold or another phrase")
        best.append(max(cands, key=lambda r: r.score or 0.0))
    return best


# --------------------------------------------------------------------------- answer
def answer_item(item: BatchItem, grounded: dict[str, Any], gar: Any, inputs: ImageInputConfig,
                settings: BatchSettings, *, detector: Any = None, segmenter: Any = None,
                planner: Callable[..., Any] | None = None) -> dict[str, Any]:
    """The item's record (see the module docstring) from :func:`ground_item`'s output.

    ``gar`` is any GARBackend (a ``GAR``, or a ``MicroBatcher`` shared by concurrent items);
    ``planner`` (a ``Planner`` class) answers instead when ``settings.planner`` is set.
    """
    if grounded.get("error"):
        return _record(item, image_id=grounded.get("image_id"), error=grounded["error"])
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.results import region_out

    try:
        kit = GARToolkit(gar, detector, segmenter if segmenter is not None else False, store=SessionStore(),
                         inputs=inputs, max_new_tokens=settings.max_new_tokens)
        img = kit.images.resolve(item.image)
        stored = [kit.store.put_region(img.image_id, region_from_wire(w).with_meta(id=None))
                  for w in grounded["regions"]]
        ids = [r.id or "" for r in stored]
        if settings.planner is not None:
            return _planned(item, kit, img, ids, stored, settings, planner)
        if not ids:
            raise ToolInputError("the item has no regions: give 'regions' or 'phrases' (or run with --planner)")
        answers, gar_log = [], []
        if item.question is not None:
            res = kit.relate({"image": img.image_id, "regions": ids, "question": item.question})
            out: Any = res.artifact  # a RelateOutput
            answers.append({"region_ids": ids, "text": out.answer_with_ids,
                            "finish_reason": "length" if any(c.finish_reason == "length" for c in out.chunks)
                            else "stop"})
            gar_log.append(_exchange(res))
            answer = out.answer_with_ids
        else:
            for rid in ids:
                res = kit.describe({"image": img.image_id, "region": rid, "instruction": item.instruction})
                described: Any = res.artifact  # a DescribeOutput
                answers.append({"region_ids": [rid], "text": described.description,
                                "finish_reason": described.finish_reason})
                gar_log.append(_exchange(res))
            answer = answers[0]["text"] if len(ids) == 1 else "\n".join(f"{a['region_ids'][0]}: {a['text']}"
                                                                        for a in answers)
        regions = [region_out(r).model_dump(mode="json") for r in stored]
        return _record(item, image_id=img.image_id, answer=answer, answers=answers,
                       evidence={"regions": regions, "gar": gar_log})
    except ToolError as exc:
        return _record(item, image_id=grounded.get("image_id"), error=error_of(exc))
    except Exception as exc:  # an unexpected failure is this item's, not the batch's
        return _record(item, image_id=grounded.get("image_id"), error=error_of(exc))


def _exchange(res: Any) -> dict[str, Any]:
    """A GAR tool result as evidence: the tool's output without the repeated region masks."""
    out = res.artifact.model_dump(mode="json", exclude={"regions", "region", "image_id"})
    return {"tool": res.tool, **out}


def _planned(item: BatchItem, kit: Any, img: Any, ids: list[str], stored: list[Region],
             settings: BatchSettings, planner: Callable[..., Any] | None) -> dict[str, Any]:
    if planner is None:
        raise InputError("--planner needs the agents package (entry point gar.planners:planner)")
    if not item.question:
        raise ToolInputError("the planner needs a question for every item")
    question = map_prompts(item.question, lambda k: ids[k] if k < len(ids) else None)
    agent = planner(kit, settings.planner, max_steps=settings.max_steps, base_url=settings.planner_base_url)
    result = agent.ask(img.image, question).to_dict()
    return _record(item, image_id=img.image_id, answer=result["answer"],
                   answers=[{"region_ids": result["cited"], "text": result["answer"], "finish_reason": "stop"}],
                   evidence=result["evidence"], planner={"stopped": result["stopped"], "steps": len(result["steps"]),
                                                         "cited": result["cited"], "invented": result["invented"]})


__all__ = ["BatchItem", "BatchSettings", "ground_item", "answer_item", "error_of"]
