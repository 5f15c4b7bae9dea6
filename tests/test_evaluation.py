"""Evaluation as the paper computes it: the test frames (central 30, or all), equal-length batches so a sequence
scores the same alone and in any batch (every registered model, CLIP-GAR and the baseline), the warning for
labels without a positive test sequence, and the `evaluate` / `predict` commands' frames option."""
from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from factories import build_dataset
from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.errors import InputError
from ragar_data.loaders import collate, sample_frame_indices
from ragar_data.models.registry import list_models
from ragar_data.training.build import build_classifier, build_clipgar
from ragar_data.training.config import load_config
from ragar_data.training.data import length_batches, parse_test_frames, sequence_lengths, silhouette_dataset
from ragar_data.training.evaluate import evaluation_report, run_inference
from ragar_data.training.stages import scores_of, train_classification

SCHEMA = default_schema()
CPU = torch.device("cpu")
# One model of each input and CLIP-GAR run by default; the full-size others took 12-390 s each (DeepGaitV2-3D the
# longest) on 2 CPU cores shared with other jobs.
QUICK_MODELS = {"clipgar", "baseline", "gaitgraph"}
SMALL_ENCODER = ["model.channels=[4,8,8,16]", "text.backend=learned", "text.dim=16"]


def test_central_ordered_takes_the_middle_frames_and_repeats_short_sequences():
    np.testing.assert_array_equal(sample_frame_indices(100, "central_ordered", None, 30), np.arange(35, 65))
    np.testing.assert_array_equal(sample_frame_indices(31, "central_ordered", None, 30), np.arange(30))
    np.testing.assert_array_equal(sample_frame_indices(7, "central_ordered", None, 30), np.arange(30) % 7)


def test_length_batches_hold_one_length_each():
    batches = length_batches([5, 3, 5, 3, 5, 9], 2)
    assert batches == [[1, 3], [0, 2], [4], [5]]
    assert sorted(i for batch in batches for i in batch) == list(range(6))


@pytest.mark.parametrize("value, expected", [("30", 30), (12, 12), ("all", "all"), ("ALL", "all")])
def test_parse_test_frames(value, expected):
    assert parse_test_frames(value) == expected


@pytest.mark.parametrize("value", ["0", "-3", "thirty", None])
def test_parse_test_frames_refuses_other_values(value):
    with pytest.raises(InputError, match="'all' or a positive number"):
        parse_test_frames(value)


@pytest.fixture(scope="module")
def mixed_lengths(tmp_path_factory):
    """Four sequences of 40, 7, 25 and 40 frames (silhouettes and keypoints_2d), two subjects."""
    root = tmp_path_factory.mktemp("mixed")
    build_dataset(root, subjects=("001", "002"), conditions=("nm-01",), views=(0,), lengths=(40, 7, 25),
                  rows_per_shard=4)
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": ["001"], "TEST_SET": ["002"]}))
    return root


def model_and_config(name: str, run_dir, root):
    """An untrained model whose BatchNorm statistics are those of the test data (as training would leave
    them): without that, raw pixel coordinates reach the pose models' logits at ~1e4 and float32 rounding,
    which differs between batch sizes, shows in the scores."""
    settings = [f"train.output_dir={run_dir}", "data.row_cache=false", "data.num_workers=0", *SMALL_ENCODER]
    if name == "clipgar":
        config = load_config("smoke", settings)
        model, stage = build_clipgar(config, SCHEMA), "fusion"
    else:
        config = load_config("smoke" if name == "baseline" else name, settings)
        model, stage = build_classifier(config, SCHEMA), "classification"
    dataset = silhouette_dataset(root, None, config, train=False)
    batch = collate([dataset[i] for i in range(len(dataset))])
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average: one pass sets the statistics of that batch
    with torch.no_grad():
        scores_of(model.train(), stage, batch[getattr(model, "input_field", "silhouettes")], batch["lengths"],
                  SCHEMA)
    return model.eval(), config, stage


def scores_alone_and_mixed(model, stage, config, root, test_frames, batch_size=4):
    """Scores of every sequence in one batch of 4 and alone (batches of 1), and the sequences' lengths."""
    dataset = silhouette_dataset(root, None, config, train=False, test_frames=test_frames)
    mixed = run_inference(model, stage, dataset, batch_size, CPU, SCHEMA, progress=False)
    alone = run_inference(model, stage, dataset, 1, CPU, SCHEMA, progress=False)
    assert mixed["keys"] == alone["keys"] == dataset.keys()
    return mixed["scores"], alone["scores"], sequence_lengths(dataset)


@pytest.mark.parametrize("name", [n if n in QUICK_MODELS else pytest.param(n, marks=pytest.mark.slow)
                                  for n in ["clipgar", "baseline", *list_models()]])
def test_a_sequence_scores_the_same_alone_and_in_a_mixed_batch(mixed_lengths, tmp_path, name):
    model, config, stage = model_and_config(name, tmp_path, mixed_lengths)
    for test_frames in (30, "all"):
        mixed, alone, lengths = scores_alone_and_mixed(model, stage, config, mixed_lengths, test_frames)
        if test_frames == "all":
            assert len(set(lengths.tolist())) == 3  # the batch of 4 mixes lengths
        else:
            assert set(lengths.tolist()) == {30}
        np.testing.assert_allclose(mixed, alone, rtol=0, atol=1e-5, err_msg=f"{name}, frames {test_frames}")


