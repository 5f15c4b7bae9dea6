"""Train, evaluate and predict through the CLI on a tiny dataset of shards written from synthetic silhouettes."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.identity import SequenceKey
from ragar_data.shards import make_record, update_index, write_shard

SCHEMA = default_schema()
SUBJECTS = ("001", "002", "003", "004")


def walker_silhouettes(rng, frames, width):
    """Binary (frames, 64, 64) uint8 frames of a box 'body' whose width is the attribute signal."""
    silhouettes = np.zeros((frames, 64, 64), np.uint8)
    for t in range(frames):
        half = width + int(rng.integers(0, 2))
        silhouettes[t, 4:60, 32 - half:32 + half] = 255
        silhouettes[t, 40:60, 32 - half - 2 * (t % 3):32 - half] = 255  # a swinging "leg"
    return silhouettes


def write_tiny_dataset(root):
    rng = np.random.default_rng(0)
    records = []
    for number, subject in enumerate(SUBJECTS):
        labels = np.array([number % n for n in SCHEMA.num_classes], np.int8)
        for condition in ("nm-01", "bg-01", "cl-01"):
            for view in (0, 36):
                frames = int(rng.integers(8, 12))
                key = SequenceKey(subject, 0, condition, view)
                records.append(make_record(
                    key, image_width=160, image_height=90, labels=labels,
                    frame_index=np.arange(frames, dtype=np.int32), boxes=np.zeros((frames, 4), np.float32),
                    silhouettes=walker_silhouettes(rng, frames, 6 + 3 * number),
                    silhouette_frame_index=np.arange(frames, dtype=np.int32)))
    update_index(root, [write_shard(root, "part-0000", records)])
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": ["001", "002"], "TEST_SET": ["003", "004"]}))
    return len(records)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    return root, write_tiny_dataset(root)


def _run(arguments):
    result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_evaluate_predict_cli(tiny_dataset, tmp_path):
    dataset, sequences = tiny_dataset
    run = tmp_path / "run"
    common = ["--config", "smoke", "--dataset", str(dataset), "--out", str(run), "--set", "model.channels=[4,8,8,16]",
              "--set", "text.dim=16"]
    output = _run(["train", "clipgar", *common])
    assert "align" in output and (run / "fusion" / "final.pt").is_file()
    _run(["train", "classification", *common])
    assert (run / "classification" / "final.pt").is_file()

    output = _run(["evaluate", str(run / "fusion" / "final.pt"), "--dataset", str(dataset), "--out", str(tmp_path / "eval")])
    assert "| F1 | Precision | Recall | Acc | mA |" in output
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["num_sequences"] == 12  # the two test subjects' sequences
    assert set(report["headline"]) == {"F1", "Precision", "Recall", "Acc", "mA"}
    assert set(report["per_attribute"]) == set(SCHEMA.names)
    assert set(report["per_covariate"]["condition"]) == {"nm", "bg", "cl"}
    assert set(report["per_covariate"]["view"]) == {"0", "36"}
    assert set(report["per_covariate"]["combination"]) == {"real"}
    assert (tmp_path / "eval" / "evaluation.png").stat().st_size > 1000
    assert "## Per attribute" in (tmp_path / "eval" / "evaluation.md").read_text()

    _run(["evaluate", str(run / "align" / "final.pt"), "--dataset", str(dataset), "--out", str(tmp_path / "eval_align")])
    align_report = json.loads((tmp_path / "eval_align" / "evaluation.json").read_text())
    assert align_report["mode"] == "argmax"
    # argmax decisions: 15 positives per sequence, so precision equals recall
    assert align_report["headline"]["Precision"] == pytest.approx(align_report["headline"]["Recall"])

    predictions = tmp_path / "preds.parquet"
    _run(["predict", str(run / "fusion" / "final.pt"), str(dataset), "--out", str(predictions)])
    table = pq.read_table(predictions)
    assert table.num_rows == sequences
    score_columns = [c for c in table.column_names if c.startswith("score__")]
    assert len(score_columns) == 45 and score_columns[0] == f"score__{SCHEMA.names[0]}__{SCHEMA.attributes[0].classes[0]}"
    scores = np.stack([table[c].to_numpy() for c in score_columns], 1)
    assert ((scores >= 0) & (scores <= 1)).all()
    for m, attribute in enumerate(SCHEMA.attributes):
        names = table[attribute.name].to_pylist()
        assert set(names) <= set(attribute.classes)
        assert table[f"{attribute.name}_index"].to_pylist() == list(SCHEMA.from_scores(scores)[:, m])
    assert not list(tmp_path.glob(".*.tmp"))


def test_dry_run_prints_the_parameter_counts():
    output = _run(["train", "clipgar", "--dry-run"])
    assert "18,611,904 parameters\n" in output and "-> equal" in output


def test_bad_checkpoint_and_override_are_clear_errors(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(cli, ["evaluate", str(bogus), "--dataset", str(dataset)])
    assert result.exit_code != 0 and "bogus.pt" in result.output
    result = CliRunner().invoke(cli, ["train", "clipgar", "--config", "smoke", "--set", "optim.nope=1", "--dry-run"])
    assert result.exit_code != 0 and "unknown key 'optim.nope'" in result.output


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tiny_dataset, tmp_path):
    import os
    import subprocess
    import sys

    from ragar_data.training.build import read_checkpoint

    dataset, _ = tiny_dataset
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "ragar_data.cli.main", "train", "clipgar", "--config", "smoke", "--dataset", str(dataset),
               "--out", str(run), "--set", "model.channels=[4,8,8,16]", "--set", "text.dim=16",
               "--set", "train.batch_size=2", "--set", "train.fusion_iterations=2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-8000:]  # the failing rank's traceback comes before the summary
    assert result.stdout.count("align:") == 1  # rank 0 alone reports
    assert read_checkpoint(run / "fusion" / "final.pt")["iteration"] == 2
