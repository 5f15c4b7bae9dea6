"""Pose pickle export: (T, 17, 3) float32 per sequence in the OpenGait tree; round trip through the importer."""
from __future__ import annotations

import json
import pickle

import numpy as np
from click.testing import CliRunner

from ragar_data.cli.main import cli
from ragar_data.identity import SequenceKey
from ragar_data.opengait import import_opengait
from ragar_data.pose_export import export_pose
from ragar_data.shards import ShardDataset, make_record, update_index, write_shard
from factories import build_dataset


def test_export_pose_tree(tmp_path):
    records = build_dataset(tmp_path / "data", subjects=("001", "002"), lengths=(11, 6))
    (tmp_path / "data" / "partition.json").write_text(json.dumps({"TRAIN_SET": ["001"], "TEST_SET": ["002"]}))
    summary = export_pose(tmp_path / "data", tmp_path / "pose", progress=False)
    assert summary.written == len(records) and summary.partition == tmp_path / "pose" / "partition.json"
    pickles = sorted((tmp_path / "pose").glob("*/*/*/*.pkl"))
    assert len(pickles) == len(records)
    for path in pickles:
        assert path.stem == path.parent.name  # <view>/<view>.pkl
        key = SequenceKey(path.parts[-4], int(path.parts[-3][1]), path.parts[-3][3:], int(path.parent.name))
        with open(path, "rb") as handle:
            keypoints = pickle.load(handle)
        assert keypoints.dtype == np.float32 and keypoints.shape[1:] == (17, 3)
        np.testing.assert_array_equal(keypoints, records[str(key)]["keypoints_2d"])


def test_pose_round_trip_with_ragar_naming(tmp_path):
    records = build_dataset(tmp_path / "data", subjects=("004",), lengths=(8, 13))
    export_pose(tmp_path / "data", tmp_path / "pose", naming="ragar", progress=False)
    summary = import_opengait(tmp_path / "pose", tmp_path / "imported", modality="pose", progress=False)
    assert summary.sequences == len(records)
    imported = ShardDataset(tmp_path / "imported")
    for key in imported.keys():
        record = imported.read_record(key)
        np.testing.assert_array_equal(record["keypoints_2d"], records[key]["keypoints_2d"])
        np.testing.assert_array_equal(record["labels"], records[key]["labels"])
        assert record["num_frames"] == len(records[key]["keypoints_2d"])
        assert record["num_silhouettes"] == 0  # a pose release has no silhouettes


def test_sequences_without_pose_are_skipped_and_counted(tmp_path):
    build_dataset(tmp_path / "data", subjects=("001",), conditions=("nm-01",), views=(0,))
    no_pose = make_record(SequenceKey("002", 0, "nm-01", 0), image_width=10, image_height=10,
                          labels=np.zeros(15, np.int8), frame_index=np.arange(5, dtype=np.int32),
                          boxes=np.zeros((5, 4), np.float32), silhouette_frame_index=np.zeros(0, np.int32))
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "nopose", [no_pose])])
    summary = export_pose(tmp_path / "data", tmp_path / "pose", progress=False)
    assert summary.without_pose == ["002-c0-nm-01-000"] and summary.written == 2
    assert not (tmp_path / "pose" / "002").exists()
    again = export_pose(tmp_path / "data", tmp_path / "pose", progress=False)
    assert again.written == 0 and again.existing == 2


def test_cli_export_pose(tmp_path):
    records = build_dataset(tmp_path / "data", subjects=("001",), conditions=("nm-01",), views=(0, 36))
    result = CliRunner().invoke(cli, ["export", "pose", str(tmp_path / "data"), str(tmp_path / "pose")])
    assert result.exit_code == 0, result.output
    assert f"wrote {len(records)} pose pickles" in result.output
