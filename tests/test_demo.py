"""The README's main job (`ragar-data demo`) end to end on tiny settings."""
import json

import pytest
from click.testing import CliRunner

from ragar_data.cli.main import cli
from ragar_data.shards import ShardDataset


@pytest.mark.slow
def test_demo_runs_every_step_and_resumes(tmp_path):
    args = ["demo", str(tmp_path), "--subjects", "2", "--views", "72,108", "--seconds", "1", "--size", "320x180"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    dataset = tmp_path / "dataset"
    assert len(ShardDataset(dataset)) == 2 * 3 * 3 * 2  # subjects x combinations x conditions x views
    qa = json.loads((dataset / "extract/qa.json").read_text())["summary"]
    assert qa["subject_found"] == qa["sequences"] and qa["mean_silhouette_iou"] > 0.7
    partition = json.loads((dataset / "partition.json").read_text())
    assert sorted(partition["TRAIN_SET"] + partition["TEST_SET"]) == ["001", "002"]
    assert (dataset / "classes.png").stat().st_size > 10_000
    rerun = CliRunner().invoke(cli, args)
    assert rerun.exit_code == 0 and "0 extracted, 36 already done" in rerun.output
