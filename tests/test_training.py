"""Trainer: config loading and overrides, the resumable batch order, exact resume, checkpoints."""
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ragar_data.attributes import default_schema
from ragar_data.training.build import model_from_checkpoint, read_checkpoint
from ragar_data.training.config import ConfigError, load_config
from ragar_data.training.data import EpochBatches
from ragar_data.training.stages import describe, train_classification, train_clipgar

SCHEMA = default_schema()


class InMemorySequences(Dataset):
    """Random silhouettes drawn from (epoch, index), as the shard loaders do, with fixed random labels."""

    def __init__(self, count=12, frames=6):
        rng = np.random.default_rng(0)
        self.labels = np.stack([rng.integers(0, n, count) for n in SCHEMA.num_classes], 1)
        self.one_hot = SCHEMA.to_one_hot(self.labels)
        self.frames, self.epoch = frames, 0

    def __len__(self):
        return len(self.labels)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, index):
        rng = np.random.default_rng((7, self.epoch, index))
        return {"silhouettes": torch.from_numpy(rng.random((self.frames, 64, 44), dtype=np.float32)),
                "labels": torch.from_numpy(self.labels[index]),
                "one_hot": torch.from_numpy(SCHEMA.to_one_hot(self.labels[index])), "key": f"item-{index}"}


def tiny_config(output_dir, *extra):
    return load_config("smoke", [f"train.output_dir={output_dir}", "model.channels=[4,8,8,16]",
                                 "text.dim=16", "data.frames=6", *extra])


def test_packaged_configs_and_overrides():
    paper = load_config("clipgar")
    assert (paper.optim.lr, paper.optim.weight_decay, paper.optim.eps, paper.optim.betas) == (1e-4, 2e-5, 1e-6, [0.9, 0.999])
    assert (paper.train.batch_size, paper.train.align_iterations, paper.train.fusion_iterations) == (32, 120_000, 20_000)
    assert (paper.model.layers, paper.model.channels, paper.model.parts, paper.model.fusion_depth) == \
        ([1, 2, 2, 1], [64, 128, 256, 512], 8, 1)
    assert paper.text.backend == "clip"
    changed = load_config("clipgar", ["optim.lr=3e-4", "model.parts=16", "train.channels_last=false"])
    assert (changed.optim.lr, changed.model.parts, changed.train.channels_last) == (3e-4, 16, False)
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'"):
        load_config("clipgar", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="batch_size: expected an integer"):
        load_config("clipgar", ["train.batch_size=2.5"])
    with pytest.raises(ConfigError, match="neither a file nor a packaged config"):
        load_config("no-such-config")
    assert "18,611,904 parameters -> equal" not in describe(load_config("smoke"))
    assert describe(paper).count("18,611,904") == 2


def test_epoch_batches_resume_mid_epoch_and_split_ranks():
    full = list(EpochBatches(10, 3, seed=1, epoch=2))
    assert len(full) == 3 and sorted(sum(full, [])) != list(range(9))  # shuffled, last item dropped
    assert list(EpochBatches(10, 3, seed=1, epoch=2, start_batch=1)) == full[1:]
    assert list(EpochBatches(10, 3, seed=1, epoch=3)) != full
    rank0 = list(EpochBatches(12, 2, seed=1, epoch=0, rank=0, world_size=2))
    rank1 = list(EpochBatches(12, 2, seed=1, epoch=0, rank=1, world_size=2))
    assert len(rank0) == 3 and not set(sum(rank0, [])) & set(sum(rank1, []))
    with pytest.raises(Exception, match="fewer than one batch"):
        EpochBatches(3, 4, seed=0, epoch=0)


