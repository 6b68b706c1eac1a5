"""Video regions without downloads: tiny random GAR and SAM 2 checkpoints and a synthetic clip.

    python examples/video_tiny.py out/tiny
    gar describe out/tiny/clip.mp4 --region box:0,22,20,42 --on-frame 0 --model out/tiny/gar \
        --tracker out/tiny/sam2 --overlay out/tiny/sheet.png

The weights are random: the answer is noise and SAM 2 does not really track. What runs is the
whole path — decoding, sampling, the SAM 2 session, GAR's per-frame tiles, masks, crop runs and
replays, decoding — exactly as with the released checkpoints (``--model HaochenWang/GAR-1B
--tracker sam2``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gar_tool.testing.checkpoints import build_gar_checkpoint
from gar_tool.testing.video import build_sam2_video_checkpoint, moving_square, square_box, write_video


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="directory to write gar/, sam2/ and clip.mp4 into")
    p.add_argument("--frames", type=int, default=24, help="frames of the synthetic clip (default 24)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    build_gar_checkpoint(out / "gar", tile_size=224, max_num_tiles=4, weight_scale=2.0, seed=3)
    build_sam2_video_checkpoint(out / "sam2")
    size, side = (64, 96), 20
    frames, _ = moving_square(args.frames, size, side)
    write_video(out / "clip.mp4", frames, fps=8)
    box = ",".join(str(v) for v in square_box(0, args.frames, size, side))
    print(f"gar describe {out / 'clip.mp4'} --region box:{box} --on-frame 0 --model {out / 'gar'} "
          f"--tracker {out / 'sam2'} --overlay {out / 'sheet.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
