"""`ragar-data benchmark table3` on a tiny dataset, and `ragar-data import synth-pose` (the generator's
ground-truth keypoints as a dataset's keypoints_2d)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from factories import build_dataset
from ragar_data.cli.main import cli
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.shards import ShardDataset, file_sha256
from ragar_data.synth.ground_truth import ground_truth_relpath, save_ground_truth
from ragar_data.synth.pose_import import POSE_MODEL, import_synth_pose

SUBJECTS = ("001", "002", "003", "004")
TINY = ["train.classification_iterations=2", "train.batch_size=2", "train.checkpoint_every=2", "data.frames=2",
        "data.max_eval_frames=4", "data.eval_batch_size=4", "data.row_cache=false", "train.device=cpu"]


def tiny_dataset(root, with_pose=True):
    records = build_dataset(root, subjects=SUBJECTS, conditions=("nm-01", "bg-01"), views=(0,), lengths=(8, 6),
                            with_pose=with_pose)
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": list(SUBJECTS[:3]), "TEST_SET": [SUBJECTS[3]]}))
    return records


def run_table3(dataset, out, models="gaitset,gaitgraph"):
    arguments = ["benchmark", "table3", "--dataset", str(dataset), "--models", models, "--out", str(out)]
    return CliRunner().invoke(cli, [*arguments, *[a for s in TINY for a in ("--set", s)]])


@pytest.mark.slow
def test_table3_writes_the_table_with_a_floor_and_resumes_finished_rows(tmp_path):
    tiny_dataset(tmp_path / "data")
    out = tmp_path / "table3"
    result = run_table3(tmp_path / "data", out)
    assert result.exit_code == 0, result.output
    for suffix in ("md", "json", "png"):
        assert (out / f"table3.{suffix}").stat().st_size > 0
    table = json.loads((out / "table3.json").read_text())
    assert list(table["rows"]) == ["Majority class (floor)", "GaitSet", "GaitGraph"]
    assert table["rows"]["GaitGraph"]["input"] == "keypoints_2d"
    assert table["rows"]["GaitSet"]["test_sequences"] == 4  # subject 004: 2 combinations x 2 conditions
    assert {"condition=nm", "condition=bg", "combination=real", "combination=simulated", "view=0"} <= set(
        table["rows"]["GaitSet"]["breakdown"])
    markdown = (out / "table3.md").read_text()
    assert "| GaitGraph | " in markdown and "(61.78)" in markdown  # the paper's GaitGraph F1 beside ours
    assert "F1 by covariate" in markdown and "Majority class (floor)" in result.output
    checkpoint = out / "models" / "gaitset" / "classification" / "final.pt"
    trained_at = checkpoint.stat().st_mtime_ns

    again = run_table3(tmp_path / "data", out)
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier") == 3 and "training" not in again.output
    assert checkpoint.stat().st_mtime_ns == trained_at  # not retrained
    assert json.loads((out / "table3.json").read_text())["rows"] == table["rows"]


def test_table3_skips_pose_models_on_a_dataset_without_keypoints(tmp_path):
    tiny_dataset(tmp_path / "data", with_pose=False)
    result = run_table3(tmp_path / "data", tmp_path / "table3", models="gaitgraph")
    assert result.exit_code == 0, result.output
    assert "GaitGraph: skipped" in result.output and "no keypoints_2d" in result.output
    assert list(json.loads((tmp_path / "table3" / "table3.json").read_text())["rows"]) == ["Majority class (floor)"]
    assert not (tmp_path / "table3" / "models" / "gaitgraph").exists()


def test_table3_per_model_settings_reach_only_their_model(tmp_path):
    from ragar_data.cli.bench_table3 import MODEL_SETTINGS, model_settings

    tiny_dataset(tmp_path / "data")
    out = tmp_path / "table3"
    result = CliRunner().invoke(cli, ["benchmark", "table3", "-d", str(tmp_path / "data"), "--models", "gaitgraph",
                                      "--out", str(out), *[a for s in TINY for a in ("--set", s)],
                                      "--set", "gaitgraph:train.classification_iterations=3",
                                      "--set", "gaitset:train.classification_iterations=5"])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "table3.json").read_text())
    assert table["rows"]["GaitGraph"]["iterations"] == 3  # its own --set wins over the shared one (2)
    assert table["model_settings"]["gaitgraph"][-1] == "train.classification_iterations=3"
    assert "GaitGraph: trained with" in (out / "table3.md").read_text()
    # the packaged config's per-model settings come first, so --set overrides them
    for name, settings in MODEL_SETTINGS["table3_cpu"].items():
        assert model_settings([name], "table3_cpu", ["a.b=1"])[name][: len(settings)] == settings
    bad = CliRunner().invoke(cli, ["benchmark", "table3", "-d", str(tmp_path / "data"), "--out", str(out),
                                   "--set", "gaitfoo:model.width=1"])
    assert bad.exit_code == 2 and "unknown model 'gaitfoo'" in bad.output


def write_ground_truth(root, records, size=(180, 320)):
    """A ground-truth npz per sequence (frames 0..T+2, keypoints moving right), the first joint out of frame."""
    rng = np.random.default_rng(3)
    truths = {}
    for key, record in records.items():
        count = int(record["frame_index"].max()) + 3
        keypoints = np.zeros((count, 17, 3), np.float32)
        keypoints[..., :2] = rng.uniform(10, 170, (count, 17, 2))
        keypoints[:, 0, 0] = -5.0
        truths[key] = keypoints
        save_ground_truth(root / "ground_truth" / ground_truth_relpath(SequenceKey.parse(key)), {
            "frame_index": np.arange(count), "boxes": np.zeros((count, 4)), "masks": np.zeros((count, *size), bool),
            "mask_shape": np.array(size), "keypoints_2d": keypoints, "keypoints_3d": keypoints, "K": np.eye(3),
            "R": np.eye(3), "t": np.zeros(3), "labels": np.zeros(15), "illumination": np.ones(count)})
    return truths


def test_synth_pose_import_writes_ground_truth_keypoints_into_a_new_dataset(tmp_path):
    records = tiny_dataset(tmp_path / "data", with_pose=False)
    truths = write_ground_truth(tmp_path / "synth", records)
    before = {p.name: file_sha256(p) for p in (tmp_path / "data").rglob("*") if p.is_file()}
    result = CliRunner().invoke(cli, ["import", "synth-pose", "--ground-truth", str(tmp_path / "synth"),
                                      "-d", str(tmp_path / "data"), str(tmp_path / "posed")])
    assert result.exit_code == 0, result.output
    assert before == {p.name: file_sha256(p) for p in (tmp_path / "data").rglob("*") if p.is_file()}
    posed = ShardDataset(tmp_path / "posed")
    assert sorted(posed.keys()) == sorted(records)
    for key, record in records.items():
        row = posed.read_record(key)
        expected = truths[key][record["frame_index"]]
        np.testing.assert_array_equal(row["keypoints_2d"][..., :2], expected[..., :2])
        assert row["keypoints_2d_model"] == POSE_MODEL
        assert (row["keypoints_2d"][:, 0, 2] == 0).all() and (row["keypoints_2d"][:, 1:, 2] == 1).all()
        np.testing.assert_array_equal(row["silhouettes"], record["silhouettes"])
    source = pq.read_table(next((tmp_path / "data" / "shards").glob("*.parquet")))
    copied = pq.read_table(tmp_path / "posed" / "shards" / next((tmp_path / "data" / "shards").glob("*")).name)
    for column in source.column_names:
        if not column.startswith("keypoints_2d"):
            assert source[column].equals(copied[column]), column
    assert (tmp_path / "posed" / "partition.json").read_bytes() == (tmp_path / "data" / "partition.json").read_bytes()


def test_synth_pose_import_refuses_a_used_folder_and_missing_ground_truth(tmp_path):
    records = tiny_dataset(tmp_path / "data", with_pose=False)
    write_ground_truth(tmp_path / "synth", dict(list(records.items())[:-1]))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(RagarDataError, match="not empty"):
        import_synth_pose(tmp_path / "data", tmp_path / "synth", tmp_path / "used")
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
    with pytest.raises(RagarDataError, match="no ground truth"):
        import_synth_pose(tmp_path / "data", tmp_path / "synth", tmp_path / "new")
    assert not (tmp_path / "new").exists()  # checked before anything is written


def test_model_width_shrinks_the_larger_silhouette_models_and_leaves_the_others():
    from ragar_data.attributes import default_schema
    from ragar_data.models.deepgaitv2 import parameter_count, upstream_backbone_parameter_count
    from ragar_data.training.build import build_classifier
    from ragar_data.training.config import load_config

    narrow = build_classifier(load_config("deepgaitv2_3d", ["model.width=0.125"]), default_schema())
    assert parameter_count(narrow.visual) == upstream_backbone_parameter_count((1, 2, 2, 1), (8, 16, 32, 64))
    for name in ("gaitgraph", "gaitset"):  # no width option: upstream size whatever the config says
        sizes = [parameter_count(build_classifier(load_config(name, [f"model.width={w}"]), default_schema()))
                 for w in (1.0, 0.125)]
        assert sizes[0] == sizes[1]
    assert load_config("table3_cpu").model.width == 0.125
