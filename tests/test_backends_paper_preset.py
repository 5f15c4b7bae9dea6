"""`ragar-data extract --preset paper` end to end on CPU with random-init stand-ins of every paper model: shards
are written with 2D and 3D keypoints, and `qa` computes its numbers (low, as expected from random weights)."""
import json
import math
import os

import pytest
from click.testing import CliRunner

from ragar_data.cli.main import cli
from ragar_data.pipelines.backends.random_models import write_random_models


@pytest.mark.slow
def test_paper_preset_end_to_end_with_random_models(tmp_path):
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    models_dir = tmp_path / "models"
    write_random_models(models_dir, ["yolo11m", "pp-humanseg-v2", "rtmpose-m", "motionbert-ft-h36m"])
    runner = CliRunner()
    synth = runner.invoke(cli, ["synth", str(tmp_path / "synth"), "--subjects", "1", "--views", "0,36",
                                "--combinations", "0", "--conditions", "nm-01", "--seconds", "0.7",
                                "--width", "320", "--height", "180"])
    assert synth.exit_code == 0, synth.output
    extract = runner.invoke(cli, ["extract", "--videos", str(tmp_path / "synth" / "videos"), "-o",
                                  str(tmp_path / "dataset"), "--preset", "paper", "--models-dir", str(models_dir),
                                  "--keep-masks", "--no-progress", "--set", "detect.options.imgsz=320"])
    assert extract.exit_code == 0, extract.output
    assert "skipped" not in extract.output  # every stage ran: none fell back or was left out

    from ragar_data.shards import ShardDataset

    dataset = ShardDataset(tmp_path / "dataset")
    keys = sorted(str(key) for key in dataset.keys())
    assert keys == ["001-c0-nm-01-000", "001-c0-nm-01-036"]
    for key in dataset.keys():
        record = dataset.read_record(key)
        frames = record["num_frames"]
        assert record["keypoints_2d"].shape == (frames, 17, 3)
        assert record["keypoints_3d"].shape == (frames, 17, 3)
    qa = runner.invoke(cli, ["qa", str(tmp_path / "dataset"), "--ground-truth", str(tmp_path / "synth")])
    assert qa.exit_code == 0, qa.output
    report = json.loads((tmp_path / "dataset" / "extract" / "qa.json").read_text())
    assert len(report["sequences"]) == 2
    for row in report["sequences"]:
        assert math.isfinite(row["keypoints_2d_error_px"]) and math.isfinite(row["keypoints_3d_nmpjpe"])
