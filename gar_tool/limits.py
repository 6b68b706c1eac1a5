"""Every resource limit gar-agent enforces, in one place.

Each limit is checked **before** the decode or allocation it guards (an image's declared pixel
count before its pixels are decoded, an RLE's declared size before it is expanded, a request body's
size before it is parsed, ...), and a violation is an :class:`~gar_tool.errors.InputError` (HTTP
413 / 422, MCP ``isError``, CLI exit 2) naming the limit, the actual value and the flag that
raises it. The README's "Limits and security" table is generated from this table
(:func:`markdown_table`; a test keeps the two equal). Servers can raise or lower the limits that
have a flag; the others are properties of the tools' contract with agents.

``LIMITS`` maps a name to a :class:`Limit`; read values with ``limit("image_pixels")``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One bound: its default ``value``, the ``unit``, what it bounds and the CLI flag (if any)."""

    value: int
    unit: str
    what: str
    flag: str | None = None


LIMITS: dict[str, Limit] = {
    "image_pixels": Limit(8192 * 8192, "pixels", "decoded size of one image (width × height), read from the "
                          "file header before decoding", "--max-image-pixels"),
    "image_bytes": Limit(25 << 20, "bytes", "encoded size of one image (file, base64 payload, download)",
                         "--max-image-mb"),
    "mask_pixels": Limit(8192 * 8192, "pixels", "declared size of a mask image file or COCO RLE, read "
                         "before it is decoded"),
    "mask_file_bytes": Limit(25 << 20, "bytes", "size of one mask image file"),
    "request_bytes": Limit(40 << 20, "bytes", "one HTTP request body (declared or streamed)", "--max-request-mb"),
    "body_read_seconds": Limit(30, "seconds", "time to receive one HTTP request body (408 after it)",
                               "--body-timeout"),
    "regions_per_call": Limit(32, "regions", "regions in one gar_relate / gar_measure call"),
    "points_per_region": Limit(64, "points", "click points of one points region"),
    "polygon_vertices": Limit(4096, "vertices", "vertices of one polygon / scribble region"),
    "phrases_per_call": Limit(64, "phrases", "phrases in one gar_ground call / GroundingDetector.detect"),
    "phrase_chars": Limit(256, "characters", "length of one grounding phrase"),
    "question_chars": Limit(4000, "characters", "length of a gar_relate question"),
    "instruction_chars": Limit(2000, "characters", "length of a gar_describe instruction"),
    "clip_seconds": Limit(3600, "seconds", "duration of one video file, read from its header before decoding"),
    "clip_source_frames": Limit(100_000, "frames", "frames in one video file (from its header), frame "
                                "folder or frame list, counted before decoding"),
    "clip_frames": Limit(32, "frames", "frames sampled from one clip (each is one GAR tile and one "
                         "crop-token run per object)"),
    "frame_pixels": Limit(4096 * 4096, "pixels", "size of one video frame (width × height), read from "
                          "the header before decoding"),
    "zoom_side": Limit(768, "pixels", "longer side of the picture gar_zoom returns"),
    "calls_per_step": Limit(16, "tool calls", "tool calls the planner runs from one model reply (more are refused)"),
}


def limit(name: str) -> int:
    """The value of limit ``name`` (a key of :data:`LIMITS`)."""
    return LIMITS[name].value


def _fmt(value: int, unit: str) -> str:
    if unit == "bytes" and value % (1 << 20) == 0:
        return f"{value >> 20} MiB"
    if unit == "pixels":
        side = int(round(value ** 0.5))
        if side * side == value:
            return f"{side} × {side} px"
    return f"{value:,} {unit}"


def markdown_table() -> str:
    """The README table of :data:`LIMITS` (name, default, what it bounds, flag)."""
    rows = ["| limit | default | bounds | flag |", "|---|---|---|---|"]
    for name, lim in LIMITS.items():
        rows.append(f"| `{name}` | {_fmt(lim.value, lim.unit)} | {lim.what} | "
                    f"{'`' + lim.flag + '`' if lim.flag else '—'} |")
    return "\n".join(rows)


__all__ = ["Limit", "LIMITS", "limit", "markdown_table"]
