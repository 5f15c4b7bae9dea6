"""Identity training of each Table 7 model on tiny data, `train/evaluate identity` and `benchmark table7`."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from factories import build_dataset
from ragar_data.cli.main import cli
from ragar_data.recognition.heads import IDENTITY_SETUPS, build_identity_model
from ragar_data.recognition.protocol import draw_protocol, usable_real_keys
from ragar_data.recognition.training import (IdentityTrainConfig, evaluate_identity, load_identity_model,
                                             train_identity)

SUBJECTS = ("001", "002", "003", "004", "005", "006")
CONDITIONS = ("nm-01", "nm-02", "bg-01", "cl-01")  # x 2 views = 8 real sequences per subject


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity") / "dataset"
    build_dataset(root, subjects=SUBJECTS, conditions=CONDITIONS, views=(0, 36), lengths=(6, 5, 7),
                  with_pose=False)
    return root


def _config(model, iterations=2):
    # the 512-channel models narrowed 8 times: the test checks the loop and the heads, not the widths
    return IdentityTrainConfig(model=model, iterations=iterations, identities=2, per_identity=2, frames=4,
                               log_every=1, channel_divisor=8)


@pytest.mark.parametrize("model", sorted(IDENTITY_SETUPS))
def test_each_model_trains_for_identity_and_its_checkpoint_gives_part_features(tiny, tmp_path, model):
    protocol = draw_protocol(usable_real_keys(tiny), seed=0)
    logs = []
    summary = train_identity(tiny, protocol, _config(model), tmp_path / "m.pt", log=logs.append)
    assert len(summary["losses"]) == 2 and all(np.isfinite(v) for v in summary["losses"].values())
    loaded, stored = load_identity_model(tmp_path / "m.pt")
    assert stored["train_subjects"] == list(protocol.train_subjects)
    embeddings, logits = loaded(torch.rand(1, 3, 64, 44))
    assert embeddings.shape[:2] == (1, IDENTITY_SETUPS[model].embedding)
    assert (logits is None) == (IDENTITY_SETUPS[model].head == "none")


def test_training_moves_the_weights_and_shares_the_registry_backbone(tiny, tmp_path):
    from ragar_data.models.gaitbase import GaitBaseEncoder
    from ragar_data.models.gaitgl import GaitGLEncoder
    from ragar_data.models.registry import create_model

    full = build_identity_model("gaitgl", 3)
    assert isinstance(full.visual, GaitGLEncoder)
    assert sum(p.numel() for p in full.visual.parameters()) == sum(
        p.numel() for p in create_model("gaitgl").visual.parameters())

    protocol = draw_protocol(usable_real_keys(tiny), seed=0)
    torch.manual_seed(0)
    fresh = build_identity_model("gaitbase", len(protocol.train_subjects), channel_divisor=8)
    assert isinstance(fresh.visual, GaitBaseEncoder)
    train_identity(tiny, protocol, _config("gaitbase", 3), tmp_path / "m.pt", log=lambda _: None)
    trained, _ = load_identity_model(tmp_path / "m.pt")
    assert not torch.equal(fresh.embed.weight, trained.embed.weight)  # same init (seed 0), then trained
    assert fresh.visual.out_channels == 64


def test_evaluation_reports_both_columns_and_attributes_identify_subjects(tiny, tmp_path):
    protocol = draw_protocol(usable_real_keys(tiny), seed=0)
    train_identity(tiny, protocol, _config("gaitbase"), tmp_path / "m.pt", log=lambda _: None)
    model, _ = load_identity_model(tmp_path / "m.pt")
    report = evaluate_identity(model, tiny, protocol, max_frames=3)
    assert report["gallery"] == 4 and report["probes"] == 24
    # every subject has its own random labels and gallery and probes share them: attributes make Rank-1 perfect
    assert report["with_attribute"]["overall"]["Rank-1"] == 100.0
    assert set(report["without_attribute"]["breakdown"]) >= {"condition=nm", "condition=bg", "condition=cl",
                                                            "view=0", "view=36"}
    assert report["attribute_scale"] > 0


@pytest.mark.slow
def test_train_and_evaluate_identity_commands(tiny, tmp_path):
    out = tmp_path / "run"
    train = ["train", "identity", "--model", "gaitpart", "-d", str(tiny), "--out", str(out), "--iterations", "2",
             "-p", "2", "-k", "2", "--frames", "4"]
    result = CliRunner().invoke(cli, train)
    assert result.exit_code == 0, result.output
    assert (out / "gaitpart.pt").is_file() and (out / "protocol.json").is_file()
    again = CliRunner().invoke(cli, train[:-2] + ["--frames", "3"])
    assert again.exit_code == 1 and "frames" in again.output  # another config: refused, not overwritten
    result = CliRunner().invoke(cli, ["evaluate", "identity", str(out / "gaitpart.pt"), "-d", str(tiny),
                                      "--eval-frames", "3"])
    assert result.exit_code == 0, result.output
    assert "Rank-1 w/ attr" in result.output and "condition=cl" in result.output
    report = json.loads((out / "identity_gaitpart.json").read_text())
    assert report["with_attribute"]["overall"]["Rank-1"] == 100.0


@pytest.mark.slow
def test_benchmark_table7_end_to_end_resumes_per_row(tiny, tmp_path):
    out = tmp_path / "t7"
    command = ["benchmark", "table7", "-d", str(tiny), "--out", str(out), "--models", "gaitpart,gaitbase",
               "--iterations", "2", "-p", "2", "-k", "2", "--frames", "4", "--channel-divisor", "8",
               "--eval-frames", "3"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "table7.json").read_text())
    assert set(document["rows"]) == {"GaitPart", "GaitBase"}
    assert document["rows"]["GaitBase"]["metrics"]["Rank-1 w/ attr"] == 100.0
    assert "view=36" in document["rows"]["GaitPart"]["breakdown"]
    markdown = (out / "table7.md").read_text()
    assert "(86.14)" in markdown and "(99.54)" in markdown and "by probe condition and view" in markdown
    assert (out / "table7.png").read_bytes()[:4] == b"\x89PNG"
    row_file = out / "rows" / "gaitbase.json"
    before = row_file.read_bytes()
    (out / "rows" / "gaitpart.json").unlink()  # one row lost: only it is evaluated again, from its checkpoint
    rerun = CliRunner().invoke(cli, command)
    assert rerun.exit_code == 0, rerun.output
    assert "GaitBase: done earlier" in rerun.output and "gaitpart: trained earlier" in rerun.output
    assert row_file.read_bytes() == before


def test_batched_feature_extraction_equals_one_sequence_at_a_time(tiny):
    from ragar_data.recognition.training import extract_features

    torch.manual_seed(0)
    model = build_identity_model("gaitpart", 3).eval()  # GaitPart's temporal convolutions would see any padding
    keys = usable_real_keys(tiny)[:5]  # lengths 6, 5 and 7 mixed
    batched = extract_features(model, tiny, keys, batch_size=4)
    single = extract_features(model, tiny, keys, batch_size=1)
    assert batched.shape[0] == 5 and np.allclose(batched, single, atol=1e-5)
