"""Which sequences a training or evaluation run reads: the partition of a dataset and the datasets of each side.

Owns the resumable batch order (`EpochBatches`), the loader that reads it (`batch_loader`: DataLoader worker
processes, or `ReaderThreads` for the frame cache), which input a model reads (silhouettes, or keypoints_2d for
the pose models), the run's record of its partition (``<run>/partition.json``), and on the evaluation side the
test frames (`TEST_FRAMES`: the paper's 30, or all) and the equal-length batches (`length_batches`) that keep
a sequence's score independent of its batch. Training and evaluation never write into the dataset. Does not
own frame sampling or shard reading (`ragar_data.loaders`) nor the split rules (`ragar_data.split`).
"""
from __future__ import annotations

import copy
import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ragar_data.errors import InputError, RagarDataError

# The paper standardises every model's input to 30 frames; evaluation takes the central 30 of each sequence
# (deterministic). "all" takes every frame in order, capped at data.max_eval_frames (OpenGait's test sampling).
TEST_FRAMES = 30
ALL_FRAMES = "all"


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


def parse_test_frames(value) -> int | str:
    """``"all"`` or a positive frame count (from the CLI's ``--frames``)."""
    if str(value).strip().lower() == ALL_FRAMES:
        return ALL_FRAMES
    try:
        frames = int(value)
    except (TypeError, ValueError):
        frames = 0
    if frames < 1:
        raise InputError(f"test frames: expected 'all' or a positive number of frames, got {value!r}")
    return frames


def evaluation_frames_record(test_frames: int | str, max_eval_frames: int) -> dict:
    """How evaluation sampled each test sequence, for reports: sampling, frames, and a sentence."""
    if test_frames == ALL_FRAMES:
        cap = f", at most {max_eval_frames}" if max_eval_frames > 0 else ""
        return {"sampling": "all_ordered", "frames": ALL_FRAMES, "max_frames": max_eval_frames,
                "description": f"all frames of each sequence in order{cap}"}
    return {"sampling": "central_ordered", "frames": int(test_frames),
            "description": f"the central {test_frames} consecutive frames of each sequence "
                           "(shorter ones repeated from their start)"}


def silhouette_dataset(dataset_dir, keys, config, train: bool, seed: int = 0, test_frames: int | str = TEST_FRAMES):
    """The dataset of the config's model input (a SilhouetteDataset, or a PoseDataset for the pose models) with
    the config's sampling for training; at test the central ``test_frames`` frames, or all (capped) with "all"."""
    from ragar_data.loaders import PoseDataset, SilhouetteDataset

    kind = PoseDataset if model_input(config) == "keypoints_2d" else SilhouetteDataset
    access = dict(row_cache=config.data.row_cache, cache_dir=config.data.row_cache_dir)
    if train:
        # training batches carry uint8 frames, converted by the trainer on its device (`_to_device`)
        raw = {"unit_range": False} if kind is SilhouetteDataset else {}
        return kind(dataset_dir, keys=keys, sampling=config.data.sampling, frames=config.data.frames, seed=seed,
                    **access, **raw)
    test_frames = parse_test_frames(test_frames)
    if test_frames == ALL_FRAMES:
        return kind(dataset_dir, keys=keys, sampling="all_ordered", max_frames=config.data.max_eval_frames, **access)
    return kind(dataset_dir, keys=keys, sampling="central_ordered", frames=test_frames, **access)


