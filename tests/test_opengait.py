"""OpenGait tree export/import: pretreatment-equal pickles, both type namings, round trips, layout errors."""
from __future__ import annotations

import json
import os
import pickle
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.opengait import (
    TreeLayoutError,
    export_opengait,
    import_opengait,
    parse_type_folder,
    ragar_type_name,
    walk_number,
)
from ragar_data.shards import ShardDataset, make_record, update_index, write_shard
from ragar_data.silhouettes import FewFramesWarning, normalise_sequence
from factories import build_dataset, pretreat_reference, walker_masks


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("og_dataset")
    records = build_dataset(root, subjects=("001", "002"), lengths=(12, 5, 9))
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": ["001"], "TEST_SET": ["002"]}))
    return root, records


def opengait_listing(root):
    """The sequences OpenGait's DataSet finds under `root` for the ids of its partition, loaded its way."""
    partition = json.loads((root / "partition.json").read_text())
    labels = os.listdir(root)
    found = {}
    for subject in [s for s in partition["TRAIN_SET"] + partition["TEST_SET"] if s in labels]:
        for type_name in sorted(os.listdir(root / subject)):
            for view in sorted(os.listdir(root / subject / type_name)):
                files = sorted(os.listdir(root / subject / type_name / view))
                arrays = []
                for name in files:
                    assert name.endswith(".pkl")  # upstream raises on anything else
                    with open(root / subject / type_name / view / name, "rb") as handle:
                        arrays.append(pickle.load(handle))
                found[(subject, type_name, view)] = arrays
    return found


def test_export_equals_pretreatment_of_the_same_images(tmp_path):
    # masks -> our normalisation -> shard -> export; must equal pretreatment's pickle of those images
    rng = np.random.default_rng(4)
    sequences = {
        SequenceKey("001", 0, "nm-01", 0): walker_masks(14, 120, 160, rng),
        SequenceKey("001", 0, "nm-01", 36): walker_masks(10, 120, 160, rng, x_shift=-0.46),
        SequenceKey("002", 2, "cl-02", 324): walker_masks(9, 90, 175, rng, scale=1.5),
    }
    sequences[SequenceKey("001", 0, "nm-01", 36)][3] = 0  # an empty frame, dropped by both
    records = []
    for key, masks in sequences.items():
        frames, kept = normalise_sequence(masks)
        records.append(make_record(key, image_width=masks.shape[2], image_height=masks.shape[1],
                                   labels=np.zeros(15, np.int8), frame_index=np.arange(len(masks), dtype=np.int32),
                                   boxes=np.zeros((len(masks), 4), np.float32), silhouettes=frames,
                                   silhouette_frame_index=kept.astype(np.int32)))
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "part-000", records)])
    export_opengait(tmp_path / "data", tmp_path / "tree", progress=False)
    for key, masks in sequences.items():
        path = tmp_path / "tree" / key.subject / key.type_name / key.view_name / f"{key.view_name}.pkl"
        with open(path, "rb") as handle:
            exported = pickle.load(handle)
        expected, _ = pretreat_reference(masks)
        assert exported.dtype == np.uint8 and exported.shape == expected.shape
        assert exported.tobytes() == expected.tobytes()


def test_export_key_naming_tree_and_partition(dataset, tmp_path):
    root, records = dataset
    summary = export_opengait(root, tmp_path, progress=False)
    assert summary.written == len(records) and summary.existing == 0
    assert json.loads((tmp_path / "partition.json").read_text()) == {"TRAIN_SET": ["001"], "TEST_SET": ["002"]}
    listing = opengait_listing(tmp_path)
    assert len(listing) == len(records)
    for key_text, record in records.items():
        key = SequenceKey.parse(key_text)
        arrays = listing[(key.subject, key.type_name, key.view_name)]
        assert len(arrays) == 1 and arrays[0].dtype == np.uint8
        np.testing.assert_array_equal(arrays[0], record["silhouettes"])


def test_export_is_resumable_and_cleans_stale_temp_files(dataset, tmp_path):
    root, records = dataset
    export_opengait(root, tmp_path, progress=False)
    key = SequenceKey.parse(sorted(records)[0])
    view_dir = tmp_path / key.subject / key.type_name / key.view_name
    (view_dir / f"{key.view_name}.pkl").unlink()
    (view_dir / f".{key.view_name}.pkl.abc123.tmp").write_bytes(b"half a pickle")  # killed midway
    summary = export_opengait(root, tmp_path, progress=False)
    assert summary.written == 1 and summary.existing == len(records) - 1
    assert sorted(os.listdir(view_dir)) == [f"{key.view_name}.pkl"]


