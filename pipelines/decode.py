"""Decode stage: video file -> frames (RGB, or the decoder's own YUV 4:2:0 planes), with a decode thread
overlapping the rest of the pipeline.

Owns: the decoder backends (PyAV threaded, OpenCV), the checks on what was decoded (readable, non-empty, expected
resolution), and the `Clip` handed to the next stages: full-resolution frames plus a reduced-resolution copy for
the detector. Does not own: which files to decode (`sources`).
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Protocol

import cv2
import numpy as np

from ragar_data.errors import ConfigError, VideoError
from ragar_data.pipelines.frame_store import FrameFile


FRAME_FORMATS = ("rgb24", "yuv420p")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    layout: str = "rgb24"  # how frames are handed over: "rgb24" (H, W, 3) or "yuv420p" (I420 planes, (H*3/2, W))
    stated_frames: int = 0  # the frame count the container states (an estimate; 0 = not stated)


class Decoder(Protocol):
    def open(self, path: Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
        """Video properties and an iterator of frames in `info.layout`; raises VideoError on bad input."""


class PyAVDecoder:
    """FFmpeg through PyAV with frame threading.

    frame_format "rgb24": frames converted to RGB by swscale. "yuv420p": the decoder's own 4:2:0 planes are kept
    (I420, half the memory and no full-frame colour conversion, which costs about a third of a 1080p decode);
    RGB is made only where a stage looks (the reduced copy, the subject's crops: `Clip.rgb_crop`). Videos
    with odd sizes, which 4:2:0 cannot hold, fall back to rgb24.
    """

    def __init__(self, threads: int = 0, frame_format: str = "rgb24"):
        if frame_format not in FRAME_FORMATS:
            raise ConfigError(f"decode frame_format {frame_format!r}: expected one of {FRAME_FORMATS}")
        self.threads = threads
        self.frame_format = frame_format

    def layout_for(self, width: int, height: int) -> str:
        return "yuv420p" if self.frame_format == "yuv420p" and width % 2 == 0 and height % 2 == 0 else "rgb24"

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
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        info = VideoInfo(width, height, float(rate), self.layout_for(width, height), max(0, int(stream.frames or 0)))

        def frames():
            try:
                for frame in container.decode(stream):
                    yield from_av(frame, info.layout)
            except av.FFmpegError as error:
                raise VideoError(f"{path}: decoding failed: {error}") from error
            finally:
                container.close()

        return info, frames()


class I420(NamedTuple):
    """A 4:2:0 frame as the decoder's own planes, Y (H, W), U and V (H/2, W/2): views of the buffers FFmpeg
    decoded into, kept alive by these arrays (no copy: packing them into one array cost 1.5-2 ms per 1080p
    frame, about a third of decoding it). Read-only by convention: stages convert what they look at."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def from_av(frame, layout: str):
    """A PyAV VideoFrame in `layout`: its own planes when it is 4:2:0 already, else converted by swscale."""
    if layout == "yuv420p" and frame.format.name == "yuv420p":
        return I420(*(_plane_view(plane) for plane in frame.planes))
    return frame.to_ndarray(format=layout)


def _plane_view(plane) -> np.ndarray:
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, :plane.width]


class OpenCVDecoder:
    """cv2.VideoCapture (FFmpeg inside OpenCV); BGR converted to RGB."""

    def __init__(self, threads: int = 0, frame_format: str = "rgb24"):
        if frame_format != "rgb24":
            raise ConfigError(f"decode frame_format {frame_format!r}: the opencv backend gives RGB frames only "
                             "(use the pyav backend for yuv420p)")
        self.threads = threads
        self.frame_format = frame_format

    def open(self, path: Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise VideoError(f"{path}: cannot open video")
        info = VideoInfo(int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         float(capture.get(cv2.CAP_PROP_FPS) or 30.0), "rgb24",
                         max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)))

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


def make_decoder(backend: str, threads: int = 0, frame_format: str = "rgb24") -> Decoder:
    if backend not in DECODERS:
        raise ConfigError(f"unknown decode backend {backend!r}; known: {sorted(DECODERS)}")
    return DECODERS[backend](threads=threads, frame_format=frame_format)


