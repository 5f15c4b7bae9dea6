"""Silhouette normalisation with OpenGait's pretreatment rules, and the loader's width cut.

`normalise_sequence` turns a sequence of binary masks into the (S, size, size) uint8 frames that OpenGait's
`datasets/pretreatment.py` (`imgs2pickle`) writes for the same silhouette images, byte for byte, and says
which input frames it kept. Per frame, upstream:

1. drops the frame when its pixel sum (grayscale 0..255) is <= 10000 (fewer than 40 white pixels);
2. keeps the rows from the first to the last non-zero row (all columns);
3. resizes that crop to height `size`, width int(size * w / h), cv2.INTER_CUBIC on the uint8 image;
4. takes as x-centre the first column whose cumulative column sum exceeds half the total; a frame whose
   centre is column 0 or that has no centre is dropped (upstream tests `if not x_center`);
5. keeps size/2 columns each side of the centre, zero-filled where the window leaves the image.

Everything but the resize is vectorised over the sequence. The resize stays one cv2 call per frame on the
single-channel uint8 crop, exactly the call upstream makes: cv2 rounds multi-channel cubic resizes
differently for some channel counts (2, 5+ channels differ by 1 grey level in OpenCV 5.0), so batching
frames as channels would break byte equality.

This module does not segment anything (see `pipelines/segment.py`) and does not store frames (shards).
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np

from ragar_data.errors import InputError

# Upstream constants (OpenGait datasets/pretreatment.py): a frame must hold more than this pixel sum,
# and a sequence with fewer kept frames gets a warning.
MIN_PIXEL_SUM = 10000
MIN_FRAMES = 5


class FewFramesWarning(UserWarning):
    """A sequence kept fewer than MIN_FRAMES frames after normalisation (upstream warns the same)."""


def _as_uint8(masks) -> tuple[np.ndarray, int]:
    """(uint8 view of the masks, factor to 0..255 grey levels): bool masks are read as 0/1 without a copy."""
    masks = np.ascontiguousarray(masks)
    if masks.ndim != 3:
        raise InputError(f"masks must be (T, H, W), got shape {masks.shape}")
    if masks.dtype == bool:
        return masks.view(np.uint8), 255
    if masks.dtype != np.uint8:
        raise InputError(f"masks must be bool or uint8 (0/255 grayscale), got dtype {masks.dtype}")
    return masks, 1


def _row_sums(masks: np.ndarray) -> np.ndarray:
    """(T, H) int64 sums of each image row. One cv2.reduce over all rows of all frames: several times faster
    than numpy's uint8 -> int64 sum on full-HD masks; int32 cannot overflow (a row holds W * 255 at most)."""
    count, height, width = masks.shape
    if count * height == 0 or width == 0:
        return np.zeros((count, height), np.int64)
    sums = cv2.reduce(masks.reshape(count * height, width), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    return sums.reshape(count, height).astype(np.int64)


def normalise_sequence(masks, size: int = 64, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalise silhouettes as OpenGait's pretreatment does.

    masks: (T, H, W) bool, or uint8 grayscale (0/255 for binary silhouettes; other grey levels are used as
    upstream would read them from PNG). size: output height and width (64, or 128 for the 128x88 option),
    even. name: sequence name used in the few-frames warning.

    Returns (frames (S, size, size) uint8, kept_index (S,) int64 positions of the kept input frames).
    """
    if size <= 0 or size % 2:
        raise InputError(f"size must be a positive even number (64 or 128), got {size}")
    masks, grey = _as_uint8(masks)
    count, height, width = masks.shape
    half = size // 2
    if count == 0:
        return np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64)

    row_sums = _row_sums(masks) * grey
    candidates = np.flatnonzero(row_sums.sum(axis=1) > MIN_PIXEL_SUM)
    rows_filled = row_sums[candidates] != 0  # (n, H), upstream's y_sum != 0
    tops = rows_filled.argmax(axis=1)
    bottoms = height - 1 - rows_filled[:, ::-1].argmax(axis=1)
    crop_heights = bottoms - tops + 1
    # Same float64 expression as upstream: int(size * (w / h)), truncation toward zero.
    resized_widths = (size * (width / crop_heights)).astype(np.int64)
    if candidates.size and resized_widths.min() == 0:
        bad = int(candidates[resized_widths.argmin()])
        raise InputError(
            f"{name or 'sequence'}: frame {bad} is {crop_heights.min()} rows tall but the image is only {width} "
            f"columns wide; resizing it to height {size} gives width 0 (upstream's cv2.resize fails the same way)"
        )

    # Resize each crop, then pad every frame to one common width so centring and cutting are batched.
    padded_width = int(resized_widths.max(initial=0)) + size
    canvas = np.zeros((candidates.size, size, padded_width), np.uint8)
    for slot, (frame, top, bottom, new_width) in enumerate(zip(candidates, tops, bottoms, resized_widths)):
        crop = masks[frame, top:bottom + 1]
        canvas[slot, :, half:half + new_width] = cv2.resize(
            crop * np.uint8(grey) if grey != 1 else crop, (int(new_width), size), interpolation=cv2.INTER_CUBIC
        )

    # x-centre: first column (of the resized image) whose cumulative sum exceeds half the total, i.e.
    # 2 * csum > total in exact integers (upstream compares a uint64 with a float64 half, same result).
    column_sums = canvas.sum(axis=1, dtype=np.int64)  # (n, padded_width), zeros outside the image
    cumulative = np.cumsum(column_sums, axis=1)
    totals = cumulative[:, -1:]
    over_half = 2 * cumulative > totals
    has_centre = over_half.any(axis=1)
    centres = over_half.argmax(axis=1) - half  # canvas column -> resized-image column
    keep = has_centre & (centres != 0)  # upstream drops x_center None and x_center == 0 alike

    # Image columns [centre - half, centre + half) are canvas columns [centre, centre + size); the `half`
    # zero columns on each side of the canvas are upstream's zero padding.
    kept_slots = np.flatnonzero(keep)
    columns = centres[kept_slots, None] + np.arange(size)[None, :]
    frames = np.take_along_axis(canvas[kept_slots], columns[:, None, :], axis=2)
    kept_index = candidates[kept_slots].astype(np.int64)

    if kept_index.size < MIN_FRAMES:
        warnings.warn(
            f"{name or 'sequence'}: only {kept_index.size} of {count} frames kept by silhouette normalisation "
            f"(fewer than {MIN_FRAMES})",
            FewFramesWarning,
            stacklevel=2,
        )
    return np.ascontiguousarray(frames), kept_index


def cutting_columns(width: int) -> int:
    """Columns the OpenGait loader cuts from each side of a frame `width` wide: int(width // 64) * 10."""
    return int(width // 64) * 10


def cut_width(frames: np.ndarray, size: int | None = None) -> np.ndarray:
    """OpenGait's `BaseSilCuttingTransform` cut: drop int(W // 64) * 10 columns each side (64 -> 44, 128 -> 88).

    frames: (..., H, W). size: the expected W (checked when given).
    """
    width = frames.shape[-1]
    if size is not None and width != size:
        raise InputError(f"frames are {width} wide, expected {size}")
    cut = cutting_columns(width)
    return frames[..., cut:width - cut] if cut else frames
