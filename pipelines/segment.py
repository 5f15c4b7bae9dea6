"""Segment stage: the subject's full-resolution mask in every frame of its track.

Two shapes of segmenter: a model segmenter (`segment(frames, boxes) -> (B, H, W) bool`, e.g. PP-HumanSeg) sees
batches of frames with the subject's box; the built-in `ForegroundSegmenter` works per sequence on what the
background detector learnt, refining its reduced-resolution foreground at full resolution inside the subject's
box. Masks are kept as crops (`SubjectMasks`) so a 1080p sequence does not hold T full frames of masks.
Does not own: silhouette normalisation (`ragar_data.silhouettes`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from ragar_data.pipelines.decode import Clip
from ragar_data.pipelines.detect import BackgroundModel, classify_foreground
from ragar_data.pipelines.select import SubjectTrack


class Segmenter(Protocol):
    def segment(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """frames (B, H, W, 3) RGB uint8, boxes (B, 4) x1, y1, x2, y2 -> masks (B, H, W) bool."""


@dataclass
class SubjectMasks:
    """Per subject frame: crop origin and extent (x0, y0, x1, y1) in the full frame, and the crop's mask."""

    origins: np.ndarray  # (T', 4) int32
    crops: list  # T' arrays (y1 - y0, x1 - x0) bool
    image_size: tuple[int, int]  # (width, height)

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
        """(n, h, W) uint8 0/255 masks of the given frames, full image width, rows shifted to the top.

        OpenGait's normalisation is invariant to vertical shifts and depends on the image width, so this gives
        the silhouettes of the full-frame masks without holding full frames.
        """
        width, _ = self.image_size
        tall = max([self.crops[i].shape[0] for i in indices] + [1])
        canvas = np.zeros((len(indices), tall, width), np.uint8)
        for row, index in enumerate(indices):
            x0, _, x1, _ = self.origins[index]
            crop = self.crops[index]
            canvas[row, : crop.shape[0], x0:x1][crop] = 255
        return canvas

    def to_bytes(self) -> bytes:
        """Bit-packed crops in one .npz (for `--keep-masks`, QA and viz; never written into shards)."""
        sizes = np.asarray([c.shape for c in self.crops], np.int32).reshape(-1, 2)
        bits = np.packbits(np.concatenate([c.ravel() for c in self.crops])) if self.crops else np.zeros(0, np.uint8)
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


def padded_box(box: np.ndarray, padding: float, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    width, height = image_size
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    pad_x, pad_y = (x2 - x1) * padding, (y2 - y1) * padding
    return (max(0, int(np.floor(x1 - pad_x))), max(0, int(np.floor(y1 - pad_y))),
            min(width, int(np.ceil(x2 + pad_x))), min(height, int(np.ceil(y2 + pad_y))))


def _fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """Holes (background regions not connected to the crop edge) smaller than max_area become foreground."""
    inverse = (~mask).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    if count <= 1:
        return mask
    height, width = mask.shape
    left, top, w, h, area = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4]
    touches = (left == 0) | (top == 0) | (left + w >= width) | (top + h >= height)
    fill = ~touches & (area <= max_area)
    fill[0] = False
    return mask | fill[labels]


