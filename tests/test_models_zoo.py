"""The model zoo: registry, upstream parameter counts, a few training iterations per model, and the shard
path through `ragar-data train MODEL`, `evaluate` and `predict` (silhouettes and keypoints_2d)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import Dataset

from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.models.deepgaitv2 import parameter_count
from ragar_data.models.registry import create_model, list_models, model_entry
from ragar_data.shards import make_record, update_index, write_shard
from ragar_data.training.build import build_classifier, model_from_checkpoint, read_checkpoint
from ragar_data.training.config import load_config
from ragar_data.training.stages import train_classification

SCHEMA = default_schema()

# Parameters of each upstream backbone up to its identity heads (silhouette models) or with its identity
# heads (pose models), counted by building upstream's own modules from its source on CPU in a scratch
# directory (never committed) and summing numel() of every parameter, heads excluded as named:
# - OpenGait github:ShiqiYu/OpenGait @ 0efafd4779f127fbce34f22aff301bd82e923da5, each model class's
#   build_network() run with the model_cfg of the named config, then all parameters minus those of Head /
#   FCs / BNNecks / Bn / Head0 / Head1:
#   gaitset: opengait/modeling/models/gaitset.py, configs/gaitset/gaitset.yaml (Head = SeparateFCs)
#   gaitpart: opengait/modeling/models/gaitpart.py + backbones/plain.py, configs/gaitpart/gaitpart.yaml
#   gaitgl: opengait/modeling/models/gaitgl.py, configs/gaitgl/gaitgl.yaml (CASIA-B branch, 64x44)
#   gaitbase: opengait/modeling/models/baseline.py + backbones/resnet.py, configs/gaitbase/gaitbase_da_casiab.yaml
#   deepgaitv2_*: opengait/modeling/models/deepgaitv2.py, Backbone mode 2d / p3d / 3d, layers [1, 2, 2, 1],
#     channels [64, 128, 256, 512] (the figures the issue names)
#   pose models, all parameters including the identity head ``fcn`` (the figures the issue names):
#   gaitgraph: opengait/modeling/models/gaitgraph1.py + backbones/resgcn.py, configs/gaitgraph1/gaitgraph1_phase1.yaml
#   gaitgraph2: opengait/modeling/models/gaitgraph2.py, configs/gaitgraph2/gaitgraph2.yaml
#   gaittr: opengait/modeling/models/gaittr.py, configs/gaittr/gaittr_OUMVLP17.yaml
#   gpgait: FastPoseGait github:BNU-IVC/FastPoseGait @ 94da9c82df72b94c342ca8c6366e90578ea8e1ae,
#     fastposegait/modeling/models/gpgait.py build_network with configs/gpgait/gpgait.yaml (num_class 74):
#     3,654,810 with its SeparateFCs (19 x 256 x 256) and SeparateBNNecks (19 x 256 x 74 + BN 19 x 256)
# Ours are counted on the encoder alone (silhouette models) or on the encoder built with upstream's identity
# embedding (pose models: ``embedding=`` 128, 128, 256), which the registered models replace by the attribute head.
UPSTREAM_BACKBONE_PARAMETERS = {
    "gaitset": 562_976,
    "gaitpart": 941_856,
    "gaitgl": 1_441_633,
    "gaitbase": 4_896_960,
    "deepgaitv2_2d": 6_373_056,
    "deepgaitv2_p3d": 7_653_568,
    "deepgaitv2_3d": 18_611_904,
}
UPSTREAM_POSE_PARAMETERS_WITH_IDENTITY_HEAD = {  # name: (count, upstream embedding size)
    "gaitgraph": (319_530, 128),
    "gaitgraph2": (350_822, 128),
    "gaittr": (544_906, 256),
}


def test_registry_names_every_model_and_refuses_unknown_names():
    assert set(UPSTREAM_BACKBONE_PARAMETERS) <= set(list_models())
    assert model_entry("gaitset").input_field == "silhouettes"
    with pytest.raises(RagarDataError, match="unknown model 'gaitfoo'.*gaitset"):
        create_model("gaitfoo")


@pytest.mark.parametrize("name", sorted(UPSTREAM_BACKBONE_PARAMETERS))
def test_backbone_parameters_equal_upstream(name):
    model = create_model(name)
    assert parameter_count(model.visual) == UPSTREAM_BACKBONE_PARAMETERS[name]
    features = model.visual.out_channels * model.visual.parts
    # the attribute head: BN over the flattened features + a linear layer to the 45 classes
    assert parameter_count(model) - parameter_count(model.visual) == 2 * features + features * 45 + 45


@pytest.mark.parametrize("name", sorted(UPSTREAM_POSE_PARAMETERS_WITH_IDENTITY_HEAD))
def test_pose_models_with_identity_heads_equal_upstream(name):
    from ragar_data.models.gaitgraph import GaitGraphEncoder
    from ragar_data.models.gaitgraph2 import GaitGraph2Encoder
    from ragar_data.models.gaittr import GaitTREncoder

    encoder = {"gaitgraph": GaitGraphEncoder, "gaitgraph2": GaitGraph2Encoder, "gaittr": GaitTREncoder}[name]
    count, embedding = UPSTREAM_POSE_PARAMETERS_WITH_IDENTITY_HEAD[name]
    assert parameter_count(encoder(embedding=embedding)) == count
    model = create_model(name)
    assert model_entry(name).input_field == model.input_field == "keypoints_2d"
    assert parameter_count(model.visual) == count - (256 * embedding + embedding)  # the head is swapped


def test_gpgait_backbone_equals_upstream_without_its_identity_heads():
    identity_heads = 19 * 256 * 256 + 19 * 256 * 74 + 2 * 19 * 256  # SeparateFCs + SeparateBNNecks (74 ids)
    model = create_model("gpgait")
    assert parameter_count(model.visual) == 3_654_810 - identity_heads == 2_039_962
    assert (model.visual.out_channels, model.visual.parts, model.input_field) == (256, 19, "keypoints_2d")


def test_garnet_selects_per_attribute_among_static_and_motion_parts():
    model = create_model("garnet").eval()
    silhouettes = (torch.rand(2, 5, 64, 44) > 0.5).float()
    tokens = model.visual.tokens(silhouettes)
    assert tokens.shape == (2, 128, 32)  # 16 static + 16 motion parts (sizes are our guesses)
    weights = model.visual.selection.weights(tokens)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 15))
    assert not torch.allclose(weights[0], weights[1])  # the selection depends on the sequence
    features = model.visual(silhouettes)
    assert features.shape == (2, 128, 15 + 32)  # the selected features, then the tokens they come from
    torch.testing.assert_close(features[..., 15:], tokens)
    assert model(silhouettes).shape == (2, 45)


def test_pose_input_transforms_match_upstream_on_a_known_case():
    from ragar_data.models.gaitgraph2 import fill_empty_joints, multi_input

    keypoints = torch.zeros(1, 4, 17, 3)
    keypoints[0, :, :, 0] = torch.arange(4.0)[:, None] + 1  # x grows by 1 per frame
    keypoints[0, :, :, 1] = torch.arange(17.0) * 10  # y by joint
    keypoints[..., 2] = 0.5
    keypoints[0, 1, 3, 0] = 0  # an empty joint: moved to the frame's mean, confidence 0
    filled = fill_empty_joints(keypoints)
    assert filled[0, 1, 3, 2] == 0 and filled[0, 1, 3, 0] == pytest.approx(keypoints[0, 1, :, 0].mean().item())
    branches = multi_input(keypoints)  # (B, 3, 5, T, V)
    assert branches.shape == (1, 3, 5, 4, 17)
    assert branches[0, 1, 0, 0, 5] == 1 and branches[0, 1, 0, 2, 5] == 0  # velocity; 0 in the last 2 frames
    assert branches[0, 1, 3, 0, 5] == 0.5  # upstream writes the confidence at index 3
    assert branches[0, 2, 1, 0, 5] == 50  # bone of the left shoulder (5) from the nose (0): dy = 50


class InMemorySequences(Dataset):
    """Random silhouettes or keypoints drawn from (epoch, index), with fixed random labels."""

    def __init__(self, input_field="silhouettes", count=4, frames=2):
        rng = np.random.default_rng(0)
        self.labels = np.stack([rng.integers(0, n, count) for n in SCHEMA.num_classes], 1)
        self.one_hot = SCHEMA.to_one_hot(self.labels)
        self.input_field, self.frames, self.epoch = input_field, frames, 0

    def __len__(self):
        return len(self.labels)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, index):
        rng = np.random.default_rng((7, self.epoch, index))
        if self.input_field == "silhouettes":
            inputs = (rng.random((self.frames, 64, 44)) > 0.5).astype(np.float32)
        else:  # pixel coordinates of a ~200 px tall person, confidence in [0, 1]
            inputs = np.concatenate([rng.uniform(100, 300, (self.frames, 17, 2)),
                                     rng.uniform(0, 1, (self.frames, 17, 1))], -1).astype(np.float32)
        return {self.input_field: torch.from_numpy(inputs), "labels": torch.from_numpy(self.labels[index]),
                "one_hot": torch.from_numpy(self.one_hot[index]), "key": f"item-{index}"}


def tiny_settings(output_dir, *extra):
    return [f"train.output_dir={output_dir}", "train.batch_size=2", "train.classification_iterations=2",
            "train.checkpoint_every=2", "data.frames=2", "data.num_workers=0", "data.max_eval_frames=6",
            "data.eval_batch_size=4", "train.device=cpu", "train.amp=none", "data.row_cache=false", *extra]


# Full-size ResNet-like models take 9-23 s here for 2 iterations of 2 x 2 frames (2 shared CPU cores).
LARGE_MODELS = {"deepgaitv2_2d", "deepgaitv2_p3d", "deepgaitv2_3d", "gaitbase"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE_MODELS else n
                                  for n in list_models()])
def test_every_model_trains_a_few_iterations(tmp_path, name):
    # Full-size models on 2 sequences of 2 frames: the architecture is the one trained for real.
    config = load_config(name, tiny_settings(tmp_path / name))
    dataset = InMemorySequences(model_entry(name).input_field)
    initial_head = build_classifier(config, SCHEMA).classifier.weight.detach().clone()
    result = train_classification(config, dataset, progress=False)
    assert sorted(result.losses) == [1, 2] and all(np.isfinite(list(result.losses.values())))
    state = read_checkpoint(result.checkpoint)
    assert (state["kind"], state["iteration"], state["config"]["model"]["name"]) == ("classification", 2, name)
    model, _, _ = model_from_checkpoint(result.checkpoint)
    assert model.input_field == dataset.input_field
    torch.testing.assert_close(model.classifier.weight, state["model"]["classifier.weight"])
    assert not torch.equal(model.classifier.weight, initial_head)  # the optimiser moved the seeded head


def test_packaged_configs_hold_the_papers_uniform_settings():
    for name in list_models():
        config = load_config(name)
        assert config.model.name == name
        assert (config.optim.lr, config.train.batch_size, config.data.frames) == (1e-4, 32, 30)
        assert config.train.output_dir == f"runs/{name}"


def write_tiny_dataset(root, with_pose: bool, subjects=("001", "002", "003", "004"), frames=6):
    """Shards of 2 sequences per subject (silhouettes, and keypoints_2d when ``with_pose``) + partition.json."""
    rng = np.random.default_rng(1)
    records = []
    for subject in subjects:
        labels = np.array([rng.integers(0, n) for n in SCHEMA.num_classes], dtype=np.int8)
        for view in (0, 36):
            silhouettes = (rng.random((frames, 64, 64)) > 0.5).astype(np.uint8) * 255
            keypoints = np.concatenate([rng.uniform(50, 250, (frames, 17, 2)), rng.uniform(0, 1, (frames, 17, 1))],
                                       -1).astype(np.float32)
            records.append(make_record(
                SequenceKey(subject, 0, "nm-01", view), image_width=320, image_height=240, labels=labels,
                frame_index=np.arange(frames, dtype=np.int32),
                boxes=rng.uniform(0, 100, (frames, 4)).astype(np.float32), silhouettes=silhouettes,
                silhouette_frame_index=np.arange(frames, dtype=np.int32),
                keypoints_2d=keypoints if with_pose else None, keypoints_2d_model="synthetic" if with_pose else None))
    update_index(root, [write_shard(root, "part-000", records)])
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": list(subjects[:2]), "TEST_SET": list(subjects[2:])}))
    return root


@pytest.mark.parametrize("name", ["gaitgraph", "gaitset"])
def test_train_model_command_then_evaluate_and_predict(tmp_path, name):
    dataset = write_tiny_dataset(tmp_path / "data", with_pose=True)
    runner = CliRunner()
    settings = [arg for setting in tiny_settings(tmp_path / "run") if not setting.startswith("train.output_dir")
                for arg in ("--set", setting)]
    result = runner.invoke(cli, ["train", name, "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                                 *settings])
    assert result.exit_code == 0, result.output
    assert f"model {name} (input {model_entry(name).input_field})" in result.output
    checkpoint = tmp_path / "run" / "classification" / "final.pt"
    assert read_checkpoint(checkpoint)["config"]["model"]["name"] == name
    result = runner.invoke(cli, ["evaluate", str(checkpoint), "--dataset", str(dataset), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads((checkpoint.parent / "evaluation.json").read_text())
    assert report["num_sequences"] == 4  # the 2 test subjects x 2 views
    result = runner.invoke(cli, ["predict", str(checkpoint), str(dataset), "--out", str(tmp_path / "p.parquet"),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "p.parquet").num_rows == 8


def test_pose_model_refuses_a_dataset_without_keypoints(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "data", with_pose=False)
    config = load_config("gaittr", tiny_settings(tmp_path / "run", f"data.dataset={dataset}"))
    with pytest.raises(RagarDataError, match="no sequence has keypoints_2d.*--modality pose"):
        train_classification(config, progress=False)
    result = CliRunner().invoke(cli, ["train", "gaittr", "--dataset", str(dataset), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "no sequence has keypoints_2d" in result.output
    assert not (tmp_path / "r" / "classification").exists()
