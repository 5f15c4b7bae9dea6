"""Ground-truth files of synthetic sequences: `OUT/ground_truth/<subject>/c<k>/<condition>/<view:03d>.npz`.

One compressed npz per sequence (keys in `save_ground_truth`); masks are stored bit-packed along the width
(np.packbits) with their (H, W) shape, and `load_ground_truth` unpacks them to (T, H, W) bool.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ragar_data.atomic import atomic_write_bytes
from ragar_data.errors import InputError, RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.synth.sequence import unpack_masks

# joint order of `keypoints_2d` (COCO-17: x, y in pixels, visibility) and `keypoints_3d` (H36M-17: camera frame,
# metres) as the generator places them (`gait.walker_geometry`)
COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
H36M17_JOINTS = (
    "root", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "belly", "neck",
    "nose", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)
REQUIRED = ("frame_index", "boxes", "masks", "mask_shape", "keypoints_2d", "keypoints_3d", "K", "R", "t",
            "labels", "illumination")


def ground_truth_relpath(key: SequenceKey) -> Path:
    return Path(key.subject) / f"c{key.combination}" / key.condition / f"{key.view:03d}.npz"


def save_ground_truth(path: str | Path, truth: dict) -> Path:
    """Write a ground-truth dict atomically. Accepts bit-packed (`masks_packed`, as streamed by the generator)
    or unpacked (`masks` (T,H,W) bool) masks; the file always holds them packed under `masks`."""
    path = Path(path)
    arrays = {}
    for name, value in truth.items():
        if name.endswith("masks_packed"):
            arrays[name[: -len("_packed")]] = value
        elif name.endswith("masks"):
            arrays[name] = np.packbits(np.asarray(value, dtype=bool), axis=-1)
        else:
            arrays[name] = np.asarray(value)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise InputError(f"{path}: ground truth lacks {missing}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_ground_truth(path: str | Path) -> dict:
    """The ground truth of one sequence, `masks` (and `distractor_masks`) unpacked to (T, H, W) bool."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            truth = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise RagarDataError(f"{path}: not a readable ground-truth npz: {error}") from error
    missing = [k for k in REQUIRED if k not in truth]
    if missing:
        raise RagarDataError(f"{path}: ground truth lacks keys {missing} (has {sorted(truth)})")
    shape = truth["mask_shape"]
    for name in ("masks", "distractor_masks"):
        if name in truth:
            packed = truth[name]
            if packed.ndim != 3 or packed.shape[1] != shape[0] or packed.shape[2] != (int(shape[1]) + 7) // 8:
                raise RagarDataError(f"{path}: {name} has shape {packed.shape}, expected (T, {shape[0]}, "
                                     f"{(int(shape[1]) + 7) // 8}) bit-packed for mask_shape {tuple(shape)}")
            truth[name] = unpack_masks(packed, shape)
    return truth
