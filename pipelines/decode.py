"""Decode stage: video file -> RGB uint8 frames, with a decode thread overlapping the rest of the pipeline.

Owns: the decoder backends (PyAV threaded, OpenCV), the checks on what was decoded (readable, non-empty, expected
resolution), and the `Clip` handed to the next stages: full-resolution frames plus a reduced-resolution copy for
the detector. Does not own: which files to decode (`sources`).
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from ragar_data.errors import VideoError


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float


class Decoder(Protocol):
    def open(self, path: Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
        """Video properties and an iterator of RGB uint8 (H, W, 3) frames; raises VideoError on bad input."""


class PyAVDecoder:
    """FFmpeg through PyAV with frame threading; frames converted to rgb24 by swscale."""

    def __init__(self, threads: int = 0):
        self.threads = threads

    def open(self, path: Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
        import av

        try:
            container = av.open(str(path))
        except (av.FFmpegError, OSError, ValueError) as error:
            raise VideoError(f"{path}: cannot open video: {error}") from error
        if not container.streams.video:
            container.close()
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = self.threads
        rate = stream.average_rate or stream.guessed_rate or 30
        info = VideoInfo(int(stream.codec_context.width), int(stream.codec_context.height), float(rate))

        def frames():
            try:
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
            except av.FFmpegError as error:
                raise VideoError(f"{path}: decoding failed: {error}") from error
            finally:
                container.close()

        return info, frames()


class OpenCVDecoder:
    """cv2.VideoCapture (FFmpeg inside OpenCV); BGR converted to RGB."""

    def __init__(self, threads: int = 0):
        self.threads = threads

    def open(self, path: Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise VideoError(f"{path}: cannot open video")
        info = VideoInfo(int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         float(capture.get(cv2.CAP_PROP_FPS) or 30.0))

        def frames():
            try:
                while True:
                    ok, frame = capture.read()
                    if not ok:
                        return
                    yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            finally:
                capture.release()

        return info, frames()


DECODERS = {"pyav": PyAVDecoder, "opencv": OpenCVDecoder}


def make_decoder(backend: str, threads: int = 0) -> Decoder:
    if backend not in DECODERS:
        raise ValueError(f"unknown decode backend {backend!r}; known: {sorted(DECODERS)}")
    return DECODERS[backend](threads=threads)


@dataclass
class Clip:
    """A decoded sequence: full-resolution RGB frames and their reduced copy for detection."""

    path: Path
    info: VideoInfo
    frames: list  # T arrays (H, W, 3) uint8, full resolution
    small: np.ndarray  # (T, h, w, 3) uint8, `scale` times the full resolution
    frame_index: np.ndarray  # (T,) int32 index of each frame in the source video
    scale: float

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.info.width, self.info.height


def work_scale(width: int, work_width: int) -> float:
    return min(1.0, work_width / width) if work_width else 1.0


def reduce_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame resized to `size` (width, height) by area averaging. An exact power-of-two reduction (1080p
    to 480x270) is done as repeated exact halvings with bilinear sampling, each the mean of a 2x2 block: the
    same box filter as INTER_AREA up to rounding, 4x faster (0.9 vs 3.5 ms per 1080p frame)."""
    height, width = frame.shape[:2]
    factor = width // size[0]
    if factor >= 2 and factor & (factor - 1) == 0 and width == size[0] * factor and height == size[1] * factor:
        while frame.shape[1] > size[0]:
            frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


_END = object()


def decode_clip(
    path: Path, decoder: Decoder, *, start_frame: int = 0, end_frame: int | None = None, work_width: int = 480,
    expect_resolution: tuple[int, int] | None = None, queue_frames: int = 16, keep_frames: bool = True,
) -> Clip:
    """Decode `path` frames [start_frame, end_frame) in a thread while this thread makes the reduced copies.

    keep_frames=False keeps only the reduced copy (detector-only runs and benchmarks).
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    info, frames = decoder.open(path)
    if expect_resolution and (info.width, info.height) != tuple(expect_resolution):
        frames.close()
        raise VideoError(f"{path}: resolution {info.width}x{info.height}, expected "
                         f"{expect_resolution[0]}x{expect_resolution[1]}")
    scale = work_scale(info.width, work_width)
    small_size = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    buffer: queue.Queue = queue.Queue(maxsize=max(1, queue_frames))
    stop = threading.Event()

    def produce():
        try:
            for index, frame in enumerate(frames):
                if end_frame is not None and index >= end_frame:
                    break
                if index >= start_frame:
                    while not stop.is_set():
                        try:
                            buffer.put((index, frame), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                if stop.is_set():
                    break
            buffer.put(_END)
        except BaseException as error:  # handed to the consumer, which raises it with the path
            buffer.put(error)
        finally:
            frames.close()

    thread = threading.Thread(target=produce, name=f"decode-{path.name}", daemon=True)
    thread.start()
    full, small, indices = [], [], []
    try:
        while True:
            item = buffer.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                if isinstance(item, VideoError):
                    raise item
                raise VideoError(f"{path}: decoding failed: {item}") from item
            index, frame = item
            if frame.shape[:2] != (info.height, info.width):
                raise VideoError(f"{path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"stream says {info.width}x{info.height}")
            indices.append(index)
            small.append(frame if scale == 1.0 else reduce_frame(frame, small_size))
            if keep_frames:
                full.append(frame)
    finally:
        stop.set()
        thread.join(timeout=5)
    if not indices:
        raise VideoError(f"{path}: no frames decoded" + (f" in [{start_frame}, {end_frame})" if start_frame or
                                                         end_frame is not None else " (empty or corrupt video)"))
    return Clip(path, info, full, np.stack(small), np.asarray(indices, np.int32), scale)
