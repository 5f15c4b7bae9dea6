"""Which sequences a training or evaluation run reads: the partition of a dataset and the datasets of each side.

Owns the resumable batch order (`EpochBatches`), which input a model reads (silhouettes, or keypoints_2d for
the pose models) and the run's record of its partition (``<run>/partition.json``). Training and evaluation
never write into the dataset. Does not own frame sampling or shard reading (`ragar_data.loaders`) nor the
split rules (`ragar_data.split`).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Sampler

from ragar_data.errors import RagarDataError


def resolve_partition(dataset_dir: str | Path, split: str = "official"):
    """The partition of a run, computed in memory: ``<dataset>/partition.json`` when present and ``split`` is
    "official"; a partition JSON when ``split`` is a path; else the data layer's split rules. Writes nothing."""
    from ragar_data import split as splits

    dataset_dir = Path(dataset_dir)
    if split not in ("official", "seeded"):
        return splits.load_partition(split)
    existing = dataset_dir / "partition.json"
    if split == "official" and existing.is_file():
        return splits.load_partition(existing)
    keys, labels = splits.sequence_labels(dataset_dir)
    if not keys:
        raise splits.PartitionError(f"{dataset_dir}: the dataset has no sequences to split")
    released = splits.find_released_partition(dataset_dir) if split == "official" else None
    return splits.split_subjects(splits.labels_by_subject(keys, labels), split, splits.DEFAULT_SEED, released)


def record_partition(partition, run_dir: str | Path, resume: bool) -> Path:
    """Write the run's partition to ``<run_dir>/partition.json``. A resumed run must train on the partition it
    started with: another one is refused (``resume=False`` replaces the record)."""
    from ragar_data import split as splits

    record = Path(run_dir) / "partition.json"
    if resume and record.is_file():
        previous = splits.load_partition(record)
        if (sorted(previous.train), sorted(previous.test)) != (sorted(partition.train), sorted(partition.test)):
            raise RagarDataError(
                f"{record}: this run was trained on another partition ({len(previous.train)} train / "
                f"{len(previous.test)} test subjects) than the one resolved now ({len(partition.train)} / "
                f"{len(partition.test)}, {partition.protocol}); train into a new --out, or --restart")
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun one process writes it
        splits.write_partition(partition, record)
    return record


def model_input(config) -> str:
    """The batch field the config's model reads: "silhouettes", or "keypoints_2d" for the pose models."""
    if not config.model.name:
        return "silhouettes"
    from ragar_data.models.registry import model_entry

    return model_entry(config.model.name).input_field


def _usable(table: dict, input_field: str, dataset_dir) -> list[bool]:
    """Per row: does the sequence have the model's input (silhouettes kept, or 2D keypoints)?"""
    if input_field == "silhouettes":
        return [count > 0 for count in table["num_silhouettes"]]
    usable = [model is not None and frames > 0
              for model, frames in zip(table["keypoints_2d_model"], table["num_frames"])]
    if not any(usable):
        raise RagarDataError(
            f"{dataset_dir}: no sequence has keypoints_2d (the pose stage did not run: the default preset writes "
            "none), and this model reads COCO-17 keypoints. Build the dataset with a pose preset, or import poses "
            "with `ragar-data import opengait --modality pose` (generated data: `ragar-data import synth-pose`)")
    return usable


def usable_keys(dataset_dir: str | Path, input_field: str = "silhouettes") -> list[str]:
    """Keys of every sequence of the dataset that has the model's input (for prediction)."""
    from ragar_data.shards import ShardDataset

    table = ShardDataset(dataset_dir).table(["key", "num_silhouettes", "num_frames", "keypoints_2d_model"]).to_pydict()
    return sorted(key for key, usable in zip(table["key"], _usable(table, input_field, dataset_dir)) if usable)


def side_keys(dataset_dir: str | Path, partition, side: str, quality_ok_only: bool = True,
              input_field: str = "silhouettes") -> list[str]:
    """Keys of one side of the partition. With ``quality_ok_only`` (the default) sequences that failed the
    extraction's quality filter are left out; so are sequences without the model's input (no silhouette kept,
    or no keypoints_2d for ``input_field="keypoints_2d"``)."""
    from ragar_data.shards import ShardDataset

    subjects = set(partition.train if side == "train" else partition.test)
    columns = ["key", "subject", "quality_ok", "num_silhouettes", "num_frames", "keypoints_2d_model"]
    table = ShardDataset(dataset_dir).table(columns).to_pydict()
    rows = zip(table["key"], table["subject"], table["quality_ok"], _usable(table, input_field, dataset_dir))
    keys = sorted(key for key, subject, quality_ok, usable in rows
                  if subject in subjects and usable and (quality_ok or not quality_ok_only))
    if not keys:
        raise RagarDataError(f"{dataset_dir}: no usable sequences of the {side} subjects of the partition")
    return keys


def silhouette_dataset(dataset_dir, keys, config, train: bool, seed: int = 0):
    """The dataset of the config's model input (a SilhouetteDataset, or a PoseDataset for the pose models) with
    the config's sampling: fixed frames for training, all frames (capped) at test."""
    from ragar_data.loaders import PoseDataset, SilhouetteDataset

    kind = PoseDataset if model_input(config) == "keypoints_2d" else SilhouetteDataset
    access = dict(row_cache=config.data.row_cache, cache_dir=config.data.row_cache_dir)
    if train:
        return kind(dataset_dir, keys=keys, sampling=config.data.sampling, frames=config.data.frames, seed=seed,
                    **access)
    return kind(dataset_dir, keys=keys, sampling="all_ordered", max_frames=config.data.max_eval_frames, **access)


class EpochBatches(Sampler):
    """Batches of item indices for one epoch, from a permutation fixed by (seed, epoch); starts at a given batch.

    Plays DistributedSampler's part for DDP (rank r takes the r-th slice of each global batch) and can start
    mid-epoch, which DistributedSampler cannot; so a resumed run reads exactly the batches the interrupted
    run would have read. Incomplete final batches are dropped.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.num_items, self.batch_size = num_items, batch_size
        self.seed, self.epoch, self.start_batch = seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size
        if self.batches_per_epoch == 0:
            raise RagarDataError(
                f"the training set has {num_items} sequences, fewer than one batch of {batch_size} x "
                f"{world_size} process(es): lower train.batch_size"
            )

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator)
        global_batch = self.batch_size * self.world_size
        for batch in range(self.start_batch, self.batches_per_epoch):
            start = batch * global_batch + self.rank * self.batch_size
            yield order[start: start + self.batch_size].tolist()
