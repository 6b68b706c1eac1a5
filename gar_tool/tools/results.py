"""What a tool call returns (:class:`ToolResult`) and the helpers that build it.

A result has three views of one answer, for the three kinds of reader:

* ``content`` — a short text for the LLM (ids, labels, boxes, the answer);
* ``artifact`` — the pydantic output model (:mod:`gar_tool.tools.schemas`), with RLE masks, for
  programs (HTTP JSON, MCP ``structuredContent``, LangChain artifacts);
* ``overlay_png`` — the image with the regions drawn (one colour per region, legend lines such as
  ``"r2 = <Prompt0>  a dog"``), for people; rendered on first access, then cached.

A tool whose answer *is* a picture for the model (``gar_zoom``) also sets ``image``
(:class:`ToolImage`): adapters send it as image content — an MCP image block, a LangChain image
content block, an OpenAI image part — whatever their overlay setting.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pydantic import BaseModel

from gar_tool.regions.region import Region
from gar_tool.regions.rle import rle_encode
from gar_tool.tools.outputs import RegionOut
from gar_tool.tools.schemas import RleMask


def fmt_num(value: float) -> str:
    """``3.0`` → ``"3"``, ``2.345`` → ``"2.35"`` (pixels and offsets in texts)."""
    return f"{round(float(value), 2):g}"


def fmt_box(box: Sequence[float]) -> str:
    """``[x1, y1, x2, y2]`` as text."""
    return "[" + ", ".join(fmt_num(v) for v in box) + "]"


def region_out(region: Region) -> RegionOut:
    """A stored region (``region.id`` set) → :class:`RegionOut` (box rounded to 0.01 px, RLE mask)."""
    if region.id is None:
        raise ValueError("region_out needs a stored region (with an id)")
    return RegionOut(id=region.id, label=region.label,
                     score=None if region.score is None else round(float(region.score), 4),
                     box=[round(float(v), 2) for v in region.box], area=region.area, source=region.source,
                     rle=RleMask(**rle_encode(region.mask)))


def region_phrase(region: Region) -> str:
    """``"r2 (a dog, 0.87, box [10, 20, 110, 220])"`` — a region as the LLM reads it."""
    parts = [p for p in (region.label, None if region.score is None else f"score {region.score:.2f}") if p]
    parts.append(f"box {fmt_box(region.box)}")
    return f"{region.id} ({', '.join(parts)})"


def render_overlay_png(image: Any, regions: Sequence[Region], legend: Sequence[str]) -> bytes:
    """PNG bytes of :func:`gar_tool.media.overlay.draw_overlay` with one legend line per region."""
    from gar_tool.media.overlay import draw_overlay

    buf = io.BytesIO()
    draw_overlay(image, list(regions), labels=list(legend)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class ToolImage:
    """A picture a tool returns to the model: encoded bytes and their media type."""

    data: bytes
    mime_type: str

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_uri(self) -> str:
        """``data:<mime>;base64,...``."""
        return f"data:{self.mime_type};base64,{self.base64()}"

    def langchain_block(self) -> dict[str, Any]:
        """LangChain's standard image content block (every chat model integration reads it)."""
        return {"type": "image", "base64": self.base64(), "mime_type": self.mime_type}

    def openai_part(self) -> dict[str, Any]:
        """An OpenAI chat-completions image content part (user messages only: OpenAI accepts no
        image in a tool message)."""
        return {"type": "image_url", "image_url": {"url": self.data_uri()}}


class ToolResult:
    """The result of one tool call (see module docstring).

    Attributes:
        tool: the tool name (``"gar_describe"``, ...).
        content: text for the LLM.
        artifact: the tool's pydantic output model.
        image: a picture for the model (``gar_zoom``), else None.
    """

    def __init__(self, tool: str, content: str, artifact: BaseModel,
                 overlay: Callable[[], bytes] | bytes | None = None, image: ToolImage | None = None) -> None:
        self.tool = tool
        self.content = content
        self.artifact = artifact
        self.image = image
        self._overlay = overlay
        self._lock = threading.Lock()

    @property
    def overlay_png(self) -> bytes | None:
        """The overlay as PNG bytes (rendered once, on first access), or None."""
        with self._lock:
            if callable(self._overlay):
                self._overlay = self._overlay()
            return self._overlay

    def structured(self) -> dict[str, Any]:
        """The artifact as JSON-ready data (``model_dump(mode="json")``)."""
        return self.artifact.model_dump(mode="json")

    def to_dict(self, include_overlay: bool = False) -> dict[str, Any]:
        """``{"tool", "content", "output"}`` (+ ``"image": {"mime_type", "base64"}`` when the result
        has a picture, + ``"overlay_png_base64"``): one JSON shape for HTTP."""
        out: dict[str, Any] = {"tool": self.tool, "content": self.content, "output": self.structured()}
        if self.image is not None:
            out["image"] = {"mime_type": self.image.mime_type, "base64": self.image.base64()}
        if include_overlay:
            png = self.overlay_png
            out["overlay_png_base64"] = None if png is None else base64.b64encode(png).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ToolResult":
        """Inverse of :meth:`to_dict` (validates ``output`` with the tool's output model)."""
        from gar_tool.tools.specs import get_spec

        spec = get_spec(data["tool"])
        png = data.get("overlay_png_base64")
        pic = data.get("image")
        image = ToolImage(base64.b64decode(pic["base64"]), pic["mime_type"]) if isinstance(pic, dict) else None
        return cls(data["tool"], data["content"], spec.output_model.model_validate(data["output"]),
                   base64.b64decode(png) if png else None, image)

    def __repr__(self) -> str:
        return f"ToolResult(tool={self.tool!r}, content={self.content[:60]!r}...)"


__all__ = ["ToolResult", "ToolImage", "region_out", "region_phrase", "render_overlay_png", "fmt_box", "fmt_num"]
