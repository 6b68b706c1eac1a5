"""``RemoteGAR``: the GAR of a ``gar serve`` server, as a :class:`~gar_tool.gar.protocol.GARBackend`.

::

    with GARClient("http://gpu-box:8000") as client:
        gar = client.gar                                      # RemoteGAR (None: the server has no GAR)
        gar.describe("photo.jpg", {"box": [10, 20, 200, 240]}, max_new_tokens=64).text
        GARToolkit(gar, detector=local_detector)              # a local toolkit over the remote GAR

``request`` validates locally (image, regions, ``<PromptN>`` references, the server's prompt
slots); ``answer`` sends each request to ``/v1/describe`` or ``/v1/relate`` — images uploaded once
per content, regions as COCO RLE — from up to ``max_workers`` threads, so the server micro-batches
them. Over HTTP the server decides the decoding: only ``max_new_tokens`` (up to the server's own
limit) can be chosen per call, sampling options are refused, and answers carry no token ids
(``token_ids == []``, ``prompt_tokens == 0``). ``compat`` is the server's (``gar serve --compat``).
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Sequence

from gar_tool.cache import image_key
from gar_tool.errors import InputError, PromptError
from gar_tool.gar.protocol import Compat, DecodeOptions, GARAnswer, GARFrontMixin, GARRequest
from gar_tool.media.images import load_image
from gar_tool.regions.forms import coerce_regions
from gar_tool.regions.refs import prompt_refs, prompt_token
from gar_tool.regions.rle import rle_encode
from gar_tool.tools.errors import ToolFailure, ToolInputError
from gar_tool.tools.outputs import DescribeOutput, RelateOutput

if TYPE_CHECKING:  # pragma: no cover
    from gar_tool.integrations.http.client import GARClient

#: The decoding options a server accepts per call (the others are its own).
_DEFAULTS = DecodeOptions()


class RemoteGAR(GARFrontMixin):
    """The server's GAR over ``client`` (see the module docstring).

    Attributes:
        name: the server's GAR model name (from ``/health``).
        prompt_slots: regions one question can name (from ``/health``).
    """

    def __init__(self, client: "GARClient", name: str | None, prompt_slots: int, *, max_workers: int = 8) -> None:
        self.client = client
        self.name = name
        self.prompt_slots = prompt_slots
        self.max_workers = max_workers
        self._uploaded: dict[str, str] = {}  # image content key -> the server's image_id
        self._lock = threading.Lock()

    def request(self, image: Any, regions: Any, question: str | None = None, *,
                instruction: str | None = None, compat: Compat | None = None) -> GARRequest:
        if compat is not None:
            raise InputError("compat is the server's setting over HTTP (gar serve --compat); pass compat=None")
        pil = load_image(image)
        regs = coerce_regions(regions, (pil.height, pil.width))
        if question is None:
            if len(regs) != 1:
                raise PromptError(f"describe takes exactly one region, got {len(regs)}")
        else:
            if not isinstance(question, str) or not question.strip():
                raise PromptError("question must be a non-empty string")
            if instruction is not None:
                raise InputError("instruction goes with describe (question=None), not with a question")
            refs, n = prompt_refs(question), len(regs)
            if not refs:
                raise PromptError("the question names no region: refer to regions as <Prompt0>, <Prompt1>, ...")
            if refs != list(range(n)):
                raise PromptError(f"the question must name each of {n} region(s) as {prompt_token(0)}.."
                                  f"{prompt_token(n - 1)}, it names {', '.join(prompt_token(k) for k in refs)}")
            if n > self.prompt_slots:
                raise PromptError(f"GAR has {self.prompt_slots} region slots per question, got {n} regions")
        return GARRequest(pil, regs, question, instruction)

    def answer(self, requests: Sequence[GARRequest], options: DecodeOptions | None = None) -> list[GARAnswer]:
        opts = options if options is not None else _DEFAULTS
        if (opts.do_sample, opts.temperature, opts.top_p, opts.seed, opts.ignore_eos) != \
                (_DEFAULTS.do_sample, _DEFAULTS.temperature, _DEFAULTS.top_p, _DEFAULTS.seed, _DEFAULTS.ignore_eos):
            raise InputError("over HTTP the server decodes greedily: only max_new_tokens can be chosen per call")
        reqs = list(requests)
        if not reqs:
            raise InputError("empty batch: pass at least one request")
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(reqs))) as pool:
            return list(pool.map(lambda r: self._one(r, opts.max_new_tokens), reqs))

    # ------------------------------------------------------------------ one request
    def _one(self, req: GARRequest, max_new_tokens: int) -> GARAnswer:
        try:
            return self._ask(req, self._image_id(req), max_new_tokens)
        except ToolInputError as err:  # the server's store evicted the image: upload it again, once
            stale = self._forget(req)
            if stale is None or stale not in str(err):
                raise
            return self._ask(req, self._image_id(req), max_new_tokens)

    def _ask(self, req: GARRequest, image_id: str, max_new_tokens: int) -> GARAnswer:
        wire = [{"rle": rle_encode(r.mask)} for r in req.regions]
        if req.question is None:
            args: dict[str, Any] = {"image": image_id, "region": wire[0]}
            if req.instruction is not None:
                args["instruction"] = req.instruction
            said = self.client.call("gar_describe", args, overlay=False, max_new_tokens=max_new_tokens).artifact
            if not isinstance(said, DescribeOutput):
                raise ToolFailure(f"gar_describe answered {type(said).__name__}, expected DescribeOutput")
            return GARAnswer(said.description, [], said.finish_reason, 0)
        out = self.client.call("gar_relate", {"image": image_id, "regions": wire, "question": req.question},
                               overlay=False, max_new_tokens=max_new_tokens).artifact
        if not isinstance(out, RelateOutput):
            raise ToolFailure(f"gar_relate answered {type(out).__name__}, expected RelateOutput")
        return GARAnswer(out.answer, [], out.chunks[0].finish_reason if out.chunks else "stop", 0)

    def _forget(self, req: GARRequest) -> str | None:
        with self._lock:
            return self._uploaded.pop(image_key(req.image), None)

    def _image_id(self, req: GARRequest) -> str:
        key = image_key(req.image)
        with self._lock:
            known = self._uploaded.get(key)
        if known is not None:
            return known
        buf = io.BytesIO()
        req.image.save(buf, format="PNG")
        image_id = self.client.upload_image(buf.getvalue())
        with self._lock:
            self._uploaded[key] = image_id
        return image_id


__all__ = ["RemoteGAR"]
