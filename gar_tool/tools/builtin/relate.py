"""``gar_relate``: GAR's answer to a question about regions, asked in parts beyond GAR's prompt
slots (the strategy: :mod:`gar_tool.tools.relate_chunks`); all parts go to GAR in one call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gar_tool.regions.refs import prompt_token
from gar_tool.tools.outputs import PromptBinding, RelateChunk, RelateOutput
from gar_tool.tools.relate_chunks import ChunkPlan, check_references, plan_chunks, to_global, to_ids
from gar_tool.tools.results import ToolResult, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import RelateInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import ToolUnit, model_call, need_gar, region_arg, store_regions

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.gar.protocol import GARAnswer, GARBackend, GARRequest
    from gar_tool.regions.region import Region
    from gar_tool.tools.core import GARToolkit
    from gar_tool.tools.store import StoredImage


@dataclass
class _Prepared:
    gar: "GARBackend"
    img: "StoredImage"
    question: str
    regions: "list[Region]"
    plans: list[ChunkPlan]
    requests: "list[GARRequest]"


class RelateTool(ToolUnit[RelateInput, _Prepared, "list[GARAnswer]"]):
    spec = get_spec("gar_relate")

    def prepare(self, kit: "GARToolkit", inp: RelateInput) -> _Prepared:
        gar = need_gar(kit, self.name)
        img = kit.images.resolve(inp.image)
        check_references(inp.question, len(inp.regions))
        regions = [region_arg(kit, img, r, f"regions[{i}]") for i, r in enumerate(inp.regions)]
        plans = plan_chunks(inp.question, len(regions), gar.prompt_slots,
                            lambda i: regions[i].label or "another region")
        reqs = model_call(self.name, lambda: [gar.request(img.image, [regions[g] for g in p.members], p.question)
                                              for p in plans])
        return _Prepared(gar, img, inp.question, regions, plans, reqs)

    def execute(self, kit: "GARToolkit", p: _Prepared) -> "list[GARAnswer]":
        return p.gar.answer(p.requests, kit.decode)  # every part in one call: one batch

    def finish(self, kit: "GARToolkit", p: _Prepared, answers: Any) -> ToolResult:
        img, plans = p.img, p.plans
        regions = store_regions(kit, img, p.regions)
        ids = [r.id or "" for r in regions]
        chunks = []
        for plan, ans in zip(plans, answers):
            local_ids = [ids[g] for g in plan.members]
            chunks.append(RelateChunk(
                regions=[PromptBinding(prompt=prompt_token(k), region_id=rid) for k, rid in enumerate(local_ids)],
                question=plan.question, answer=ans.text, answer_with_ids=to_ids(ans.text, local_ids),
                finish_reason=ans.finish_reason))
        chunked = len(plans) > 1
        if chunked:
            lines = [f"Part {n} of {len(plans)} ({', '.join(prompt_token(g) for g in pl.members)}): "
                     f"{to_global(c.answer, pl.members)}" for n, (pl, c) in enumerate(zip(plans, chunks), 1)]
            id_lines = [f"Part {n} of {len(plans)} ({', '.join(b.region_id for b in c.regions)}): "
                        f"{c.answer_with_ids}" for n, c in enumerate(chunks, 1)]
            answer, answer_ids = "\n".join(lines), "\n".join(id_lines)
        else:
            answer, answer_ids = chunks[0].answer, chunks[0].answer_with_ids
        out = RelateOutput(image_id=img.image_id, question=p.question, regions=[region_out(r) for r in regions],
                           answer=answer, answer_with_ids=answer_ids, chunked=chunked, chunks=chunks)
        binding = ", ".join(f"{prompt_token(i)} = {region_phrase(r)}" for i, r in enumerate(regions))
        if chunked:
            content = (f"Regions in {img.image_id}: {binding}.\nGAR sees at most {p.gar.prompt_slots} regions per "
                       f"question, so the question was asked in {len(plans)} parts of consecutive regions; each "
                       f"part saw only its own regions (others were named in words). Answers per part:\n"
                       f"{answer_ids}")
        else:
            content = f"Regions in {img.image_id}: {binding}.\nAnswer: {answer_ids or '(empty answer)'}"
        if any(c.finish_reason == "length" for c in chunks):
            content += " [cut at the token limit]"
        legend = [f"{r.id} = {prompt_token(i)}  {r.label or r.source}" for i, r in enumerate(regions)]
        return ToolResult(self.name, content, out, lambda: render_overlay_png(img.image, regions, legend))
