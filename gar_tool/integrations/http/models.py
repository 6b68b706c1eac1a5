"""Wire models of the HTTP API (for the OpenAPI docs) and its error type.

Errors are answered as ``{"error": {"type", "message", "retryable", "tool"}}`` (see
:mod:`gar_tool.integrations.http.server` for the status code table).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from gar_tool.tools.errors import ToolError, ToolInputError
from gar_tool.tools.specs import ToolSpec

ErrorType = Literal["bad_request", "forbidden_origin", "not_found", "method_not_allowed", "request_timeout",
                    "payload_too_large", "unsupported_media_type", "invalid_host", "invalid_input", "busy",
                    "tool_failure", "internal_error", "tool_unavailable"]


# --------------------------------------------------------------------------- wire models (docs)
class ErrorInfo(BaseModel):
    type: ErrorType = Field(description="Machine-readable kind of error (see the status code table).")
    message: str = Field(description="What was wrong, expected vs actual, and how to fix it.")
    retryable: bool = Field(description=(
        "True: the request can succeed with other arguments / later (bad input, busy, too large); "
        "false: retrying will not help (tool failure, tool not available)."))
    tool: str | None = Field(default=None, description="The tool, for tool endpoints.")


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorInfo


class UploadResponse(BaseModel):
    """An uploaded image, stored in the session store."""

    image_id: str = Field(description="Pass it as 'image' to the tools, e.g. 'img_3f2a9c01be47'.")
    width: int = Field(description="Width in pixels, as displayed (EXIF orientation applied).")
    height: int = Field(description="Height in pixels, as displayed.")


class UploadJSON(BaseModel):
    """JSON form of an upload."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1, description="A data: URI or raw base64 of the image file (or any "
                                                 "image reference the tools accept).")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str
    tools: list[str] = Field(description="Tools this server can run (their components are loaded).")
    models: dict[str, str | None] = Field(description="Component names: gar, detector, segmenter.")
    prompt_slots: int | None = Field(description="Most regions GAR sees in one question (None without GAR).")
    store: dict[str, int] = Field(description="Session store: images, image_bytes, regions, region_bytes.")
    limits: dict[str, int] = Field(description=(
        "max_request_bytes, max_concurrency, in_flight, max_image_bytes, max_pixels."))
    batching: dict[str, float | int] | None = Field(description=(
        "Micro-batching of GAR calls: max_batch, max_wait_s, batches_run (None: no batcher)."))


def _response_model(spec: ToolSpec) -> type[BaseModel]:
    """``{"tool", "content", "output", "overlay_png_base64"}`` with the tool's output model."""
    stem = spec.output_model.__name__.removesuffix("Output")
    return create_model(
        f"{stem}Response",
        __doc__=f"Result of {spec.name}.",
        tool=(Literal[spec.name], Field(description="The tool that ran.")),  # type: ignore[arg-type]
        content=(str, Field(description="Short text for an LLM: ids, labels, boxes, the answer.")),
        output=(spec.output_model, Field(description="The structured result (RLE masks).")),
        overlay_png_base64=(str | None, Field(default=None, description=(
            "With ?overlay=true: the image with the regions drawn, PNG as base64."))),
        image=(dict[str, str] | None, Field(default=None, description=(
            "gar_zoom: the picture for the model, {\"mime_type\", \"base64\"}."))),
    )


# --------------------------------------------------------------------------- errors
class APIError(Exception):
    """An error answer (status, JSON error body, extra headers)."""

    def __init__(self, status: int, type: ErrorType, message: str, *, retryable: bool,
                 tool: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type, message
        self.retryable, self.tool, self.headers = retryable, tool, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message, "retryable": self.retryable,
                          "tool": self.tool}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _from_tool_error(err: ToolError, tool: str | None) -> APIError:
    if isinstance(err, ToolInputError):
        return APIError(422, "invalid_input", err.message, retryable=True, tool=err.tool or tool)
    return APIError(500, "tool_failure", err.message, retryable=False, tool=err.tool or tool)

__all__ = ["APIError", "ErrorInfo", "ErrorResponse", "ErrorType", "HealthResponse", "UploadJSON", "UploadResponse"]
