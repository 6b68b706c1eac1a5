"""``gar_relate``: GAR's answer to a question about regions, asked in parts beyond GAR's prompt
slots (the strategy: :mod:`gar_tool.tools.relate_chunks`); all parts go to GAR in one call. On a
clip: about tracked objects (:mod:`gar_tool.tools.video`; never split)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gar_tool.regions.refs import prompt_token
from gar_tool.tools import video
from gar_tool.tools.outputs import PromptBinding, RelateChunk, RelateOutput
from gar_tool.tools.relate_chunks import ChunkPlan, check_references, plan_chunks, to_global, to_ids
from gar_tool.tools.results import ToolResult, region_out, region_phrase, render_overlay_png
from gar_tool.tools.schemas import RelateInput
from gar_tool.tools.specs import get_spec
from gar_tool.tools.unit import GARUnit, model_call, need_gar, region_arg, store_regions

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


@dataclass
class _Clip:
    call: "video.ClipCall"
    question: str


class RelateTool(GARUnit[RelateInput, Any, Any]):
    spec = get_spec("gar_relate")

    def prepare(self, kit: "GARToolkit", inp: RelateInput) -> Any:
        gar = need_gar(kit, self.name)
        if inp.video is not None:
            refs = inp.tracks or []  # the input model's validator requires tracks with a video
            check_references(inp.question, len(refs))
            return _Clip(video.prepare_clip(kit, self.name, inp.video, refs, inp.question, inp.frames), inp.question)
        img = kit.images.resolve(inp.image or "")
        given = inp.regions or []  # the input model's validator requires regions with an image
        check_references(inp.question, len(given))
        regions = [region_arg(kit, img, r, f"regions[{i}]") for i, r in enumerate(given)]
        plans = plan_chunks(inp.question, len(regions), gar.prompt_slots,
                            lambda i: regions[i].label or "another region")
        reqs = model_call(self.name, lambda: [gar.request(img.image, [regions[g] for g in p.members], p.question)
                                              for p in plans])
        return _Prepared(gar, img, inp.question, regions, plans, reqs)

    def gar_requests(self, p: Any) -> "list[GARRequest]":
        return [] if isinstance(p, _Clip) else p.requests  # every part in one call: one batch

    def execute(self, kit: "GARToolkit", p: Any) -> Any:
        if isinstance(p, _Clip):
            return video.execute_clip(kit, p.call)
        return super().execute(kit, p)

    def from_answers(self, kit: "GARToolkit", p: _Prepared, answers: "list[GARAnswer]") -> "list[GARAnswer]":
        return answers

    def finish(self, kit: "GARToolkit", p: Any, answers: Any) -> ToolResult:
        if isinstance(p, _Clip):
            return self._finish_clip(kit, p, answers)
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

    def _finish_clip(self, kit: "GARToolkit", p: _Clip, ans: Any) -> ToolResult:
        tracks = video.finish_clip(kit, p.call)
        stored = p.call.stored
        ids = [t.id or "" for t in tracks]
        with_ids = to_ids(ans.text, ids)
        chunk = RelateChunk(regions=[PromptBinding(prompt=prompt_token(k), region_id=tid) for k, tid in enumerate(ids)],
                            question=p.question, answer=ans.text, answer_with_ids=with_ids,
                            finish_reason=ans.finish_reason)
        out = RelateOutput(question=p.question, clip=video.clip_out(stored),
                           tracks=[video.track_out(t, stored.clip) for t in tracks], answer=ans.text,
                           answer_with_ids=with_ids, chunked=False, chunks=[chunk])
        content = f"Tracks in {stored.clip_id}: {video.binding_text(tracks)}.\nAnswer: {with_ids or '(empty answer)'}"
        if ans.finish_reason == "length":
            content += " [cut at the token limit]"
        return ToolResult(self.name, content, out, lambda: video.sheet_png(stored.clip, tracks))
