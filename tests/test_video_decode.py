"""Clips: uniform sampling, video files (PyAV), frame folders and lists, limits checked before decoding."""

from __future__ import annotations

import numpy as np
import pytest

from gar_tool.errors import InputError
from gar_tool.limits import LIMITS, Limit
from gar_tool.testing.video import moving_square, write_video
from gar_tool.video.clip import Clip, uniform_indices
from gar_tool.video.decode import load_clip
from video_fixtures import FPS, N_SOURCE, SIZE, square_clip  # noqa: F401  (session fixture)


def _source_of(frame) -> int:
    """The source index a synthetic frame encodes in its blue channel (index * 8; H.264 shifts it a
    few levels), read in a background corner."""
    return int(round(float(np.asarray(frame)[2:6, 2:6, 2].mean()) / 8))


@pytest.mark.parametrize("total, n, expected", [
    (24, 4, [3, 9, 15, 21]),          # middles of 4 segments of 6 frames
    (10, 3, [1, 5, 8]),
    (5, 8, [0, 1, 2, 3, 4]),          # fewer frames than asked: every frame
    (1, 16, [0]),
])
def test_uniform_indices(total, n, expected):
    assert uniform_indices(total, n) == expected


def test_video_file_samples_the_right_frames(square_clip):
    clip = load_clip(square_clip.mp4, 6)
    want = uniform_indices(N_SOURCE, 6)
    assert clip.source_indices == tuple(want) and clip.source_frames == N_SOURCE and clip.fps == FPS
    assert [_source_of(f) for f in clip.frames] == want  # the decoded pixels are those frames
    assert clip.timestamps == pytest.approx([i / FPS for i in want], abs=1e-6)
    assert clip.size == SIZE and all(f.mode == "RGB" for f in clip.frames)


def test_seeking_matches_sequential_decoding(tmp_path):
    """A long clip with short GOPs is sampled by seeking; the frames equal a full decode's."""
    import av

    frames, _ = moving_square(120, SIZE, 20)
    path = write_video(tmp_path / "long.mp4", frames, fps=10, gop=10)
    clip = load_clip(path, 5)
    want = uniform_indices(120, 5)  # 12 s apart: every sample is reached by a seek
    assert clip.source_indices == tuple(want)
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for frame, i in zip(clip.frames, want):
        assert np.array_equal(np.asarray(frame), decoded[i])


def test_folder_and_list_and_array(square_clip):
    folder = load_clip(square_clip.folder, 4, fps=FPS)
    want = uniform_indices(N_SOURCE, 4)
    assert folder.source_indices == tuple(want) and folder.source == str(square_clip.folder)
    for f, i in zip(folder.frames, want):  # PNG frames are exact
        assert np.array_equal(np.asarray(f), square_clip.frames[i])
    assert folder.timestamps == pytest.approx([i / FPS for i in want])
    listed = load_clip(square_clip.frames, 4)
    assert listed.source_indices == tuple(want) and listed.timestamps == (None,) * 4
    array = load_clip(np.stack(square_clip.frames), 4, indices=[0, 5, 23])
    assert array.source_indices == (0, 5, 23)
    assert np.array_equal(np.asarray(array.frames[1]), square_clip.frames[5])


def test_folder_sorts_numbers_as_numbers(tmp_path):
    from PIL import Image

    frames, _ = moving_square(12, SIZE, 20)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"frame_{i}.jpg" if i % 2 else tmp_path / f"frame_{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    clip = load_clip(tmp_path, 12)
    assert [_source_of(f) for f in clip.frames] == list(range(12))  # 10 after 9, not after 1


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a real video" * 10)
    with pytest.raises(InputError, match="not a readable video"):
        load_clip(bad)
    with pytest.raises(InputError, match="video not found"):
        load_clip(tmp_path / "nope.mp4")


def test_truncated_file(square_clip, tmp_path):
    data = square_clip.mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the moov atom (index) is at the end: unreadable
    with pytest.raises(InputError, match=r"video file .*cut\.mp4"):
        load_clip(cut, 4)


def test_zero_frames(tmp_path):
    import av

    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as c:  # a container with a video stream and no frames
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(InputError, match=r"empty\.avi' has no frames"):
        load_clip(empty)
    no_stream = tmp_path / "empty.mp4"
    with av.open(str(no_stream), "w") as c:  # MP4 drops a stream that never got a frame
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(InputError, match="has no video stream"):
        load_clip(no_stream)
    (tmp_path / "frames").mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        load_clip(tmp_path / "frames")
    with pytest.raises(InputError, match="is empty"):
        load_clip([])


def test_frame_count_argument():
    frames, _ = moving_square(4, SIZE, 20)
    for bad in (0, -1, 33, 2.5, True):
        with pytest.raises(InputError, match="num_frames"):
            load_clip(frames, bad)
    with pytest.raises(InputError, match="must increase"):
        load_clip(frames, indices=[2, 1])
    with pytest.raises(InputError, match="must increase within 0..3"):
        load_clip(frames, indices=[0, 4])


def _limited(monkeypatch, name, value):
    old = LIMITS[name]
    monkeypatch.setitem(LIMITS, name, Limit(value, old.unit, old.what, old.flag))


def test_limits_are_checked_before_decoding(square_clip, monkeypatch):
    import gar_tool.video.decode as decode

    def no_decoding(*a, **k):
        raise AssertionError("a frame was decoded before the limit check")

    monkeypatch.setattr(decode, "_rgb", no_decoding)
    monkeypatch.setattr(decode, "load_image", no_decoding)
    for name, value, match in [("frame_pixels", 64 * 95, "frame_pixels"), ("clip_seconds", 2, "clip_seconds"),
                               ("clip_source_frames", 23, "clip_source_frames")]:
        with monkeypatch.context() as m:
            _limited(m, name, value)
            with pytest.raises(InputError, match=match):
                load_clip(square_clip.mp4, 4)
            if name != "clip_seconds":  # folders have no duration
                with pytest.raises(InputError, match=match):
                    load_clip(square_clip.folder, 4)


def test_clip_validation():
    from PIL import Image

    a, b = Image.new("RGB", (8, 8)), Image.new("RGB", (8, 9))
    with pytest.raises(InputError, match="one size"):
        Clip((a, b), (None, None), (0, 1), 2)
    with pytest.raises(InputError, match="at least one frame"):
        Clip((), (), (), 0)
    clip = Clip((a, a), (0.0, 0.5), (0, 4), 8, 8.0)
    with pytest.raises(InputError, match=r"frame 2 is outside the clip: it has 2 sampled frames \(0..1\)"):
        clip.frame_index(2)
    assert clip.frame_index(1) == 1 and clip.label(1) == "#1 t=0.50s"
    assert clip.subset([1]).source_indices == (4,)