def test_ragar_naming_is_what_the_foundationgait_probe_reads(dataset, tmp_path):
    root, records = dataset
    export_opengait(root, tmp_path, naming="ragar", progress=False)
    schema = default_schema()
    listing = opengait_listing(tmp_path)
    assert len(listing) == len(records)
    types_by_subject = {}
    for (subject, type_name, view), arrays in listing.items():
        # the probe: split on "_", parse every token as int, drop the first
        class_indices = np.array(type_name.split("_"), dtype=int)[1:]
        number = int(type_name.split("_")[0])
        key = SequenceKey(subject, number // 8, ("nm-01", "nm-02", "nm-03", "nm-04", "bg-01", "bg-02", "cl-01",
                                                 "cl-02")[number % 8], int(view))
        np.testing.assert_array_equal(class_indices, records[str(key)]["labels"])
        np.testing.assert_array_equal(arrays[0], records[str(key)]["silhouettes"])
        types_by_subject.setdefault(subject, set()).add(type_name)
    # one type folder per (combination, condition) of a subject: 2 combinations x 2 conditions here
    assert all(len(types) == 4 for types in types_by_subject.values())
    assert schema.to_one_hot(class_indices).sum() == 15


def test_ragar_type_names():
    key = SequenceKey("007", 2, "cl-02", 180)
    labels = np.arange(15) % 2
    assert walk_number(0, "nm-01") == 0 and walk_number(2, "cl-02") == 23
    name = ragar_type_name(key, labels)
    assert name == "23_" + "_".join(str(v) for v in labels)
    combination, condition, parsed = parse_type_folder(name, "x")
    assert (combination, condition) == (2, "cl-02")
    np.testing.assert_array_equal(parsed, labels)
    assert parse_type_folder("c1-bg-02", "x") == (1, "bg-02", None)
    with pytest.raises(RagarDataError, match="needs all 15"):
        ragar_type_name(key, np.full(15, -1))
    with pytest.raises(TreeLayoutError, match="expected 15"):
        parse_type_folder("03_1_0", "somewhere")
    with pytest.raises(TreeLayoutError, match="not a walk number"):
        parse_type_folder("99_" + "_".join(["0"] * 15), "somewhere")
    with pytest.raises(TreeLayoutError, match="out of range"):
        parse_type_folder("01_9" + "_0" * 14, "somewhere")
    with pytest.raises(TreeLayoutError, match="neither"):
        parse_type_folder("walk-3", "somewhere")


@pytest.mark.parametrize("naming", ["key", "ragar"])
def test_round_trip_silhouettes(dataset, tmp_path, naming):
    root, records = dataset
    export_opengait(root, tmp_path / "tree", naming=naming, progress=False)
    annotations = None
    if naming == "key":  # labels are not in the folder names: give them as a CSV
        from ragar_data.annotations import write_annotations

        table = {(r["subject"], r["combination"]): r["labels"] for r in records.values()}
        annotations = write_annotations(tmp_path / "annotations.csv", table)
    summary = import_opengait(tmp_path / "tree", tmp_path / "imported", annotations=annotations, progress=False)
    assert summary.sequences == len(records) and not summary.unlabelled
    imported = ShardDataset(tmp_path / "imported")
    assert imported.keys() == sorted(records)
    for key in imported.keys():
        record = imported.read_record(key)
        np.testing.assert_array_equal(record["silhouettes"], records[key]["silhouettes"])
        np.testing.assert_array_equal(record["labels"], records[key]["labels"])
        assert record["num_frames"] == len(record["silhouettes"])
        assert record["source"].endswith(".pkl")


def test_import_pose_then_silhouettes_merges(dataset, tmp_path):
    from ragar_data.pose_export import export_pose

    root, records = dataset
    export_opengait(root, tmp_path / "sil", naming="ragar", progress=False)
    export_pose(root, tmp_path / "pose", naming="ragar", progress=False)
    import_opengait(tmp_path / "pose", tmp_path / "data", modality="pose", progress=False)
    summary = import_opengait(tmp_path / "sil", tmp_path / "data", modality="silhouette", progress=False)
    assert summary.merged == len(records)
    imported = ShardDataset(tmp_path / "data")
    assert len(imported) == len(records)
    for key in imported.keys():
        record = imported.read_record(key)
        np.testing.assert_array_equal(record["keypoints_2d"], records[key]["keypoints_2d"])
        np.testing.assert_array_equal(record["silhouettes"], records[key]["silhouettes"])
        np.testing.assert_array_equal(record["labels"], records[key]["labels"])
    again = import_opengait(tmp_path / "sil", tmp_path / "data", modality="silhouette", progress=False)
    assert again.kept_subjects == 2 and again.sequences == 0  # resumed: nothing redone