def frame_shape(info: VideoInfo) -> tuple[int, ...]:
    """Shape of a frame in `info.layout`: (H, W, 3) RGB, or (H*3/2, W) for I420 packed in one array."""
    return (info.height * 3 // 2, info.width) if info.layout == "yuv420p" else (info.height, info.width, 3)


def shape_of(frame, info: VideoInfo) -> tuple[int, ...]:
    """The shape `frame_shape` describes, of a frame array or of an `I420` (all three planes' shapes when they
    do not make one 4:2:0 frame)."""
    if isinstance(frame, I420):
        height, width = frame.y.shape
        chroma_ok = frame.u.shape == frame.v.shape == (height // 2, width // 2)
        return (height * 3 // 2, width) if chroma_ok else frame.y.shape + frame.u.shape + frame.v.shape
    return frame.shape


def i420_planes(frame, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y (H, W), U and V (H/2, W/2) of an I420 frame: an `I420`, or one array (H*3/2, W) holding the planes
    one after the other (PyAV's `to_ndarray(format="yuv420p")`)."""
    if isinstance(frame, I420):
        return frame
    flat = frame.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (flat[:luma].reshape(height, width), flat[luma:luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma:luma + 2 * chroma].reshape(height // 2, width // 2))


def i420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB (h, w, 3) of I420 planes (h and w even) by OpenCV's BT.601 limited-range conversion (swscale's
    default for untagged 4:2:0 video; the two differ by rounding, at most a few grey levels)."""
    height, width = y.shape
    packed = np.empty((height * 3 // 2, width), np.uint8)  # the layout OpenCV reads; one copy of each plane
    packed[:height] = y
    chroma = packed.reshape(-1)[height * width:].reshape(2, height // 2, width // 2)
    chroma[0], chroma[1] = u, v
    return cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_I420)


def to_rgb(frame: np.ndarray, info: VideoInfo) -> np.ndarray:
    """The whole frame as RGB (H, W, 3)."""
    if info.layout == "rgb24":
        return frame
    return i420_to_rgb(*i420_planes(frame, info.width, info.height))


def rgb_crop(frame: np.ndarray, info: VideoInfo, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """RGB (y1-y0, x1-x0, 3) of a region; for I420 frames only the region (grown to even bounds) is converted."""
    if info.layout == "rgb24":
        return frame[y0:y1, x0:x1]
    ex0, ey0 = x0 & ~1, y0 & ~1
    ex1, ey1 = min(info.width, (x1 + 1) & ~1), min(info.height, (y1 + 1) & ~1)
    y, u, v = i420_planes(frame, info.width, info.height)
    rgb = i420_to_rgb(y[ey0:ey1, ex0:ex1], u[ey0 // 2:ey1 // 2, ex0 // 2:ex1 // 2],
                      v[ey0 // 2:ey1 // 2, ex0 // 2:ex1 // 2])
    return rgb[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]


def reduced_rgb(frame: np.ndarray, info: VideoInfo, size: tuple[int, int]) -> np.ndarray:
    """The frame as RGB at `size` (width, height). An I420 frame reduced by an exact power of two (1080p to
    480x270) is halved plane by plane down to twice the target size, converted there and halved once more:
    the same 2x2 means as reducing the full RGB frame (the conversion is affine), at a quarter of the cost."""
    if (info.width, info.height) == tuple(size):
        return to_rgb(frame, info)
    if info.layout == "yuv420p":
        if not (halvings(info.width, info.height, size) and size[0] % 2 == 0 and size[1] % 2 == 0):
            return reduce_frame(to_rgb(frame, info), size)
        y, u, v = i420_planes(frame, info.width, info.height)
        while y.shape[1] > 2 * size[0]:
            y = _halve(y)
        while u.shape[1] > size[0]:
            u, v = _halve(u), _halve(v)
        return _halve(i420_to_rgb(y, u, v))
    return reduce_frame(frame, size)


def reduced_rgb_crop(frame, info: VideoInfo, x0: int, y0: int, x1: int, y1: int, reduction: int) -> np.ndarray:
    """RGB of a region reduced by `reduction` (a power of two; the region's corners on a grid of 2 * reduction):
    ((y1-y0)/reduction, (x1-x0)/reduction, 3), 2x2 means. An I420 frame's luma is halved down to the working size
    and its chroma, already at half resolution, once less, and the planes are converted there (4:4:4): a
    quarter of the pixels of converting at full resolution, and chroma as sharp as the full conversion's
    (halving the chroma too lost 0.01 of qa IoU at 1080p)."""
    if info.layout == "rgb24":
        region = frame[y0:y1, x0:x1]
        while reduction > 1:
            region, reduction = _halve(region), reduction // 2
        return region
    y, u, v = i420_planes(frame, info.width, info.height)
    y, u, v = y[y0:y1, x0:x1], u[y0 // 2:y1 // 2, x0 // 2:x1 // 2], v[y0 // 2:y1 // 2, x0 // 2:x1 // 2]
    y = _halve(y)
    while reduction > 2:
        y, u, v, reduction = _halve(y), _halve(u), _halve(v), reduction // 2
    return yuv444_to_rgb(y, u, v)


# OpenCV's YCrCb -> RGB is full-range BT.601 (JPEG's); limited-range planes (what 4:2:0 video and the I420
# conversion use) are stretched first: luma (Y - 16) * 255/219, chroma about 128 by 255/224.
_LUMA_RANGE = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)
_CHROMA_RANGE = np.clip(np.round(128 + (np.arange(256) - 128) * 255.0 / 224.0), 0, 255).astype(np.uint8)


def yuv444_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB of limited-range BT.601 planes of one size; within a few grey levels of `i420_to_rgb`."""
    planes = [cv2.LUT(y, _LUMA_RANGE), cv2.LUT(v, _CHROMA_RANGE), cv2.LUT(u, _CHROMA_RANGE)]
    return cv2.cvtColor(cv2.merge(planes), cv2.COLOR_YCrCb2RGB)


def _halve(image: np.ndarray) -> np.ndarray:
    # bilinear sampling at exact half size = the mean of each 2x2 block
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_LINEAR)


def halvings(width: int, height: int, size: tuple[int, int]) -> bool:
    """Whether (width, height) reduces to `size` by an exact power of two >= 2 (1080p to 480x270)."""
    factor = width // size[0]
    return factor >= 2 and factor & (factor - 1) == 0 and width == size[0] * factor and height == size[1] * factor


@dataclass
class FrameReader:
    """Full-resolution RGB of a clip's frames by position, whole or a region only (`Clip.frame_reader`)."""

    info: VideoInfo
    frame: Callable[[int], object]  # position -> the frame in `info.layout`

    def rgb(self, position: int) -> np.ndarray:
        return to_rgb(self.frame(position), self.info)

    def rgb_crop(self, position: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return rgb_crop(self.frame(position), self.info, x0, y0, x1, y1)


@dataclass
class Clip:
    """A decoded sequence: full-resolution frames (in `info.layout`) and their reduced RGB copy for detection.

    Stages read full-resolution pixels through `rgb` (a whole frame) and `rgb_crop` (a region), whatever the
    layout the frames are kept in. A clip whose frames did not fit the decode's frame budget keeps none
    (`frames` is None, `frames_kept` False): stages that need them read the video again in order with
    `reread()`, which yields (position, frame) pairs."""

    path: Path
    info: VideoInfo
    frames: list | None  # T frames, full resolution: (H, W, 3) RGB arrays, or I420 planes (yuv420p); None: not kept
    small: np.ndarray | FrameFile | None  # (T, h, w, 3) uint8 RGB, `scale` times the full resolution (in a file
    # when the frames were not kept); None once released
    frame_index: np.ndarray  # (T,) int32 index of each frame in the source video
    scale: float
    reader: Callable[[], Iterator[tuple[int, object]]] | None = None  # (index in the video, frame) again, in order

    @property
    def num_frames(self) -> int:
        return len(self.frame_index)

    @property
    def frames_kept(self) -> bool:
        return self.frames is not None

    @property
    def image_size(self) -> tuple[int, int]:
        return self.info.width, self.info.height

    def _frame(self, position: int):
        if self.frames is None:
            raise VideoError(f"{self.path}: the full-resolution frames of this clip were not kept (over the decode's "
                             "frame budget); read them again in order with Clip.reread()")
        return self.frames[position]

    def rgb(self, position: int) -> np.ndarray:
        return to_rgb(self._frame(position), self.info)

    def rgb_crop(self, position: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return rgb_crop(self._frame(position), self.info, x0, y0, x1, y1)

    def rgb_reader(self, keep: int = 8) -> Callable[[int], np.ndarray]:
        """`rgb(position)` that also works when the frames were not kept (see `frame_reader`)."""
        return self.frame_reader(keep).rgb

    def frame_reader(self, keep: int = 8) -> FrameReader:
        """Whole frames (`rgb`) and regions (`rgb_crop`) by position, also when the frames were not kept: the
        video is then read again forward, keeping the last `keep` frames passed, and started over only when an
        earlier frame is asked for (callers that ask in increasing order decode the clip once)."""
        if self.frames is not None:
            return FrameReader(self.info, self._frame)
        recent: dict[int, object] = {}
        state = {"frames": None}

        def read(position: int):
            if position in recent:
                return recent[position]
            if state["frames"] is None or position < max(recent, default=-1):
                state["frames"], _ = self.reread(), recent.clear()
            for at, frame in state["frames"]:
                recent[at] = frame
                if len(recent) > keep:
                    del recent[min(recent)]
                if at == position:
                    return frame
            raise VideoError(f"{self.path}: frame {position} is beyond the clip's {self.num_frames} frames")

        return FrameReader(self.info, read)

    def reread(self) -> Iterator[tuple[int, object]]:
        """(position, full-resolution frame) of every frame of the clip, decoded again from the video (the same
        decoder: the same pixels); an error when the video no longer gives the frames it gave."""
        if self.frames is not None:
            yield from enumerate(self.frames)
            return
        if self.reader is None:
            raise VideoError(f"{self.path}: frames not kept and no way to read them again")
        count = 0
        for position, (index, frame) in enumerate(self.reader()):
            if position >= self.num_frames or index != self.frame_index[position]:
                break
            count += 1
            yield position, frame
        if count != self.num_frames:
            raise VideoError(f"{self.path}: read again, the video gave other frames than on the first read "
                             f"({count} of {self.num_frames} matched): was it replaced during the run?")


def work_scale(width: int, work_width: int) -> float:
    return min(1.0, work_width / width) if work_width else 1.0


def reduce_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame resized to `size` (width, height) by area averaging. An exact power-of-two reduction (1080p
    to 480x270) is done as repeated exact halvings with bilinear sampling, each the mean of a 2x2 block: the
    same box filter as INTER_AREA up to rounding, 4x faster (0.9 vs 3.5 ms per 1080p frame)."""
    height, width = frame.shape[:2]
    if halvings(width, height, size):
        while frame.shape[1] > size[0]:
            frame = _halve(frame)
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


_END = object()


def threaded_frames(path: Path, info: VideoInfo, frames: Iterator, *, start_frame: int = 0,
                    end_frame: int | None = None, queue_frames: int = 16) -> Iterator[tuple[int, object]]:
    """(index, frame) of the decoder's `frames` in [start_frame, end_frame), decoded in a thread up to
    `queue_frames` ahead of the consumer; each frame's shape is checked against `info`."""
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
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, VideoError):
                    raise item
                raise VideoError(f"{path}: decoding failed: {item}") from item
            index, frame = item
            if shape_of(frame, info) != frame_shape(info):
                raise VideoError(f"{path}: frame {index} has shape {shape_of(frame, info)}, the stream says "
                                 f"{info.width}x{info.height} ({info.layout}: {frame_shape(info)})")
            yield index, frame
    finally:
        stop.set()
        thread.join(timeout=5)


def decode_clip(
    path: Path, decoder: Decoder, *, start_frame: int = 0, end_frame: int | None = None, work_width: int = 480,
    expect_resolution: tuple[int, int] | None = None, queue_frames: int = 16, keep_frames: bool = True,
    frame_budget: int | None = None, spill_dir: Path | None = None,
) -> Clip:
    """Decode `path` frames [start_frame, end_frame) in a thread while this thread makes the reduced copies.

    keep_frames=False keeps only the reduced copy (detector-only runs and benchmarks). `frame_budget` (bytes)
    bounds the full-resolution frames kept: a clip whose frames exceed it keeps none, and stages read them
    again (`Clip.reread`), and its reduced copy goes to a `frame_store.FrameFile` in `spill_dir` (the system's
    temporary folder when None), so its memory does not grow with its length.
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
    frame_bytes = int(np.prod(frame_shape(info)))
    full, small, indices = ([] if keep_frames else None), _ReducedFrames(_expected_frames(info, start_frame,
                                                                                          end_frame)), []
    for index, frame in threaded_frames(path, info, frames, start_frame=start_frame, end_frame=end_frame,
                                        queue_frames=queue_frames):
        indices.append(index)
        small.append(reduced_rgb(frame, info, small_size))
        if full is not None:
            full.append(frame)
            if frame_budget is not None and len(full) * frame_bytes > frame_budget:
                full = None
                small.spill(spill_dir)
    if not indices:
        raise VideoError(f"{path}: no frames decoded" + (f" in [{start_frame}, {end_frame})" if start_frame or
                                                         end_frame is not None else " (empty or corrupt video)"))

    def reader():
        again_info, again = decoder.open(path)
        if again_info != info:
            again.close()
            raise VideoError(f"{path}: read again, the stream is {again_info}, it was {info}")
        return threaded_frames(path, info, again, start_frame=start_frame, end_frame=indices[-1] + 1,
                               queue_frames=queue_frames)

    return Clip(path, info, full, small.array(), np.asarray(indices, np.int32), scale, reader)


def _expected_frames(info: VideoInfo, start_frame: int, end_frame: int | None) -> int:
    stated = info.stated_frames if end_frame is None else min(end_frame, info.stated_frames or end_frame)
    return max(0, stated - start_frame)


class _ReducedFrames:
    """The reduced copies of a clip written into one array as they come: (T, h, w, 3) without a list of T
    arrays stacked at the end (twice the memory of a long clip's copy at that moment). Room for the frames
    the container states (untouched room costs no memory), grown by half when a video holds more."""

    MAX_ROOM = 2**32  # bytes reserved up front at most, whatever a (possibly wrong) container states

    def __init__(self, expected: int):
        self.expected, self.buffer, self.count = expected, None, 0

    def append(self, image: np.ndarray) -> None:
        if isinstance(self.buffer, FrameFile):
            self.buffer.append(image)
            self.count += 1
            return
        if self.buffer is None:
            room = min(max(16, self.expected), max(16, self.MAX_ROOM // max(1, image.nbytes)))
            self.buffer = np.empty((room,) + image.shape, image.dtype)
        elif self.count == len(self.buffer):
            grown = np.empty((len(self.buffer) * 3 // 2,) + image.shape, image.dtype)
            grown[:self.count] = self.buffer
            self.buffer = grown
        self.buffer[self.count] = image
        self.count += 1

    def spill(self, folder: Path | None) -> None:
        """Move the copies made so far to a FrameFile in `folder`, and write the later ones there."""
        spilled = FrameFile(self.buffer.shape[1:], self.buffer.dtype, folder=folder)
        for image in self.buffer[:self.count]:
            spilled.append(image)
        self.buffer = spilled

    def array(self) -> np.ndarray | FrameFile:
        return self.buffer if isinstance(self.buffer, FrameFile) else self.buffer[:self.count]
