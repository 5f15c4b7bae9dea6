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
UPSTREAM_BACKBONE_PARAMETERS = {
    "gaitset": 562_976,
    "gaitpart": 941_856,
    "gaitgl": 1_441_633,
    "gaitbase": 4_896_960,
    "deepgaitv2_2d": 6_373_056,
    "deepgaitv2_p3d": 7_653_568,
    "deepgaitv2_3d": 18_611_904,
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
