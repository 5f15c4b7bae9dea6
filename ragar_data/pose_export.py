"""Pose pickle trees for OpenGait's and FastPoseGait's pose models, from the shards' 2D keypoints.

Layout (same tree and type namings as `ragar_data.opengait`)::

    OUT/<subject>/<type>/<view:03d>/<view:03d>.pkl    numpy float32 (T, 17, 3): COCO-17 x, y in source-image
                                                      pixels, confidence; one row per tracked frame
    OUT/partition.json                                when the dataset has one (or --split FILE)

No rescaling or centring is applied: the pose models normalise themselves (GPGait rescales each frame to a
joint height and centres on the neck). Sequences without 2D keypoints (pose stage not run) are skipped and
counted; a dataset with no 2D keypoints at all is an error (an empty tree would only fail later, in the
pose model's loader). Resume, earlier exports and foreign folders as the silhouette tree
(`ragar_data.export_tree`). Does not own the silhouette tree (`ragar_data.opengait`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragar_data.attributes import default_schema
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.opengait import (
    finish_export,
    iter_dataset_records,
    pickle_bytes,
    sequence_pickle_path,
    TreeSummary,
    start_export,
    tree_lines,
)
from ragar_data.progress import track


@dataclass
class PoseExportSummary(TreeSummary):
    without_pose: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.out_root}: wrote {self.written} pose pickles, kept {self.existing} from an earlier run"]
        lines += tree_lines(self)
        if self.without_pose:
            lines.append(f"skipped {len(self.without_pose)} sequences without 2D keypoints, "
                         f"e.g. {self.without_pose[:3]}")
        if self.failed_quality:
            lines.append(f"left out {len(self.failed_quality)} sequences failing the quality filter "
                         f"(--include-failed keeps them), e.g. {self.failed_quality[:3]}")
        lines.append(f"partition: {self.partition}" if self.partition else "no partition file")
        return "\n".join(lines)


def export_pose(dataset_dir: str | Path, out_root: str | Path, naming: str = "key",
                partition: str | Path | None = None, overwrite: bool = False, include_failed: bool = False,
                progress: bool = True) -> PoseExportSummary:
    """Write every sequence's 2D keypoints as `<id>/<type>/<view>/<view>.pkl` (T, 17, 3) float32 pickles.

    Sequences failing the extraction's quality filter are left out unless `include_failed`."""
    dataset_dir, out_root = Path(dataset_dir), Path(out_root)
    schema = default_schema()
    summary = PoseExportSummary(out_root)
    check_has_keypoints(dataset_dir)
    total, writer = start_export(dataset_dir, out_root, naming, partition, summary, "pose", overwrite)
    records = iter_dataset_records(dataset_dir, ["key", "labels", "quality_ok", "keypoints_2d"])
    for record in track(records, "export pose", total, unit="seq", enabled=progress):
        key = SequenceKey.parse(record["key"])
        keypoints = record["keypoints_2d"]
        if not record["quality_ok"] and not include_failed:
            summary.failed_quality.append(str(key))
            continue
        if keypoints is None or len(keypoints) == 0:
            summary.without_pose.append(str(key))
            continue
        path = sequence_pickle_path(out_root, key, record["labels"], naming, schema)
        array = np.ascontiguousarray(keypoints, dtype=np.float32).reshape(-1, 17, 3)
        written = writer.write(path, pickle_bytes(array), str(key))
        summary.written += written
        summary.existing += not written
    finish_export(writer, summary)
    return summary


def check_has_keypoints(dataset_dir: Path) -> None:
    """Refuse a dataset none of whose sequences has 2D keypoints: `keypoints_2d_model` is null exactly when the
    pose stage did not run (shard schema), and reading it costs nothing next to the keypoints themselves."""
    from ragar_data.shards import ShardDataset

    models = ShardDataset(dataset_dir).table(columns=["keypoints_2d_model"])["keypoints_2d_model"]
    if models.null_count == len(models):
        raise RagarDataError(f"{dataset_dir}: no sequence has 2D keypoints (the pose stage did not run, or the "
                             "dataset was imported from silhouettes); nothing to export. Extract with a pose2d "
                             "backend (e.g. --preset paper) or import a pose tree first")
