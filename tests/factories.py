"""Builders of tiny test data shared by several test modules (one place, as lhotse's `testing/dummies.py`).

- `walker_masks`, `pretreat_reference`: walking-figure masks and our per-frame transcription of OpenGait's
  `datasets/pretreatment.py` rules (threshold, row crop, cubic resize by height, x-centre by the cumulative
  column sum, zero-padded window), which the vectorised library version must equal byte for byte;
- `walker_frames`, `random_labels`, `build_dataset`: a small dataset of shards with labels and poses.

Test modules import from here, never from each other.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np

from ragar_data.attributes import default_schema
from ragar_data.identity import SequenceKey
from ragar_data.shards import make_record, update_index, write_shard
from ragar_data.silhouettes import FewFramesWarning, normalise_sequence


# ------------------------------------------------------------------------------------------ silhouettes


def pretreat_reference(images, size=64):
    """One frame at a time, as upstream reads PNGs: returns (frames, kept positions)."""
    half = size // 2
    frames, kept = [], []
    for position, image in enumerate(images):
        if image.sum() <= 10000:
            continue
        filled_rows = np.flatnonzero(image.sum(axis=1) != 0)
        crop = image[filled_rows[0]:filled_rows[-1] + 1, :]
        ratio = crop.shape[1] / crop.shape[0]
        resized = cv2.resize(crop, (int(size * ratio), size), interpolation=cv2.INTER_CUBIC)
        cumulative = resized.sum(axis=0).cumsum()
        centre = None
        for column, running in enumerate(cumulative):
            if running > resized.sum() / 2:
                centre = column
                break
        if not centre:  # upstream drops both "no centre" and centre 0
            continue
        left, right = centre - half, centre + half
        if left <= 0 or right >= resized.shape[1]:
            zeros = np.zeros((resized.shape[0], half))
            resized = np.concatenate([zeros, resized, zeros], axis=1)
            left, right = left + half, right + half
        frames.append(resized[:, left:right].astype("uint8"))
        kept.append(position)
    return np.asarray(frames, dtype=np.uint8).reshape(-1, size, size), np.asarray(kept, dtype=np.int64)


def walker_masks(count, height, width, rng, scale=1.0, x_shift=0.0, y_shift=0.0):
    """Ellipse walkers: torso, head and two swinging legs; uint8 0/255."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    masks = np.zeros((count, height, width), np.uint8)
    for frame in range(count):
        phase = 2 * np.pi * frame / 16 + rng.uniform(-0.2, 0.2)
        cx = width * (0.5 + x_shift) + rng.uniform(-3, 3) + 2 * frame * (x_shift != 0)
        cy = height * (0.5 + y_shift)
        person = scale * height * rng.uniform(0.55, 0.8)
        parts = [
            (cx, cy - 0.15 * person, 0.12 * person, 0.25 * person),  # torso
            (cx, cy - 0.45 * person, 0.07 * person, 0.08 * person),  # head
            (cx + 0.08 * person * np.sin(phase), cy + 0.22 * person, 0.05 * person, 0.25 * person),
            (cx - 0.08 * person * np.sin(phase), cy + 0.22 * person, 0.05 * person, 0.25 * person),
        ]
        inside = np.zeros((height, width), bool)
        for px, py, rx, ry in parts:
            inside |= ((cols - px) / max(rx, 0.5)) ** 2 + ((rows - py) / max(ry, 0.5)) ** 2 <= 1
        masks[frame] = inside * 255
    return masks


# ------------------------------------------------------------------------------------------ shard datasets


def walker_frames(count, rng, height=72, width=96):
    """Silhouette masks of a bobbing ellipse person, normalised to (S, 64, 64) uint8 frames."""
    rows, cols = np.mgrid[0:height, 0:width]
    masks = np.zeros((count, height, width), np.uint8)
    for frame in range(count):
        cx = width / 2 + 6 * np.sin(frame / 3) + rng.uniform(-1, 1)
        ry = height * rng.uniform(0.3, 0.42)
        masks[frame] = (((cols - cx) / 9) ** 2 + ((rows - height / 2) / ry) ** 2 <= 1) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewFramesWarning)
        return normalise_sequence(masks)


def random_labels(rng, schema):
    return np.array([rng.integers(0, n) for n in schema.num_classes], dtype=np.int8)


def build_dataset(root, subjects=("001", "002", "003"), conditions=("nm-01", "bg-01"), views=(0, 36),
                  lengths=(40, 7, 25), with_pose=True, rows_per_shard=5, seed=0):
    """A small dataset of shards; sequence lengths cycle through `lengths`. Returns {key: record}."""
    rng = np.random.default_rng(seed)
    schema = default_schema()
    labels = {(s, c): random_labels(rng, schema) for s in subjects for c in (0, 1)}
    records = {}
    number = 0
    for subject in subjects:
        for combination in (0, 1):
            for condition in conditions:
                for view in views:
                    key = SequenceKey(subject, combination, condition, view)
                    count = lengths[number % len(lengths)]
                    number += 1
                    frames, kept = walker_frames(count, rng)
                    keypoints = rng.uniform(0, 300, (count, 17, 3)).astype(np.float32) if with_pose else None
                    records[str(key)] = make_record(
                        key, image_width=320, image_height=180, labels=labels[(subject, combination)],
                        frame_index=np.arange(count, dtype=np.int32),
                        boxes=rng.uniform(0, 100, (count, 4)).astype(np.float32),
                        silhouettes=frames, silhouette_frame_index=kept.astype(np.int32),
                        keypoints_2d=keypoints, keypoints_2d_model="synthetic" if with_pose else None,
                        keypoints_3d=keypoints, keypoints_3d_model="synthetic" if with_pose else None,
                    )
    items = list(records.values())
    infos = [write_shard(root, f"part-{start // rows_per_shard:03d}", items[start:start + rows_per_shard])
             for start in range(0, len(items), rows_per_shard)]
    update_index(root, infos)
    return records
