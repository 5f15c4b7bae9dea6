"""MP4 writing and reading of synthetic sequences with PyAV.

H.264 (libx264, yuv420p, constant rate factor) is the default. When this PyAV build has no libx264 the
writer says so once on stderr and falls back to MPEG-4 part 2 (`mpeg4`, high quality), which every
decoder reads. x264 runs with one thread per encoder so output bytes do not depend on the machine's cores.
"""
from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np

from ragar_data.atomic import atomic_path
from ragar_data.errors import VideoError

FALLBACK_CODEC = "mpeg4"
_warned = set()


def available_codec(codec: str) -> str:
    """`codec` if this PyAV can encode it, else the fallback (with one clear message)."""
    try:
        av.codec.Codec(codec, "w")
        return codec
    except Exception as error:  # PyAV raises UnknownCodecError / ValueError depending on the version
        if codec not in _warned:
            _warned.add(codec)
            print(f"ragar-data synth: video codec {codec!r} is not available in this PyAV build ({error}); "
                  f"writing {FALLBACK_CODEC!r} (MPEG-4 part 2) instead", file=sys.stderr)
        return FALLBACK_CODEC


def write_video(path: str | Path, frames, fps: int, width: int, height: int, codec: str = "libx264",
                crf: int = 20, preset: str = "ultrafast") -> Path:
    """Encode an iterable of (H, W, 3) uint8 RGB frames to `path` atomically (`ragar_data.atomic`)."""
    path = Path(path)
    codec = available_codec(codec)
    with atomic_path(path) as temporary:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}
            else:
                stream.bit_rate = int(width * height * fps * 0.6)
                stream.options = {"qscale": "2"}
            stream.thread_count = 1
            for frame in frames:
                if frame.shape != (height, width, 3):
                    raise VideoError(f"{path}: frame of shape {frame.shape}, expected {(height, width, 3)}")
                # cv2's RGB -> I420 (BT.601, video range, as swscale decodes it) is 2x faster than swscale's
                yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
                video_frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video as (T, H, W, 3) uint8 RGB."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as error:
        raise VideoError(f"{path}: cannot decode video: {error}") from error
    if not frames:
        raise VideoError(f"{path}: no frames")
    return np.stack(frames)
