"""The subject's full-resolution masks of one sequence, kept as crops (`SubjectMasks`), and their .npz format.

A 1080p sequence holds T crops around the subject rather than T full frames, bit-packed (`PackedCrops`: a
1080p walker's crop is about 150 KB as bool, 19 KB packed, so a long sequence's masks stay small). The segment stage makes them; the
runner writes them with `extract --keep-masks`; qa and viz read them back (`ragar_data.run_state`).
Does not own: segmentation (`ragar_data.pipelines.segment`) or the normalisation rules (`ragar_data.silhouettes`):
`SubjectMasks.silhouettes` only lays the crops out as the full-frame masks upstream's pretreatment would read.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragar_data.silhouettes import FewFramesWarning, normalise_sequence


@dataclass(frozen=True)
class PackedCrop:
    """One bool mask, bit-packed (`np.packbits` of its rows one after the other)."""

    shape: tuple[int, int]
    bits: np.ndarray  # (ceil(h w / 8),) uint8

    @classmethod
    def of(cls, crop) -> PackedCrop:
        if isinstance(crop, PackedCrop):
            return crop
        crop = np.asarray(crop, bool)
        return cls((int(crop.shape[0]), int(crop.shape[1])), np.packbits(crop))

    def unpack(self) -> np.ndarray:
        height, width = self.shape
        return np.unpackbits(self.bits, count=height * width).view(bool).reshape(height, width)


class PackedCrops(Sequence):
    """The crops of a sequence kept bit-packed; indexing unpacks one crop (a new bool array)."""

    def __init__(self, crops=()):
        self.packed = [PackedCrop.of(crop) for crop in crops]

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            return [crop.unpack() for crop in self.packed[index]]
        return self.packed[index].unpack()

    def __iter__(self):
        return (crop.unpack() for crop in self.packed)

    def shape(self, index: int) -> tuple[int, int]:
        """(h, w) of crop `index`, without unpacking it."""
        return self.packed[index].shape


@dataclass
class SubjectMasks:
    """Per subject frame: crop origin and extent (x0, y0, x1, y1) in the full frame, and the crop's mask.
    `crops` may be given as bool arrays or `PackedCrop`s; it is kept as `PackedCrops` (reads give bool arrays)."""

    origins: np.ndarray  # (T', 4) int32
    crops: PackedCrops  # T' masks (y1 - y0, x1 - x0) bool
    image_size: tuple[int, int]  # (width, height)

    def __post_init__(self):
        if not isinstance(self.crops, PackedCrops):
            self.crops = PackedCrops(self.crops)

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def from_full(cls, masks: np.ndarray) -> SubjectMasks:
        origins, crops = [], []
        for mask in masks:
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if rows.size == 0:
                origins.append((0, 0, 0, 0))
                crops.append(np.zeros((0, 0), bool))
                continue
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            origins.append((x0, y0, x1, y1))
            crops.append(np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=bool))
        height, width = masks.shape[1:]
        return cls(np.asarray(origins, np.int32).reshape(-1, 4), crops, (width, height))

    @classmethod
    def from_windows(cls, windows: list, image_size: tuple[int, int]) -> SubjectMasks:
        """The same as `from_full` of the full-frame masks that `windows` describe, without building them:
        `windows` holds per frame (x0, y0, mask) with the mask's window placed at x0, y0 (nothing outside it)."""
        origins, crops = [], []
        for x0, y0, mask in windows:
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if rows.size == 0:
                origins.append((0, 0, 0, 0))
                crops.append(np.zeros((0, 0), bool))
                continue
            origins.append((x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1))
            crops.append(np.ascontiguousarray(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], dtype=bool))
        return cls(np.asarray(origins, np.int32).reshape(-1, 4), crops, tuple(image_size))

    def crops_with_origins(self) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        return [(tuple(int(v) for v in origin), crop) for origin, crop in zip(self.origins, self.crops)]

    def full(self, index: int) -> np.ndarray:
        width, height = self.image_size
        mask = np.zeros((height, width), bool)
        x0, y0, x1, y1 = self.origins[index]
        mask[y0:y1, x0:x1] = self.crops[index]
        return mask

    def areas(self) -> np.ndarray:
        return np.asarray([int(c.sum()) for c in self.crops], np.int64)

    def touches_border(self, margin: int) -> np.ndarray:
        """(T',) bool: the mask comes within `margin` pixels of the image edge (a truncated person)."""
        width, height = self.image_size
        touching = np.zeros(len(self), bool)
        for index, (crop, (x0, y0, x1, y1)) in enumerate(zip(self.crops, self.origins)):
            if not crop.any():
                continue
            rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
            touching[index] = (x0 + cols[0] < margin or y0 + rows[0] < margin or
                               x0 + cols[-1] >= width - margin or y0 + rows[-1] >= height - margin)
        return touching

    def canvas(self, indices: np.ndarray) -> np.ndarray:
        """(n, h, W) bool masks of the given frames: each crop at its own x offset on a canvas as wide as the
        source image and as tall as the tallest crop (top-aligned).

        OpenGait's pretreatment keeps the rows that hold the silhouette but every column of the image, and
        resizes that band to width int(64 W / h): the image width W sets the resampling, so a crop moved to
        another x offset or onto a narrower canvas gives other bytes. Rows need no offset: upstream drops the
        empty rows above and below anyway.
        """
        width = self.image_size[0]
        if len(indices) == 0:
            return np.zeros((0, 1, max(1, width)), bool)
        tall = max(self.crops.shape(i)[0] for i in indices)
        canvas = np.zeros((len(indices), max(1, tall), max(1, width)), bool)
        for row, index in enumerate(indices):
            crop = self.crops[index]
            x0 = int(self.origins[index][0])
            canvas[row, : crop.shape[0], x0: x0 + crop.shape[1]] = crop
        return canvas

    def silhouettes(self, positions: np.ndarray, size: int, name: str, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """OpenGait-normalised (S, size, size) uint8 silhouettes of the frames at `positions`, and the positions
        kept: the frames equal OpenGait's pretreatment of the full-frame masks, byte for byte. Works in chunks
        of `chunk` frames so that long 1080p sequences stay in bounded memory."""
        pieces, kept = [], []
        for start in range(0, len(positions), chunk):
            part = np.asarray(positions[start:start + chunk])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FewFramesWarning)
                frames, kept_positions = normalise_sequence(self.canvas(part), size=size, name=name)
            pieces.append(frames)
            kept.append(part[kept_positions])
        if not pieces:
            return np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64)
        return np.concatenate(pieces), np.concatenate(kept).astype(np.int64)

    def to_bytes(self) -> bytes:
        """Bit-packed crops in one .npz (for `--keep-masks`, QA and viz; never written into shards)."""
        sizes = np.asarray([self.crops.shape(i) for i in range(len(self))], np.int32).reshape(-1, 2)
        bits = np.packbits(np.concatenate([c.ravel() for c in self.crops])) if len(self) else np.zeros(0, np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, origins=self.origins, sizes=sizes, bits=bits,
                            image_size=np.asarray(self.image_size, np.int32))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SubjectMasks:
        with np.load(io.BytesIO(data)) as npz:
            sizes = npz["sizes"]
            flat = np.unpackbits(npz["bits"], count=int((sizes[:, 0] * sizes[:, 1]).sum())).astype(bool)
            origins, image_size = npz["origins"], tuple(int(v) for v in npz["image_size"])
        ends = np.cumsum(sizes[:, 0] * sizes[:, 1])
        crops = [part.reshape(h, w) for part, (h, w) in zip(np.split(flat, ends[:-1]), sizes)] if len(sizes) else []
        return cls(origins, crops, image_size)


def full_masks(windows: list, image_size: tuple[int, int]) -> np.ndarray:
    """(B, H, W) bool full-frame masks from per-frame (x0, y0, window mask) (see `SubjectMasks.from_windows`)."""
    width, height = image_size
    masks = np.zeros((len(windows), height, width), bool)
    for mask, (x0, y0, window) in zip(masks, windows):
        mask[y0:y0 + window.shape[0], x0:x0 + window.shape[1]] = window
    return masks
