"""Decode stage: the yuv420p frame layout gives the same pictures as rgb24, and crops equal the whole frame's."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from ragar_data.errors import VideoError
from ragar_data.pipelines.decode import I420, PyAVDecoder, decode_clip, make_decoder, reduced_rgb, rgb_crop


def write_video(path, frames: np.ndarray, fps: int = 25) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    rng = np.random.default_rng(0)
    height, width = 144, 256
    texture = cv2.resize(rng.integers(30, 220, (height // 8, width // 8, 3)).astype(np.uint8), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    frames = np.stack([np.roll(texture, 3 * t, axis=1) for t in range(12)])
    path = tmp_path_factory.mktemp("decode") / "clip.mp4"
    write_video(path, frames)
    return path


def test_yuv420p_layout_gives_the_rgb24_pictures(video):
    rgb = decode_clip(video, PyAVDecoder(), work_width=64)
    yuv = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=64)
    assert rgb.info.layout == "rgb24" and yuv.info.layout == "yuv420p"
    assert isinstance(yuv.frames[0], I420) and yuv.num_frames == rgb.num_frames == 12
    assert [plane.shape for plane in yuv.frames[0]] == [(144, 256), (72, 128), (72, 128)]
    for position in (0, 7):
        # OpenCV's and swscale's BT.601 conversions round differently: a few grey levels at most
        difference = np.abs(yuv.rgb(position).astype(int) - rgb.rgb(position))
        assert difference.max() <= 4 and difference.mean() < 2
    # the reduced copy (exact 4x: planes halved, converted, halved once more) matches the RGB path's 2x2 means
    assert yuv.small.shape == rgb.small.shape == (12, 36, 64, 3)
    assert np.abs(yuv.small.astype(int) - rgb.small).mean() < 2.5


def test_i420_planes_are_the_decoded_pixels_and_outlive_the_container(video):
    clip = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=64)  # container closed on return
    with av.open(str(video)) as container:
        packed = [frame.to_ndarray(format="yuv420p") for frame in container.decode(video=0)]
    assert len(packed) == clip.num_frames
    for frame, expected in zip(clip.frames, packed):
        np.testing.assert_array_equal(np.concatenate([plane.reshape(-1) for plane in frame]), expected.reshape(-1))


def test_crops_equal_the_whole_frame_conversion(video):
    clip = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=0)
    whole = clip.rgb(3)
    for x0, y0, x1, y1 in [(0, 0, 256, 144), (1, 1, 2, 2), (13, 7, 101, 97), (255, 143, 256, 144), (40, 0, 41, 144)]:
        crop = clip.rgb_crop(3, x0, y0, x1, y1)
        assert crop.shape == (y1 - y0, x1 - x0, 3)
        np.testing.assert_array_equal(crop, whole[y0:y1, x0:x1])
    rgb_clip = decode_clip(video, PyAVDecoder(), work_width=0)  # rgb24 crops are views of the frame
    crop = rgb_crop(rgb_clip.frames[3], rgb_clip.info, 5, 6, 50, 60)
    assert np.shares_memory(crop, rgb_clip.frames[3]) and crop.shape == (54, 45, 3)


def test_reduced_rgb_of_other_scales_and_full_size(video):
    clip = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=0)
    frame, info = clip.frames[0], clip.info
    np.testing.assert_array_equal(reduced_rgb(frame, info, (256, 144)), clip.rgb(0))  # no reduction
    odd = reduced_rgb(frame, info, (100, 56))  # not a power of two: whole-frame conversion, then INTER_AREA
    expected = cv2.resize(clip.rgb(0), (100, 56), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(odd, expected)


def test_opencv_backend_refuses_yuv_and_unknown_formats_are_errors(video):
    with pytest.raises(ValueError, match="opencv backend gives RGB frames only"):
        make_decoder("opencv", frame_format="yuv420p")
    with pytest.raises(ValueError, match="frame_format 'nv12'"):
        PyAVDecoder(frame_format="nv12")
    with pytest.raises(VideoError, match="no such file"):
        decode_clip(video.parent / "missing.mp4", PyAVDecoder(frame_format="yuv420p"))


def test_cli_opencv_decoder_runs_the_default_preset_in_rgb(video, tmp_path):
    import shutil

    from click.testing import CliRunner

    from ragar_data.cli.main import cli
    from ragar_data.run_state import current_run

    target = tmp_path / "videos" / "001" / "c0" / "nm-01" / "090.mp4"
    target.parent.mkdir(parents=True)
    shutil.copy(video, target)
    result = CliRunner().invoke(cli, ["extract", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                                      "--decoder", "opencv", "--no-progress"])
    assert result.exit_code == 0, result.output
    _, run = current_run(tmp_path / "out")
    assert run["config"]["decode"] == dict(run["config"]["decode"], backend="opencv", frame_format="rgb24")


def test_a_clip_over_the_frame_budget_keeps_no_frames_and_reads_the_same_ones_again(video, tmp_path):
    from ragar_data.pipelines.frame_store import FrameFile

    kept = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=64, start_frame=2, end_frame=10)
    frame_bytes = 144 * 3 // 2 * 256
    over = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=64, start_frame=2, end_frame=10,
                       frame_budget=5 * frame_bytes, spill_dir=tmp_path / "spill")
    within = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=64, frame_budget=12 * frame_bytes)
    assert within.frames_kept and not over.frames_kept and over.num_frames == kept.num_frames == 8
    # the long clip's reduced copy is in an unlinked file of the spill folder: the same pixels, no name left
    assert isinstance(over.small, FrameFile) and isinstance(within.small, np.ndarray)
    np.testing.assert_array_equal(over.small[:], kept.small)
    assert list((tmp_path / "spill").iterdir()) == []
    again = list(over.reread())
    assert [position for position, _ in again] == list(range(8))
    for (_, frame), expected in zip(again, kept.frames):
        assert all(np.array_equal(a, b) for a, b in zip(frame, expected))
    with pytest.raises(VideoError, match="were not kept"):
        over.rgb(0)
    # random access for person verification: forward reads decode once, an earlier frame starts over
    read = over.rgb_reader(keep=2)
    for position in (1, 6, 3, 7, 0):
        np.testing.assert_array_equal(read(position), kept.rgb(position))
    with pytest.raises(VideoError, match="beyond"):
        read(8)


def test_reduced_copies_outgrow_a_wrong_stated_frame_count():
    from ragar_data.pipelines.decode import _ReducedFrames

    for stated in (0, 2, 40, 10**9):  # unknown, too few, exact, absurd (room is capped)
        frames = _ReducedFrames(stated)
        for value in range(40):
            frames.append(np.full((2, 3, 3), value, np.uint8))
        assert frames.array().shape == (40, 2, 3, 3)
        assert frames.array()[:, 1, 2, 0].tolist() == list(range(40))


def test_reduced_crops_are_the_reduced_conversion_within_rounding(video):
    from ragar_data.pipelines.decode import reduced_rgb_crop

    yuv = decode_clip(video, PyAVDecoder(frame_format="yuv420p"), work_width=0)
    rgb = decode_clip(video, PyAVDecoder(), work_width=0)
    for reduction in (2, 4):
        region = (8, 16, 8 + 24 * reduction, 16 + 16 * reduction)
        reduced = reduced_rgb_crop(yuv.frames[5], yuv.info, *region, reduction)
        assert reduced.shape == (16, 24, 3)
        # the same 2x2 means of the whole conversion, up to the two conversions' rounding
        expected = cv2.resize(yuv.rgb_crop(5, *region), (24, 16), interpolation=cv2.INTER_AREA)
        assert np.abs(reduced.astype(int) - expected).max() <= 4
        rgb_reduced = reduced_rgb_crop(rgb.frames[5], rgb.info, *region, reduction).astype(int)
        area = cv2.resize(rgb.frames[5][16:region[3], 8:region[2]], (24, 16), interpolation=cv2.INTER_AREA)
        assert np.abs(rgb_reduced - area).max() <= 1  # repeated exact halvings: INTER_AREA up to rounding