def test_zero_padding_would_change_scores(mixed_lengths, tmp_path):
    # why batches hold one length: padded frames reach the valid ones through the 3D convolutions
    model, config, stage = model_and_config("baseline", tmp_path, mixed_lengths)
    dataset = silhouette_dataset(mixed_lengths, None, config, train=False, test_frames="all")
    items = [dataset[i] for i in range(3)]
    assert len({item["silhouettes"].shape[0] for item in items}) == 3
    batch = collate(items)
    with torch.no_grad():
        padded = scores_of(model, stage, batch["silhouettes"], batch["lengths"], SCHEMA)[0].numpy()
    alone, _, _ = scores_alone_and_mixed(model, stage, config, mixed_lengths, "all")
    order = {key: i for i, key in enumerate(dataset.keys())}
    rows = [order[item["key"]] for item in items]
    assert np.abs(padded - alone[rows]).max() > 1e-3  # 0.2 measured; equal-length batches differ by < 1e-5


def test_labels_without_positive_test_sequence_are_warned_about():
    rng = np.random.default_rng(0)
    classes = np.zeros((6, 15), np.int64)
    classes[:, 0] = [0, 1, 0, 1, 0, 1]  # only the first attribute sees two classes
    one_hot = SCHEMA.to_one_hot(classes)
    keys = [f"00{i}-c0-nm-01-000" for i in range(1, 7)]
    expected = 45 - 16  # 15 attributes' class 0 and the first attribute's class 1 are positive somewhere
    with pytest.warns(UserWarning, match=f"{expected} labels have no positive sample among the 6 test sequences"):
        report = evaluation_report(rng.random((6, 45)), one_hot, classes, keys, "sigmoid", SCHEMA)
    assert len(report["never_positive_labels"]) == expected
    assert SCHEMA.label_names()[1] not in report["never_positive_labels"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mixed_lengths):
    """A GaitSet checkpoint trained for 2 iterations on the mixed-length dataset."""
    run = tmp_path_factory.mktemp("run")
    config = load_config("gaitset", [f"train.output_dir={run}", f"data.dataset={mixed_lengths}",
                                     "train.batch_size=2", "train.classification_iterations=2",
                                     "train.checkpoint_every=2", "data.frames=4", "data.num_workers=0",
                                     "train.device=cpu", "train.amp=none", "data.row_cache=false"])
    return train_classification(config, progress=False).checkpoint


def test_evaluate_says_which_test_frames(mixed_lengths, trained, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", str(trained), "-d", str(mixed_lengths), "--out", str(tmp_path / "a"),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Test frames: the central 30 consecutive frames" in result.output
    assert "F1_harmonic" in result.output
    # the two test sequences share one subject's labels: most labels have no positive test sequence
    assert re.search(r"Warning: \d+ labels have no positive sample among the 2 test sequences", result.output)
    report = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    assert report["test_frames"]["frames"] == 30 and report["test_frames"]["sampling"] == "central_ordered"
    assert report["metrics"]["f1"] <= report["metrics"]["f1_harmonic"] + 1e-12
    assert report["headline"]["F1"] == pytest.approx(100 * report["metrics"]["f1"])
    result = runner.invoke(cli, ["evaluate", str(trained), "-d", str(mixed_lengths), "--out", str(tmp_path / "b"),
                                 "--device", "cpu", "--frames", "all"])
    assert result.exit_code == 0, result.output
    assert "Test frames: all frames of each sequence in order, at most 720" in result.output  # the run's cap
    result = runner.invoke(cli, ["evaluate", str(trained), "-d", str(mixed_lengths), "--frames", "0"])
    assert result.exit_code == 2 and "'all' or a positive number" in result.output


def test_predict_scores_do_not_depend_on_the_batch_size(mixed_lengths, trained, tmp_path):
    runner = CliRunner()
    tables = {}
    for batch_size in (1, 8):
        out = tmp_path / f"p{batch_size}.parquet"
        result = runner.invoke(cli, ["predict", str(trained), "-d", str(mixed_lengths), "--out", str(out),
                                     "--device", "cpu", "--frames", "all", "--batch-size", str(batch_size)])
        assert result.exit_code == 0, result.output
        tables[batch_size] = pq.read_table(out)
    assert tables[8]["key"].to_pylist() == sorted(tables[8]["key"].to_pylist())
    columns = [c for c in tables[8].column_names if c.startswith("score__")]
    for column in columns:
        np.testing.assert_allclose(tables[8][column].to_numpy(), tables[1][column].to_numpy(), atol=1e-5)
    assert tables[8].schema.metadata[b"ragar_data.test_frames"].startswith(b"all frames")


def test_inference_with_reader_workers_gives_the_scores_of_one_process(mixed_lengths, tmp_path):
    # evaluate/predict read through the trainer's batch_loader: workers change who reads, not what is scored
    model, config, stage = model_and_config("baseline", tmp_path, mixed_lengths)
    dataset = silhouette_dataset(mixed_lengths, None, config, train=False)
    alone = run_inference(model, stage, dataset, 2, CPU, SCHEMA, progress=False, num_workers=0)
    workers = run_inference(model, stage, dataset, 2, CPU, SCHEMA, progress=False, num_workers=2)
    assert workers["keys"] == alone["keys"]
    np.testing.assert_array_equal(workers["scores"], alone["scores"])
