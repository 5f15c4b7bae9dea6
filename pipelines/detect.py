"""Detect stage: person boxes per frame.

Two shapes of detector fit here. A frame detector (`detect(frames) -> boxes per frame`, e.g. YOLO) sees batches
of frames and can batch across sequences. A sequence detector (`detect_sequence(clip, plate) -> Detections`)
needs the whole clip, and is prepared once per run (`prepare(units, ...)`, before the main pass): the built-in
`BackgroundDetector` estimates its cameras' background plates there (`plates`), then builds each sequence's
background model from its camera's plate (or from the sequence alone) and also returns the foreground masks that
the `foreground` segmenter refines at full resolution.

Boxes are (N, 5) float32 rows x1, y1, x2, y2, score in full-resolution pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from ragar_data.errors import ConfigError
from ragar_data.pipelines.decode import Clip, Decoder
from ragar_data.pipelines.frame_store import CHUNK_FRAMES, FrameFile
from ragar_data.pipelines.threads import map_frames


class Detector(Protocol):
    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """frames (B, H, W, 3) RGB uint8 -> B arrays (N, 5) x1, y1, x2, y2, score."""


@runtime_checkable
class SequenceDetector(Protocol):
    def prepare(self, units: list, state_dir: Path, decoder: Decoder, *, work_width: int, map_function: Callable = map,
                log: Callable = print) -> dict:
        """Run-level state from every work unit of the run ({camera: plate}), kept in `state_dir` for reruns;
        `map_function` (e.g. a process pool's map) spreads the decoding it needs."""

    def detect_sequence(self, clip: Clip, plate: np.ndarray | None = None) -> Detections:
        """Boxes for every frame of a whole clip (and whatever per-sequence model it built); `plate` is the
        prepared state of the clip's camera, when there is one."""


@dataclass
class BackgroundModel:
    """What the background detector learnt about one sequence, at the clip's reduced scale."""

    background: np.ndarray  # (h, w, 3) uint8, temporal median
    gains: np.ndarray  # (T,) frame brightness / background brightness
    foreground: np.ndarray  # (T, h, w) bool, cleaned foreground masks
    threshold: float  # colour distance threshold used (0-255 units)
    shadow: tuple[float, float, float]  # min ratio, max ratio, max chroma distortion


@dataclass
class Detections:
    boxes: list  # T arrays (N, 5)
    background: BackgroundModel | None = None
    extra: dict = field(default_factory=dict)


def classify_foreground(frame: np.ndarray, gain: float, background: np.ndarray, threshold: float,
                        shadow: tuple[float, float, float], within: np.ndarray | None = None) -> np.ndarray:
    """Foreground mask (h, w) of one uint8 frame (h, w, 3) against a uint8 background, after dividing the frame
    by its illumination gain; with `within` (h, w) bool, only pixels inside it can be foreground.

    A pixel is foreground when its colour distance (RMS over channels) exceeds `threshold`, unless it is a cast
    shadow: darker than the background by a brightness ratio in [min, max] with small chromaticity distortion
    (Horprasert et al. 1999, brightness/chromaticity decomposition).

    Most pixels of a frame are background, so the exact test runs only on the pixels that can pass it: an RMS
    distance above t needs some channel to differ by more than t (one `cv2.inRange` on the absolute differences).
    When those are more than `DENSE_FRACTION` of the pixels, the whole-plane version is cheaper. Both give the
    same mask (the same float32 arithmetic on the same pixels).
    """
    normalised = cv2.convertScaleAbs(frame, alpha=1.0 / gain) if gain != 1.0 else frame
    limit = (min(255, int(threshold)),) * 3  # integer differences: above t means above floor(t)
    possible = cv2.inRange(cv2.absdiff(normalised, background), (0, 0, 0), limit) == 0
    if within is not None:
        possible &= within
    index = np.flatnonzero(possible)
    if index.size > DENSE_FRACTION * possible.size:
        mask = _classify_plane(normalised, background, threshold, shadow)
        return mask & within if within is not None else mask
    pixels, reference = _gather(normalised, index), _gather(background, index)
    keep = _colour_test(_channel_sum(pixels, reference), _channel_sum(reference, reference),
                        _channel_sum(pixels, pixels), threshold, shadow)
    possible.ravel()[index[~keep]] = False
    return possible


DENSE_FRACTION = 0.4  # above this fraction of possible foreground pixels the whole-plane test is cheaper


def _gather(image: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(3, N) float32 channel planes of the pixels at flat `index` of an (h, w, 3) uint8 image: one 4-byte
    word per pixel (RGBA) gathers 5x faster than rows of 3 bytes."""
    words = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA).view(np.uint32).reshape(-1)
    return np.ascontiguousarray(np.take(words, index).view(np.uint8).reshape(-1, 4)[:, :3].T, dtype=np.float32)


def _channel_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over channels of a * b for (3, N) planes (exact: integer values below 2^24)."""
    total = a[0] * b[0]
    total += a[1] * b[1]
    total += a[2] * b[2]
    return total


def _classify_plane(normalised: np.ndarray, background: np.ndarray, threshold: float,
                    shadow: tuple[float, float, float]) -> np.ndarray:
    """The test on every pixel: per-channel products in OpenCV, the rest on single-channel float32 planes (10x
    faster than numpy (h, w, 3) temporaries). Channel sums of uint8 products (I.B, |B|^2, |I|^2) are exact in
    float32, and the colour distance follows as |I - B|^2 = |I|^2 - 2 I.B + |B|^2."""
    dot = cv2.transform(cv2.multiply(normalised, background, dtype=cv2.CV_32F), _SUM_OF_CHANNELS)
    reference2 = cv2.transform(cv2.multiply(background, background, dtype=cv2.CV_32F), _SUM_OF_CHANNELS)
    pixels2 = cv2.transform(cv2.multiply(normalised, normalised, dtype=cv2.CV_32F), _SUM_OF_CHANNELS)
    return _colour_test(dot, reference2, pixels2, threshold, shadow)


def _colour_test(dot: np.ndarray, reference2: np.ndarray, pixels2: np.ndarray, threshold: float,
                 shadow: tuple[float, float, float]) -> np.ndarray:
    """Foreground and not a cast shadow, from the float32 channel sums I.B, |B|^2 and |I|^2 (any shape)."""
    candidates = (pixels2 - 2.0 * dot) + reference2 > 3.0 * threshold * threshold
    min_ratio, max_ratio, max_chroma = shadow
    reference2 = reference2 + np.float32(1e-3)
    ratio = dot / reference2
    # |I - ratio B|^2 = |I|^2 - ratio (I.B); compared with (max_chroma |B|)^2
    chroma2 = pixels2 - ratio * dot
    is_shadow = (ratio >= min_ratio) & (ratio <= max_ratio) & (chroma2 <= max_chroma * max_chroma * reference2)
    return candidates & ~is_shadow


_SUM_OF_CHANNELS = np.ones((1, 3), np.float32)


def temporal_median(frames: np.ndarray) -> np.ndarray:
    """Per-pixel median of an odd number of uint8 frames (the last one is dropped from an even count) through
    a partial bubble-sort network of OpenCV min/max: 8x faster than np.median on (K, h, w, 3)."""
    values = list(frames[: len(frames) - (1 - len(frames) % 2)] if len(frames) > 1 else frames)
    count, middle = len(values), (len(values) - 1) // 2
    for sweep in range(count - middle):  # after this many sweeps the upper half, median included, is in place
        for i in range(count - 1 - sweep):
            values[i], values[i + 1] = cv2.min(values[i], values[i + 1]), cv2.max(values[i], values[i + 1])
    return np.ascontiguousarray(values[middle])


def brightness_grid(images: np.ndarray, step: int) -> np.ndarray:
    """float32 sum of the 3 channels of (..., h, w, 3) uint8 images on a pixel grid of `step`: three plane
    additions, 6x faster than a sum over the last axis (the same values: integers, exact in float32)."""
    grid = images[..., ::step, ::step, :]
    return grid[..., 0].astype(np.float32) + grid[..., 1] + grid[..., 2]


def frame_gains(frames: np.ndarray, background: np.ndarray, step: int = 4, chunk: int = CHUNK_FRAMES) -> np.ndarray:
    """(T,) illumination gain of each frame: median ratio of its brightness to the background's, on a pixel
    grid of `step` (the subject covers a small part of the frame, so the median ignores it). `chunk` frames at
    a time (a FrameFile, and bounded temporaries)."""
    reference = brightness_grid(background, step) + 1.0
    gains = np.zeros(len(frames), np.float32)
    for start in range(0, len(frames), chunk):
        grid = brightness_grid(frames[start:start + chunk], step)
        gains[start:start + len(grid)] = np.median((grid / reference).reshape(len(grid), -1), axis=1)
    return np.clip(gains, 0.2, 5.0).astype(np.float32)


class BackgroundDetector:
    """Background subtraction on a fixed camera, at the clip's reduced resolution.

    - background: the camera's plate (`plates.camera_plates`, estimated across all sequences of the camera in the
      run) when given; otherwise (a camera with few sequences) the per-pixel temporal median of
      `background_frames` frames spread over the clip, robust to the subject being present in under half of them;
    - illumination drift: each frame is divided by its gain, the median ratio of its brightness to the
      background's (the subject covers a small part of the frame, so the median ignores it);
    - cast shadows: brightness/chromaticity test in `classify_foreground`;
    - noise: threshold = max(min_threshold, threshold_sigmas x robust noise level of the colour distance);
    - masks cleaned by opening/closing; connected components larger than `min_area_fraction` of the frame
      become boxes (components are joined vertically first, so a person split at the belt stays one box);
    - `refine_passes` re-estimates the background where the median is unreliable, away from what was
      detected (`_clean_background`): walkers who cover the same pixels most of the clip (frontal views);
    - `own_median_tolerance` (0 = off) blends a plate with the sequence's own median (`_plate_background`):
      clothes close to the background colour are found more often, at the cost of one median per sequence;
    - frames are classified, cleaned and boxed on `threads` threads (same results in the same order); 1 by
      default: during a run the decode thread already keeps a second core busy (2 cores, 16 1080p clips: 196-201
      frames/s and 7.8-8.0 CPU ms/frame with one thread here and in the segmenter, 139-194 and 8.6-10.9 with two).
    """

    def __init__(self, *, background_frames: int = 24, threshold_sigmas: float = 5.0, min_threshold: float = 8.0,
                 shadow_min_ratio: float = 0.35, shadow_max_ratio: float = 0.92, shadow_max_chroma: float = 0.03,
                 min_area_fraction: float = 0.002, refine_passes: int = 1, camera_plates: bool = True,
                 plate_min_sequences: int = 4, plate_max_sequences: int = 16, plate_frames: int = 8,
                 plate_tolerance: float = 14.0, own_median_tolerance: float = 0.0, threads: int = 1, **unknown):
        if unknown:
            raise ConfigError(f"background detector: unknown option(s) {sorted(unknown)}")
        if int(threads) < 1:
            raise ConfigError(f"background detector: threads must be >= 1, got {threads!r}")
        self.threads = int(threads)
        self.background_frames = background_frames
        self.threshold_sigmas = threshold_sigmas
        self.min_threshold = min_threshold
        self.shadow = (shadow_min_ratio, shadow_max_ratio, shadow_max_chroma)
        self.min_area_fraction = min_area_fraction
        self.refine_passes = refine_passes
        if float(own_median_tolerance) < 0:
            raise ConfigError(f"background detector: own_median_tolerance must be >= 0, got {own_median_tolerance!r}")
        self.own_median_tolerance = float(own_median_tolerance)
        self._plate_options = None if not camera_plates else dict(
            min_sequences=plate_min_sequences, max_sequences=plate_max_sequences, frames_per_sequence=plate_frames,
            tolerance=plate_tolerance)

    def prepare(self, units: list, state_dir: Path, decoder: Decoder, *, work_width: int, map_function: Callable = map,
                log: Callable = print, person_masks: Callable | None = None) -> dict[int, np.ndarray]:
        """{camera: background plate} from every unit of the run (finished ones too: the same plates on resume),
        stored in and reused from `state_dir` (`plates.camera_plates`, which leaves out `person_masks`' pixels
        when given); {} with `camera_plates` off."""
        if self._plate_options is None:
            return {}
        from ragar_data.pipelines.plates import camera_plates  # plates builds on this module's helpers

        return camera_plates(units, state_dir, decoder, work_width=work_width, map_function=map_function, log=log,
                             person_masks=person_masks, **self._plate_options)

    def _classify(self, small, gains, background, threshold, raw=None, region=None,
                  foreground=None) -> tuple[np.ndarray, np.ndarray]:
        """(cleaned, raw) foreground masks: cleaned (T, h, w) bool (written into `foreground` when given), raw
        bit-packed per frame (T, ceil(h w / 8)) uint8, an eighth of the memory of a long clip's bool masks. With
        `raw` masks of an earlier pass and a `region` (x0, y0, x1, y1), only that region is classified again
        (the background changed only there); `raw` is updated in place."""
        count, height, width, _ = small.shape
        x0, y0, x1, y1 = region if region is not None else (0, 0, width, height)
        if raw is None:  # FrameFiles beside a long clip's reduced copy in a file (memory bounded)
            raw = FrameFile.like(small, ((height * width + 7) // 8,), np.uint8)
        window = np.ascontiguousarray(background[y0:y1, x0:x1])
        foreground = FrameFile.like(small, (height, width), bool, packed=True) if foreground is None else foreground
        open_kernel, close_kernel = mask_kernels(width)

        def classify(position):
            mask = (np.unpackbits(raw[position], count=height * width).view(bool).reshape(height, width)
                    if region is not None else np.empty((height, width), bool))
            mask[y0:y1, x0:x1] = classify_foreground(np.ascontiguousarray(small[position, y0:y1, x0:x1]),
                                                     float(gains[position]), window, threshold, self.shadow)
            raw[position] = np.packbits(mask)
            foreground[position] = clean_mask(mask, open_kernel, close_kernel)

        map_frames(classify, range(count), threads=self.threads, name="detect")
        return foreground, raw

    def background_model(self, small: np.ndarray, plate: np.ndarray | None = None) -> BackgroundModel:
        """The sequence's background model; `plate` (h, w, 3) uint8 is its camera's background plate, used
        instead of the per-sequence temporal median (and its re-estimation) when given at the clip's size
        (blended with that median when `own_median_tolerance` is set)."""
        count, height, width, _ = small.shape
        sample = np.unique(np.linspace(0, count - 1, min(count, self.background_frames)).round().astype(int))
        use_plate = plate is not None and plate.shape == small.shape[1:]
        background = self._plate_background(small[sample], plate) if use_plate else temporal_median(small[sample])
        gains = frame_gains(small, background)
        # noise level from a few sampled frames: most pixels are background, so the median distance is noise
        probe = sample[:: max(1, len(sample) // 4)]
        normalised = small[probe].astype(np.float32) / gains[probe, None, None, None]
        distance = np.sqrt(((normalised[:, ::2, ::2] - background[::2, ::2]) ** 2).mean(axis=-1))
        threshold = max(self.min_threshold, self.threshold_sigmas * 1.4826 * float(np.median(distance)))
        foreground, raw = self._classify(small, gains, background, threshold)
        if self.refine_passes and not use_plate:
            for _ in range(self.refine_passes):
                refined = self._clean_background(small, gains, foreground, sample, background)
                if refined is background:  # the median was reliable everywhere: nothing to redo
                    break
                changed = np.flatnonzero((refined != background).any(axis=-1).ravel())
                background = refined
                if changed.size == 0:
                    break
                rows, cols = np.divmod(changed, width)
                margin = 4  # the mask cleaning looks this far
                region = (max(0, cols.min() - margin), max(0, rows.min() - margin),
                          min(width, cols.max() + 1 + margin), min(height, rows.max() + 1 + margin))
                foreground, raw = self._classify(small, gains, background, threshold, raw, region, foreground)
        return BackgroundModel(background, gains, foreground, threshold, self.shadow)

    def _plate_background(self, samples: np.ndarray, plate: np.ndarray) -> np.ndarray:
        """The camera's plate, or with `own_median_tolerance` the plate blended with the sequence's temporal median.

        A plate comes from other sequences, at other exposures, so it fits a sequence less closely than the
        sequence's own median does, and the noise threshold measured against it is higher (20 against 11 in a
        sequence of the demo): clothes close to the background colour stay under it. Where the own median is within
        the tolerance (grey levels, RMS over channels) of the plate scaled to the sequence's brightness, the
        median is kept; elsewhere (a walker in the median: frontal views) the scaled plate is."""
        if not self.own_median_tolerance:
            return plate
        own = temporal_median(samples)
        ratio = float(np.median((brightness_grid(own, 4) + 1.0) / (brightness_grid(plate, 4) + 1.0)))
        scaled = cv2.convertScaleAbs(plate, alpha=ratio)
        distance2 = ((own.astype(np.float32) - scaled) ** 2).sum(axis=-1)
        agrees = distance2 <= 3.0 * self.own_median_tolerance ** 2
        return np.where(agrees[..., None], own, scaled)

    def _clean_background(self, small, gains, foreground, sample, median) -> np.ndarray:
        """Background re-estimated from the sampled frames where a pixel is far from anything detected.

        A walker who stays in the same image region for most of the clip (walking towards a frontal camera)
        is part of the temporal median there, so only fragments and the outline of the walker are found.
        Growing the detections by an eighth of the frame height and filling them closes that outline over the
        whole person. Where a pixel lies inside these regions in more than half of the sampled frames (the
        median there is the walker), it is re-estimated as the mean over the frames where it lies outside, the
        background the walker uncovers at some time; pixels never outside are inpainted (Telea). Elsewhere the
        median stays, so walkers who cross the view are unaffected."""
        height, width = foreground.shape[1:]
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, height // 8) | 1,) * 2)
        total = np.zeros((height, width, 3), np.float32)
        seen = np.zeros((height, width), np.float32)
        for position in sample:
            grown = cv2.dilate(foreground[position].view(np.uint8), grow)
            contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            covered = np.zeros((height, width), np.uint8)
            cv2.drawContours(covered, contours, -1, 1, thickness=cv2.FILLED)
            clean = 1 - covered
            frame = small[position].astype(np.float32) / gains[position]
            cv2.accumulate(frame, total, mask=clean)
            seen += clean
        # only where the median is unreliable: pixels covered in more than half of the sampled frames
        unreliable = seen < 0.5 * len(sample)
        if not unreliable.any():
            return median
        background = median.copy()
        observed = unreliable & (seen > 0)
        background[observed] = np.clip(np.round(total[observed] / seen[observed, None]), 0, 255).astype(np.uint8)
        never = (seen == 0).astype(np.uint8)
        if never.any():
            background = cv2.inpaint(background, never, 3, cv2.INPAINT_TELEA)
        return background

    def detect_sequence(self, clip: Clip, plate: np.ndarray | None = None) -> Detections:
        model = self.background_model(clip.small, plate)
        height, width = model.foreground.shape[1:]
        min_area = self.min_area_fraction * height * width
        to_full = np.float32([clip.scale] * 4 + [1.0])
        boxes = map_frames(lambda position: mask_boxes(model.foreground[position], min_area) / to_full,
                           range(len(model.foreground)), threads=self.threads, name="detect")
        return Detections(boxes=boxes, background=model)


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def mask_kernels(width: int) -> tuple[np.ndarray, np.ndarray]:
    """(opening, closing) kernels of the mask cleaning: kernel sizes follow the working width."""
    return _kernel(3), _kernel(max(3, int(round(width / 160)) * 2 + 1))


def clean_mask(mask: np.ndarray, open_kernel: np.ndarray, close_kernel: np.ndarray) -> np.ndarray:
    """Opening removes speckle noise, closing joins limbs (< 0.2 ms at 480x270)."""
    opened = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, open_kernel)
    return cv2.morphologyEx(opened, cv2.MORPH_CLOSE, close_kernel).view(bool)


def mask_boxes(mask: np.ndarray, min_area: float) -> np.ndarray:
    """(N, 5) boxes of the connected components of a foreground mask, tight around its pixels.

    Components are found on a vertically dilated mask (a person split at the belt or knees is one person), and
    each box is tightened to the mask pixels inside it. Score grows with area so that specks rank low.
    """
    height, width = mask.shape
    joiner = cv2.getStructuringElement(cv2.MORPH_RECT, (3, max(3, height // 40 * 2 + 1)))
    # work inside the foreground's bounding rectangle (grown by the joiner's reach): same components, a
    # fraction of the pixels
    bx, by, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    if bw == 0 or bh == 0:
        return np.zeros((0, 5), np.float32)
    reach_x, reach_y = joiner.shape[1] // 2 + 1, joiner.shape[0] // 2 + 1
    # even offsets: OpenCV labels 2x2 blocks in raster order, so the components keep the full frame's order
    ox, oy = max(0, bx - reach_x) & ~1, max(0, by - reach_y) & ~1
    mask = mask[oy:min(height, by + bh + reach_y), ox:min(width, bx + bw + reach_x)]
    joined = cv2.dilate(np.ascontiguousarray(mask).view(np.uint8), joiner)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    rows = []
    for label in np.flatnonzero(stats[:, 4] >= min_area):  # joined area bounds the mask area: skip specks
        if label == 0:
            continue
        x, y, w, h, _ = stats[label]
        inside = mask[y:y + h, x:x + w] & (labels[y:y + h, x:x + w] == label)
        area = int(inside.sum())
        if area < min_area:
            continue
        ys = np.flatnonzero(inside.any(axis=1))
        xs = np.flatnonzero(inside.any(axis=0))
        score = 0.5 + 0.5 * min(1.0, area / (10.0 * min_area))
        rows.append((ox + x + xs[0], oy + y + ys[0], ox + x + xs[-1] + 1, oy + y + ys[-1] + 1, score))
    return np.asarray(rows, np.float32).reshape(-1, 5)


DETECTORS = {
    "background": BackgroundDetector,
    "yolo": "ragar_data.pipelines.backends.yolo:YoloDetector",
    "blazepose": "ragar_data.pipelines.backends.blazepose_detect:BlazePoseDetector",
}
