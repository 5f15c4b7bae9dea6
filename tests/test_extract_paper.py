"""`--preset paper` end to end with random-init models of the official formats: complete shards with keypoints,
qa computes its numbers (low, as expected from random weights); a missing model skips the pose stages."""
from __future__ import annotations

import numpy as np
import pytest

from ragar_data.pipelines.config import apply_overrides, load_preset
from ragar_data.pipelines.runner import RunOptions, extract
from ragar_data.shards import ShardDataset

QUIET = dict(log=lambda line: None)
# the smallest YOLO at a small input keeps the CPU test short; everything else as the paper preset says
SMALL = ["detect.options.model=yolo11n", "detect.options.imgsz=320"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ragar_data.pipelines.backends.random_models import write_random_models
    from ragar_data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("paper")
    generate(root / "synth", SynthConfig.small(subjects=1, views=(90,), conditions=("nm-01",), combinations=(0, 1),
                                               seconds=0.5), progress=False)
    write_random_models(root / "models", names=["yolo11n", "pp-humanseg-v2", "rtmpose-m", "motionbert-ft-h36m"])
    return root


@pytest.mark.slow
def test_paper_preset_with_random_models(tiny):
    import torch

    torch.set_num_threads(1)
    config = apply_overrides(load_preset("paper"), SMALL + ["select.min_frames=1", "track.new_track_thresh=0.0",
                                                            "track.track_high_thresh=0.0"])
    lines = []
    summary = extract(tiny / "run", config, videos=tiny / "synth" / "videos",
                      options=RunOptions(progress=False, keep_masks=True, models_dir=str(tiny / "models"),
                                         group_size=2, batch_size=8), log=lines.append)
    # view 90 is not a RA-GAR view; the BlazePose person check is not in the models folder (tests/test_verify.py)
    lines = [line for line in lines if not line.startswith(("note:", "verify:"))]
    assert summary.failed == 0 and summary.processed == 2 and not lines  # no stage skipped
    dataset = ShardDataset(tiny / "run")
    assert sum(dataset.read_record(k, ["num_frames"])["num_frames"] for k in dataset.keys()) > 0
    for key in dataset.keys():
        record = dataset.read_record(key)
        if record["num_frames"]:  # random YOLO may find nobody; then there is nothing to pose
            assert record["keypoints_2d"].shape == (record["num_frames"], 17, 3)
            assert record["keypoints_3d"].shape == (record["num_frames"], 17, 3)
            assert record["keypoints_2d_model"] == "rtmpose-m" and np.isfinite(record["keypoints_3d"]).all()
    from ragar_data.qa import run_qa

    report = run_qa(tiny / "run", tiny / "synth")
    assert report.summary["sequences"] == 2


def test_missing_pose_weights_skip_the_stage_with_one_line(tiny, tmp_path):
    config = apply_overrides(load_preset("paper"), SMALL + ["pose2d.model=rtmpose-l"])  # not written
    lines = []
    summary = extract(tmp_path / "run", config, videos=tiny / "synth" / "videos",
                      options=RunOptions(progress=False, models_dir=str(tiny / "models")), log=lines.append)
    assert summary.processed == 2
    # view 90 is not a RA-GAR view; the BlazePose person check is not in the models folder (tests/test_verify.py)
    lines = [line for line in lines if not line.startswith(("note:", "verify:"))]
    assert len(lines) == 2 and lines[0].startswith("pose2d: skipped, rtmpose cannot run here")
    assert lines[1].startswith("lift3d: skipped")
    assert ShardDataset(tmp_path / "run").read_record("001-c0-nm-01-090")["keypoints_2d"] is None