def test_import_layout_errors_name_the_path(tmp_path):
    tree = tmp_path / "tree"
    view_dir = tree / "001" / "c0-nm-01" / "000"
    view_dir.mkdir(parents=True)
    with open(view_dir / "000.pkl", "wb") as handle:
        pickle.dump(np.zeros((3, 64, 64), np.float64), handle)
    with pytest.raises(TreeLayoutError, match=r"000\.pkl: expected silhouettes uint8"):
        import_opengait(tree, tmp_path / "data", progress=False)
    with pytest.raises(TreeLayoutError, match="expected pose"):
        import_opengait(tree, tmp_path / "data", modality="pose", progress=False)
    (tree / "001" / "stray.pkl").write_bytes(b"")
    with pytest.raises(TreeLayoutError, match="stray.pkl: expected a type folder"):
        import_opengait(tree, tmp_path / "data", progress=False)
    (tree / "001" / "stray.pkl").unlink()
    (tree / "001" / "run-fast" / "000").mkdir(parents=True)
    with pytest.raises(TreeLayoutError, match="run-fast.*neither"):
        import_opengait(tree, tmp_path / "data", progress=False)
    (tree / "001" / "run-fast" / "000").rmdir()
    (tree / "001" / "run-fast").rmdir()
    (tree / "001" / "c0-nm-01" / "front").mkdir()
    with pytest.raises(TreeLayoutError, match="front: view folder name"):
        import_opengait(tree, tmp_path / "data", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TreeLayoutError, match="empty: no sequences"):
        import_opengait(tmp_path / "empty", tmp_path / "other", progress=False)
    assert not (tmp_path / "data").exists()  # nothing written by the failed imports


def test_ragar_naming_refuses_unlabelled(tmp_path):
    build_dataset(tmp_path / "data", subjects=("001",), conditions=("nm-01",), views=(0,))
    records = [make_record(SequenceKey("009", 0, "nm-01", 0), image_width=10, image_height=10,
                           labels=np.full(15, -1, np.int8), frame_index=np.arange(6, dtype=np.int32),
                           boxes=np.zeros((6, 4), np.float32), silhouettes=np.full((6, 64, 64), 255, np.uint8),
                           silhouette_frame_index=np.arange(6, dtype=np.int32))]
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "unlabelled", records)])
    with pytest.raises(RagarDataError, match="009-c0-nm-01-000: the ragar type naming needs"):
        export_opengait(tmp_path / "data", tmp_path / "tree", naming="ragar", progress=False)


def test_cli_export_and_import(dataset, tmp_path):
    root, records = dataset
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "opengait", str(root), str(tmp_path / "tree"), "--naming", "ragar"])
    assert result.exit_code == 0, result.output
    assert f"wrote {len(records)} sequence pickles" in result.output
    result = runner.invoke(cli, ["import", "opengait", str(tmp_path / "tree"), str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert len(ShardDataset(tmp_path / "data")) == len(records)
    result = runner.invoke(cli, ["import", "opengait", str(root), str(tmp_path / "bad")])
    assert result.exit_code != 0 and "is a ragar-data dataset" in result.output  # not a tree


def test_cli_export_split_option_validates(dataset, tmp_path):
    root, _ = dataset
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"TRAIN_SET": ["001"]}))
    result = CliRunner().invoke(cli, ["export", "opengait", str(root), str(tmp_path / "tree"), "--split", str(bad)])
    assert result.exit_code != 0 and "bad.json" in result.output
    assert not (tmp_path / "tree" / "001").exists()  # refused before writing any pickle


def test_few_frame_sequences_are_exported_like_pretreatment(tmp_path):
    # pretreatment writes a pickle for 1..4 kept frames (with a warning) and none for 0
    masks = np.zeros((6, 60, 80), np.uint8)
    masks[2, 10:50, 30:45] = 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewFramesWarning)
        frames, kept = normalise_sequence(masks)
        empty, _ = normalise_sequence(np.zeros((4, 60, 80), np.uint8))
    keys = [SequenceKey("001", 0, "nm-01", 0), SequenceKey("001", 0, "nm-02", 0)]
    records = [make_record(k, image_width=80, image_height=60, labels=np.zeros(15, np.int8),
                           frame_index=np.arange(6, dtype=np.int32), boxes=np.zeros((6, 4), np.float32),
                           silhouettes=f, silhouette_frame_index=np.arange(len(f), dtype=np.int32))
               for k, f in zip(keys, [frames, empty])]
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "p", records)])
    summary = export_opengait(tmp_path / "data", tmp_path / "tree", progress=False)
    assert summary.written == 1 and summary.empty == ["001-c0-nm-02-000"]
    assert not (tmp_path / "tree" / "001" / "c0-nm-02").exists()


def test_export_leaves_out_failed_quality_unless_asked(tmp_path):
    records = build_dataset(tmp_path / "data", subjects=("001",), conditions=("nm-01",), views=(0,))
    rows = []
    for key, record in records.items():
        record = dict(record, quality_ok=key != "001-c0-nm-01-000")
        for name in ("silhouette_encoding", "num_silhouettes", "silhouette_height", "silhouette_width"):
            record[name] = None
        rows.append(record)
    for path in (tmp_path / "data" / "shards").glob("*.parquet"):
        path.unlink()
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "all", rows)])
    summary = export_opengait(tmp_path / "data", tmp_path / "tree", progress=False)
    assert summary.failed_quality == ["001-c0-nm-01-000"] and summary.written == len(records) - 1
    assert "failing the quality filter" in str(summary)
    kept = export_opengait(tmp_path / "data", tmp_path / "all", include_failed=True, progress=False)
    assert kept.written == len(records) and not kept.failed_quality
