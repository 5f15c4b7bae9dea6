"""The generator's ground-truth COCO-17 keypoints as a dataset's ``keypoints_2d``: pose input for the pose models
(GaitGraph, GaitGraph2, GaitTR, GPGait) on a dataset extracted from synthetic video without a pose preset.

`import_synth_pose` writes a new dataset folder: the source dataset's shards with ``keypoints_2d`` taken from
``SYNTH/ground_truth/<subject>/c<k>/<condition>/<view>.npz`` at each row's ``frame_index`` and
``keypoints_2d_model = "synthetic-ground-truth"``; every other column is copied unchanged, and the source's
``partition.json`` is copied when present. The source dataset is only read. Owns the frame matching and the
score channel; does not own the shard format (`ragar_data.shards`) nor the ground-truth files
(`ragar_data.synth.ground_truth`).
"""
from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ragar_data.errors import InputError, RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.shards import read_index, read_table, update_index, write_shard_table
from ragar_data.synth.ground_truth import ground_truth_relpath

POSE_MODEL = "synthetic-ground-truth"
JOINTS = 17


def ground_truth_keypoints(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(frame_index (T,), keypoints_2d (T, 17, 3), (height, width)) of one ground-truth npz, masks not read."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            frames, keypoints, shape = archive["frame_index"], archive["keypoints_2d"], archive["mask_shape"]
    except FileNotFoundError:
        raise RagarDataError(f"{path}: no ground truth for this sequence (is the --ground-truth folder the synth "
                             "output the dataset was extracted from?)") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise RagarDataError(f"{path}: not a readable ground-truth npz with frame_index, keypoints_2d and "
                             f"mask_shape: {error}") from None
    if keypoints.ndim != 3 or keypoints.shape[1:] != (JOINTS, 3) or len(keypoints) != len(frames):
        raise RagarDataError(f"{path}: keypoints_2d has shape {keypoints.shape}, expected ({len(frames)}, 17, 3)")
    return frames, keypoints, (int(shape[0]), int(shape[1]))


def keypoints_at(frame_index: np.ndarray, truth_frames: np.ndarray, truth_keypoints: np.ndarray,
                 image_size: tuple[int, int], where: str) -> np.ndarray:
    """(T, 17, 3) x, y, score at the row's frames. The generator stores score 0 for every joint; here a joint
    inside the image gets score 1 (the ground truth is exact) and one outside it score 0, as a detector
    reports joints it cannot see."""
    lookup = {int(f): i for i, f in enumerate(truth_frames)}
    missing = [int(f) for f in frame_index if int(f) not in lookup]
    if missing:
        raise RagarDataError(f"{where}: frames {missing[:5]} of the shard row have no ground truth")
    keypoints = truth_keypoints[[lookup[int(f)] for f in frame_index]].astype(np.float32)
    height, width = image_size
    x, y = keypoints[..., 0], keypoints[..., 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height) & np.isfinite(x) & np.isfinite(y)
    keypoints[..., 2] = inside.astype(np.float32)
    return keypoints


@dataclass
class PoseImportSummary:
    out_dir: Path
    sequences: int
    shards: int

    def __str__(self) -> str:
        return (f"{self.out_dir}: {self.sequences} sequences in {self.shards} shards with keypoints_2d from the "
                f"synthetic ground truth ({POSE_MODEL})")


def _with_keypoints(table: pa.Table, truth_root: Path) -> pa.Table:
    rows = []
    for key, frames in zip(table["key"].to_pylist(), table["frame_index"].to_pylist()):
        path = truth_root / ground_truth_relpath(SequenceKey.parse(key))
        truth_frames, truth_keypoints, size = ground_truth_keypoints(path)
        rows.append(keypoints_at(np.asarray(frames), truth_frames, truth_keypoints, size, f"{path} ({key})"))
    keypoints = pa.array([r.reshape(-1).tolist() for r in rows], type=pa.list_(pa.float32()))
    models = pa.array([POSE_MODEL] * table.num_rows, type=pa.string())
    table = table.set_column(table.schema.get_field_index("keypoints_2d"), "keypoints_2d", keypoints)
    return table.set_column(table.schema.get_field_index("keypoints_2d_model"), "keypoints_2d_model", models)


def import_synth_pose(dataset_dir: str | Path, ground_truth: str | Path, out_dir: str | Path) -> PoseImportSummary:
    """Write ``out_dir``: ``dataset_dir``'s shards with the ground-truth keypoints_2d (see the module)."""
    dataset_dir, ground_truth, out_dir = Path(dataset_dir), Path(ground_truth), Path(out_dir)
    truth_root = ground_truth / "ground_truth" if (ground_truth / "ground_truth").is_dir() else ground_truth
    if not truth_root.is_dir():
        raise InputError(f"{ground_truth}: not a synth output folder (no ground_truth/ inside)")
    if out_dir.resolve() == dataset_dir.resolve():
        raise InputError(f"{out_dir}: the output must be a new folder, not the source dataset")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: exists and is not empty; give a new folder (nothing there is replaced)")
    entries = read_index(dataset_dir)["shards"]
    lacking = [key for entry in entries for key in entry["keys"]
               if not (truth_root / ground_truth_relpath(SequenceKey.parse(key))).is_file()]
    if lacking:
        raise RagarDataError(f"{truth_root}: no ground truth for {len(lacking)} sequences of {dataset_dir}, e.g. "
                             f"{lacking[:3]} (is it the synth output the dataset was extracted from?)")
    infos = []
    for entry in entries:
        table = read_table(dataset_dir / entry["file"], expected_sha256=entry["sha256"])
        infos.append(write_shard_table(out_dir, Path(entry["file"]).stem, _with_keypoints(table, truth_root)))
    update_index(out_dir, infos)
    if (dataset_dir / "partition.json").is_file():
        shutil.copyfile(dataset_dir / "partition.json", out_dir / "partition.json")
    return PoseImportSummary(out_dir, sum(info.rows for info in infos), len(infos))