def sequence_lengths(dataset) -> np.ndarray | None:
    """(N,) frames each item of a shard dataset yields, known before reading it; None for other datasets."""
    from ragar_data.loaders import PoseDataset, SilhouetteDataset, sample_frame_indices

    if isinstance(dataset, SilhouetteDataset):
        counts = [record["num_silhouettes"] for record in dataset.records]
    elif isinstance(dataset, PoseDataset):
        table = dataset.shards.table(["key", "num_frames"]).to_pydict()
        by_key = dict(zip(table["key"], table["num_frames"]))
        counts = [by_key[key] for key in dataset.keys()]
    else:
        return None
    if dataset.sampling not in ("all_ordered", "central_ordered"):  # the random samplings give `frames` each
        return np.full(len(dataset), dataset.frames, dtype=np.int64)
    return np.array([sample_frame_indices(int(count), dataset.sampling, None, dataset.frames, dataset.frames_skip,
                                          dataset.max_frames).size for count in counts], dtype=np.int64)


def length_batches(lengths, batch_size: int) -> list[list[int]]:
    """Batches of item indices, each of items of one length (shortest first, dataset order within a length).

    Zero padding would reach the valid frames of the shorter sequences through the temporal convolutions (the
    temporal max only masks it at the end), so a padded sequence scores differently from the same sequence
    alone; batches of equal lengths need no padding."""
    lengths = np.asarray(lengths)
    batches = []
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length).tolist()
        batches += [members[start:start + batch_size] for start in range(0, len(members), batch_size)]
    return batches


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


def batch_loader(dataset, batches, num_workers: int, collate_fn, pin_memory: bool = False, generator=None):
    """What the trainer iterates: the batches of the batch sampler `batches`, collated by `collate_fn`, pinned
    when `pin_memory` (set it only for a CUDA device). `num_workers` parallel readers: for a dataset whose reads
    run outside the GIL (`reads_in_threads`: silhouettes from the frame cache) they are `ReaderThreads`, threads
    of this process; for any other dataset, a DataLoader's worker processes. 0: read in the calling thread."""
    if num_workers > 0 and getattr(dataset, "reads_in_threads", False):
        return ReaderThreads(dataset, batches, num_workers, collate_fn, pin_memory)
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=collate_fn,
                      pin_memory=pin_memory, generator=generator)


class ReaderThreads:
    """Batches read by `readers` threads of this process, yielded in the batch sampler's order, up to `prefetch`
    batches per thread ahead of the consumer (a DataLoader's prefetch_factor).

    Why threads: a frame-cache batch is one `preadv` per item and one numpy gather, both outside the GIL, so
    threads read in parallel; a DataLoader worker process would copy each 2.7 MB batch into shared memory for
    the trainer to map again, which costs more than reading it. A pass reads a shallow copy of the
    dataset taken when it starts (as DataLoader workers get their copy), so `set_epoch` applies from the next
    pass; items depend only on (seed, epoch, item), so batches are those of a DataLoader with any worker count.
    """

    def __init__(self, dataset, batches, readers: int, collate_fn, pin_memory: bool = False, prefetch: int = 2):
        if readers < 1:
            raise InputError(f"reader threads: expected at least 1, got {readers}")
        self.dataset, self.batches, self.readers = dataset, batches, readers
        self.collate_fn, self.pin_memory, self.prefetch = collate_fn, pin_memory, prefetch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        dataset = copy.copy(self.dataset)

        def read(indices: list[int]):
            batch = self.collate_fn(dataset.__getitems__(indices))
            return _pinned(batch) if self.pin_memory else batch

        order = iter(self.batches)
        with ThreadPoolExecutor(self.readers, thread_name_prefix="ragar-reader") as pool:
            pending = deque(pool.submit(read, indices)
                            for indices in itertools.islice(order, self.readers * self.prefetch))
            try:
                while pending:
                    batch = pending.popleft().result()
                    following = next(order, None)
                    if following is not None:
                        pending.append(pool.submit(read, following))
                    yield batch
            finally:  # the consumer stopped early (or a read failed): drop the batches not started
                for future in pending:
                    future.cancel()


def _pinned(batch):
    """The batch (a tensor, or a dict as `collate` makes) with its tensors in pinned memory."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    return {name: value.pin_memory() if isinstance(value, torch.Tensor) else value for name, value in batch.items()}
