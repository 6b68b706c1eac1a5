"""``gar describe`` / ``gar relate`` on a video: sample frames, build tracks, ask GAR, print both.

A video is a video file (by suffix, :data:`gar_tool.video.decode.VIDEO_SUFFIXES`) or a folder
of frames. Regions are ``--region SPEC`` prompts on sampled frame ``--on-frame K`` (propagated
through the clip by ``--tracker``, else known on that frame only) and/or ``--track-json FILE``
tracks (one JSON list of per-frame COCO RLE / null per file). Not a sub-command of its own: the
describe / relate commands hand videos over to :func:`run_video`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gar_tool.cli.argtypes import positive_int
from gar_tool.errors import InputError
from gar_tool.regions.refs import prompt_token


def add_video_options(p: argparse.ArgumentParser) -> None:
    """Options of describe / relate that apply when the input is a video."""
    g = p.add_argument_group("video input (a video file or a folder of frames)")
    g.add_argument("--frames", type=positive_int, default=None, metavar="N",
                   help="frames to sample uniformly (default 16, at most 32)")
    g.add_argument("--on-frame", type=int, default=0, metavar="K",
                   help="sampled frame (0-based) the --region prompts are drawn on (default 0)")
    g.add_argument("--tracker", default=None, metavar="sam2|DIR",
                   help="SAM 2 video checkpoint propagating the prompts through the clip (dir or hub id; "
                   "'sam2' = facebook/sam2.1-hiera-tiny); without it a prompt covers its frame only")
    g.add_argument("--track-json", action="append", default=[], metavar="FILE",
                   help="a track given as JSON: a list of per-frame COCO RLE dicts or null (absent), one per "
                   "sampled frame; repeatable (one file per object, after the --region ones)")
    g.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder (for timestamps)")
    g.add_argument("--overlay", default=None, metavar="OUT.png",
                   help="write a contact sheet of the sampled frames with the tracks drawn")


def is_video_input(args: argparse.Namespace) -> bool:
    from gar_tool.video.decode import is_video_path

    return is_video_path(args.image)


def run_video(args: argparse.Namespace, question: str | None) -> int:
    """Describe (``question=None``) or relate on a video; prints the answer and the tracks."""
    from gar_tool.video.decode import load_clip

    if args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    specs = [args.region] if isinstance(args.region, str) else list(args.region or [])
    if not specs and not args.track_json:
        raise InputError("give at least one --region SPEC (on --on-frame K) or --track-json FILE")
    if getattr(args, "regions_json", None):
        raise InputError("--regions-json is for images; give a video's regions as --region or --track-json")
    if question is None and len(specs) + len(args.track_json) != 1:
        raise InputError(f"describe takes one region or track, got {len(specs) + len(args.track_json)}")
    from gar_tool.video.clip import DEFAULT_FRAMES

    clip = load_clip(args.image, args.frames or DEFAULT_FRAMES, fps=args.fps)
    tracks = _tracks(args, clip, specs)
    gar = _load_gar(args)
    req = gar.video_request(clip, tracks, question, instruction=getattr(args, "instruction", None))
    [answer] = gar.answer_video([req], _options(args))
    names = [f"t{k + 1}" for k in range(len(tracks))]
    if args.overlay:
        from gar_tool.video.sheet import contact_sheet

        contact_sheet(clip, req.tracks, names).save(args.overlay)
    _emit(args, answer, clip, req.tracks, names, gar)
    return 0


def _tracks(args: argparse.Namespace, clip: Any, specs: list[str]) -> list[Any]:
    from gar_tool.evaluation.files import read_json
    from gar_tool.video.track import RegionTrack, coerce_track

    k = clip.frame_index(args.on_frame, "--on-frame") if specs else 0
    tracker = None
    if specs and args.tracker:
        from gar_tool.video.tracker import load_tracker

        tracker = load_tracker(args.tracker, device=args.device, dtype=args.dtype)
    segmenter = None
    if specs and tracker is None and args.segmenter and any(s.split(":", 1)[0].strip().lower() in ("box", "points")
                                                            for s in specs):
        from gar_tool.grounding import load_segmenter

        segmenter = load_segmenter(args.segmenter, device=args.device, dtype=args.dtype)
    tracks: list[Any] = []
    for spec in specs:
        if tracker is not None:
            tracks.append(tracker.track(clip, spec, k))
            continue
        from gar_tool.regions.forms import parse_spec

        region = parse_spec(spec, clip.size, image=clip.frames[k], segmenter=segmenter)
        regions = [region if i == k else None for i in range(len(clip))]
        states = ["given" if i == k else "unknown" for i in range(len(clip))]
        tracks.append(RegionTrack(tuple(regions), tuple(states)))  # type: ignore[arg-type]
    for path in args.track_json:
        tracks.append(coerce_track(read_json(path, "--track-json file"), clip, what=f"--track-json {path}"))
    return tracks


def _load_gar(args: argparse.Namespace) -> Any:
    from gar_tool.gar.predictor import DEFAULT_MODEL, GAR

    return GAR.from_pretrained(args.model or DEFAULT_MODEL, device=args.device, dtype=args.dtype,
                               compat=args.compat)


def _options(args: argparse.Namespace) -> Any:
    from gar_tool.gar.protocol import DecodeOptions

    return DecodeOptions(max_new_tokens=args.max_new_tokens)


def track_table(clip: Any, track: Any, name: str) -> list[str]:
    """Text lines: the track's summary and one row per sampled frame."""
    lines = [f"track {name}: {track.summary()}", "  frame   time     src    state     box                       area"]
    for i, (r, state) in enumerate(zip(track.regions, track.states)):
        t = clip.timestamps[i]
        box = "-" if r is None else "[" + ", ".join(f"{v:g}" for v in r.box) + "]"
        lines.append(f"  #{i:<5d} {'-' if t is None else f'{t:.2f}s':8s} {clip.source_indices[i]:<6d} "
                     f"{state:9s} {box:25s} {0 if r is None else r.area}")
    return lines


def _emit(args: argparse.Namespace, answer: Any, clip: Any, tracks: Any, names: list[str], gar: Any) -> None:
    if args.json:
        out = {
            "text": answer.text, "token_ids": answer.token_ids, "finish_reason": answer.finish_reason,
            "prompt_tokens": answer.prompt_tokens, "model": gar.name, "compat": args.compat,
            "clip": {"source": clip.source, "frames": len(clip), "source_frames": clip.source_frames,
                     "fps": clip.fps, "timestamps": list(clip.timestamps),
                     "source_indices": list(clip.source_indices)},
            "tracks": [{**t.as_dict(clip), "id": name, "prompt": prompt_token(k)}
                       for k, (t, name) in enumerate(zip(tracks, names))],
        }
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    print(answer.text)
    for k, (t, name) in enumerate(zip(tracks, names)):
        print()
        print("\n".join(track_table(clip, t, f"{name} = <Prompt{k}>")))


__all__ = ["add_video_options", "is_video_input", "run_video", "track_table"]