@pytest.mark.parametrize("stage", ["align", "fusion"])
def test_resume_gives_the_same_next_losses(tmp_path, stage):
    torch.set_num_threads(1)
    dataset = InMemorySequences()
    # 12 items, batch 4: 3 batches per epoch, so the interruption at 4 falls inside the second epoch.
    settings = ["train.align_iterations=7", "train.fusion_iterations=7", "train.checkpoint_every=4"]
    stages = ("align",) if stage == "align" else ("align", "fusion")
    straight = train_clipgar(tiny_config(tmp_path / "straight", *settings), stages, dataset, progress=False)
    interrupted_config = tiny_config(tmp_path / "interrupted", *settings)
    if stage == "fusion":
        train_clipgar(interrupted_config, ("align",), dataset, progress=False)
    from ragar_data.training import stages as stage_module
    from ragar_data.training.build import build_clipgar

    model = build_clipgar(interrupted_config, SCHEMA)
    if stage == "fusion":
        stage_module.load_weights(model, tmp_path / "interrupted" / "align" / "final.pt", SCHEMA)
    task = stage_module.AlignTask(model) if stage == "align" else stage_module.FusionTask(model)
    from ragar_data.training.trainer import train_stage

    first = train_stage(task, dataset, interrupted_config, tmp_path / "interrupted" / stage, 7,
                        SCHEMA.label_names(), stop_after=5, progress=False)
    assert not (tmp_path / "interrupted" / stage / "final.pt").exists()
    assert read_checkpoint(tmp_path / "interrupted" / stage / "last.pt")["iteration"] == 4
    resumed = train_clipgar(interrupted_config, (stage,), dataset, progress=False)[stage]
    expected = straight[stage].losses
    assert sorted(resumed.losses) == [5, 6, 7]
    for iteration in (5, 6, 7):
        assert resumed.losses[iteration] == pytest.approx(expected[iteration], rel=1e-6, abs=1e-7)
    assert first.losses[5] == pytest.approx(expected[5], rel=1e-6, abs=1e-7)
    assert len({round(v, 6) for v in expected.values()}) > 3  # the losses do change between iterations


def test_checkpoints_are_complete_and_load_for_inference(tmp_path):
    dataset = InMemorySequences()
    config = tiny_config(tmp_path / "run", "train.align_iterations=3", "train.checkpoint_every=2",
                         "model.classification_loss=ce", "train.classification_iterations=3")
    results = train_clipgar(config, ("align",), dataset, progress=False)
    state = read_checkpoint(results["align"].checkpoint)
    assert state["iteration"] == 3 and state["stage"] == "align" and state["kind"] == "clipgar"
    assert state["label_names"] == SCHEMA.label_names()
    assert {"optimizer", "scheduler", "rng", "sampler"} <= set(state)
    assert state["sampler"] == {"epoch": 1, "batch_in_epoch": 0}
    assert not [p for p in (tmp_path / "run" / "align").iterdir() if p.name.endswith(".tmp")]
    assert list((tmp_path / "run" / "align" / "tensorboard").glob("events.out.tfevents.*"))
    model, _, loaded_config = model_from_checkpoint(results["align"].checkpoint)
    assert loaded_config.model.channels == [4, 8, 8, 16]
    torch.testing.assert_close(model.align_head.theta.weight, state["model"]["align_head.theta.weight"])
    classification = train_classification(config, dataset, progress=False)
    assert read_checkpoint(classification.checkpoint)["kind"] == "classification"


def test_bce_weighting_option(tmp_path):
    torch.set_num_threads(1)
    dataset = InMemorySequences()
    settings = ["train.classification_iterations=2", "train.checkpoint_every=2"]
    plain = train_classification(tiny_config(tmp_path / "plain", *settings), dataset, progress=False)
    weighted = train_classification(tiny_config(tmp_path / "weighted", *settings, "model.bce_weighting=positive_ratio"),
                                    dataset, progress=False)
    assert load_config("clipgar").model.bce_weighting == "plain"  # the paper's BCE stays the default
    short = load_config("table5_cpu")
    assert (short.model.bce_weighting, short.optim.scheduler) == ("positive_ratio", "cosine")
    # same seed and batch: the first loss differs only by the label weights, which are all above 1
    assert weighted.losses[1] > plain.losses[1] * 1.05
    with pytest.raises(ConfigError, match="model.bce_weighting: must be one of 'plain', 'positive_ratio'"):
        tiny_config(tmp_path / "bad", *settings, "model.bce_weighting=focal")  # refused when loaded