class ForegroundSegmenter:
    """Refines the background detector's reduced-resolution foreground at full resolution in the subject's box.

    Full-resolution background inside the region the subject crosses: the mean of sampled frames where the
    reduced-resolution foreground (dilated) says a pixel is background; the upsampled reduced background where
    no sampled frame is clean. Each frame is gain-normalised, classified with the same colour-distance and
    shadow test as the detector, restricted to the dilated reduced-resolution foreground of the subject's
    component, cleaned, and small holes (clothes that match the background) filled.
    """

    def __init__(self, *, background_frames: int = 12, hole_fraction: float = 0.02, **unknown):
        if unknown:
            raise ValueError(f"foreground segmenter: unknown option(s) {sorted(unknown)}")
        self.background_frames = background_frames
        self.hole_fraction = hole_fraction

    def _full_background(self, clip: Clip, model: BackgroundModel, region: tuple[int, int, int, int],
                         dilate: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = region
        width, height = clip.image_size
        sample = np.unique(np.linspace(0, clip.num_frames - 1, min(clip.num_frames, self.background_frames))
                           .round().astype(int))
        total = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
        weight = np.zeros((y1 - y0, x1 - x0), np.float32)
        for position in sample:
            clean = 1 - cv2.dilate(model.foreground[position].view(np.uint8), dilate)
            clean = cv2.resize(clean, (width, height), interpolation=cv2.INTER_NEAREST)[y0:y1, x0:x1]
            frame = clip.frames[position][y0:y1, x0:x1].astype(np.float32) / model.gains[position]
            cv2.accumulate(frame, total, mask=clean)
            weight += clean
        reduced = cv2.resize(model.background, (width, height), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
        seen = weight > 0
        background = reduced.copy()
        background[seen] = np.clip(np.round(total[seen] / weight[seen, None]), 0, 255).astype(np.uint8)
        return background

    def segment_sequence(self, clip: Clip, model: BackgroundModel, subject: SubjectTrack,
                         box_padding: float = 0.1) -> SubjectMasks:
        width, height = clip.image_size
        boxes = [padded_box(box, box_padding, clip.image_size) for box in subject.boxes]
        region = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                  max(b[3] for b in boxes))
        factor = 1.0 / clip.scale
        dilate = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        background = self._full_background(clip, model, region, dilate)
        close_size = max(3, int(round(3 * factor)) | 1)
        close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_size, close_size))
        open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        small_h, small_w = model.foreground.shape[1:]
        origins, crops = [], []
        for position, (x0, y0, x1, y1), box in zip(subject.frame, boxes, subject.boxes):
            reference = np.ascontiguousarray(background[y0 - region[1]:y1 - region[1], x0 - region[0]:x1 - region[0]])
            mask = classify_foreground(np.ascontiguousarray(clip.frames[position][y0:y1, x0:x1]),
                                       float(model.gains[position]), reference, model.threshold, model.shadow)
            # prior: the reduced foreground, dilated by a reduced pixel, cut to the padded box
            sx0, sy0 = int(x0 * clip.scale), int(y0 * clip.scale)
            sx1, sy1 = min(small_w, int(np.ceil(x1 * clip.scale)) + 1), min(small_h, int(np.ceil(y1 * clip.scale)) + 1)
            prior_small = cv2.dilate(model.foreground[position, sy0:sy1, sx0:sx1].view(np.uint8), dilate)
            prior = cv2.resize(prior_small, (int(round((sx1 - sx0) * factor)), int(round((sy1 - sy0) * factor))),
                               interpolation=cv2.INTER_NEAREST)
            ox, oy = int(round(x0 - sx0 * factor)), int(round(y0 - sy0 * factor))
            prior = prior[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]
            if prior.shape != mask.shape:
                prior = np.pad(prior, ((0, mask.shape[0] - prior.shape[0]), (0, mask.shape[1] - prior.shape[1])))
            mask = (mask & prior.astype(bool)).view(np.uint8)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, open_kernel)
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, close_kernel).astype(bool)
            box_area = float((box[2] - box[0]) * (box[3] - box[1]))
            mask = _keep_subject_components(mask, box, (x0, y0))
            mask = _fill_small_holes(mask, self.hole_fraction * box_area)
            origins.append((x0, y0, x1, y1))
            crops.append(mask)
        return SubjectMasks(np.asarray(origins, np.int32).reshape(-1, 4), crops, (width, height))


def _keep_subject_components(mask: np.ndarray, box: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """Keep the components that overlap the subject's (unpadded) box by at least half of their area."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    x0, y0 = origin
    bx0, by0 = max(0, int(box[0]) - x0), max(0, int(box[1]) - y0)
    bx1, by1 = int(np.ceil(box[2])) - x0, int(np.ceil(box[3])) - y0
    inside = np.bincount(labels[by0:by1, bx0:bx1].ravel(), minlength=count)
    keep = inside * 2 >= stats[:, 4]
    keep[0] = False
    return keep[labels]


def masks_from_model(segmenter: Segmenter, frames: np.ndarray, boxes: np.ndarray) -> SubjectMasks:
    return SubjectMasks.from_full(np.asarray(segmenter.segment(frames, boxes), bool))


SEGMENTERS = {
    "foreground": ForegroundSegmenter,
    "pp-humanseg": "ragar_data.pipelines.backends.humanseg:HumanSegOnnx",
    "pp-humanseg-paddle": "ragar_data.pipelines.backends.humanseg:HumanSegPaddle",
}
