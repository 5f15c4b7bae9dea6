"""PyTorch datasets over shards: silhouette and pose sequences with OpenGait's frame sampling.

Owns: frame sampling (`sample_frame_indices`, the semantics of OpenGait's `opengait/data/collate_fn.py`),
`SilhouetteDataset`, `PoseDataset` and the collate functions for variable-length test batches. An item reads
one row, by default from a local cache built once per shard: silhouettes from the frame cache
(`frame_cache.FrameCache`: uncompressed frames, only the span holding the sampled ones is read), poses from the row
cache (`row_access.ArrowRowCache`: memory-mapped Arrow IPC copies of the needed columns); with
`row_cache=False` straight from the shard's row group. Every reader works with `num_workers > 0` without
loading whole shards. Does not own the shard format (`ragar_data.shards`) nor the split (`ragar_data.split`):
pass the keys or subjects of one side.

Batches: a DataLoader with a batch size (or batch sampler) calls `__getitems__`, which samples the whole batch
at once, reads its frames into one array (from the frame cache: one read per item and one gather, outside the
GIL, so `training.data.ReaderThreads` reads batches in threads) and converts them to float once; `collate` then
stacks without copying (the items are rows of one batch tensor).

Randomness: a sample depends only on (seed, epoch, item), so it is the same whichever worker reads it and
however many there are. fixed_ordered (the training default) takes item `i`'s row of a table drawn once per
epoch from `numpy.random.default_rng((seed, e))`; the other samplings draw from
`numpy.random.default_rng((seed, e, i))`. Call `set_epoch(e)` before each epoch (workers get a fresh copy of
the dataset each epoch unless the DataLoader uses `persistent_workers=True`).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import InputError, ShardError
from ragar_data.frame_cache import FrameCache, read_batch
from ragar_data.row_access import ArrowRowCache, ParquetRowReader
from ragar_data.shards import ShardDataset, decode_silhouettes, table_to_records
from ragar_data.silhouettes import cutting_columns

SAMPLINGS = ("fixed_ordered", "fixed_unordered", "fixed_allordered", "all_ordered", "central_ordered")
METADATA_COLUMNS = ["key", "subject", "combination", "condition", "view", "labels", "quality_ok"]
# read once for the whole selection; per item only the `silhouettes` blob is read
SILHOUETTE_SHAPE_COLUMNS = ["silhouette_encoding", "num_silhouettes", "silhouette_height", "silhouette_width"]


def to_unit_range(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames as float32 in [0, 1], the values of OpenGait's BaseSilCuttingTransform (x / 255.0 in float64,
    then float32 in the model): IEEE float32 division is correctly rounded and gives the same float32 for each of
    the 256 levels (tests check all of them), 8x faster than a lookup table."""
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8)).float().div_(255.0)


def silhouettes_to_unit_range(batch: dict) -> dict:
    """The batch with uint8 silhouettes (a dataset made with `unit_range=False`) as float32 in [0, 1], the
    values `to_unit_range` gives; float silhouettes are left as they are. The trainer calls it after moving
    the batch to its device, so a GPU receives 4x fewer bytes and converts them itself."""
    frames = batch.get("silhouettes")
    if frames is None or frames.dtype != torch.uint8:
        return batch
    return dict(batch, silhouettes=frames.float().div_(255.0))


def sample_frame_indices(num_frames: int, sampling: str, rng: np.random.Generator, frames: int = 30,
                         frames_skip: int = 4, max_frames: int = 720, name: str = "sequence") -> np.ndarray:
    """Frame positions to take from a sequence of `num_frames`, as OpenGait's CollateFn samples them.

    - fixed_ordered: repeat the sequence until it holds frames + frames_skip positions, pick a random window
      of that many consecutive positions, keep `frames` of them (without replacement) in order.
    - fixed_unordered: `frames` random positions, with replacement only when the sequence is shorter.
    - fixed_allordered: as fixed_unordered, then sorted.
    - all_ordered: every frame in order, the first `max_frames` when longer (upstream frames_all_limit).
    - central_ordered (deterministic, for evaluation at the paper's 30 frames): the central `frames`
      consecutive frames; a shorter sequence is repeated from its start, as fixed_ordered repeats it.
    """
    if sampling not in SAMPLINGS:
        raise InputError(f"sampling {sampling!r} not in {SAMPLINGS}")
    if num_frames <= 0:
        raise InputError(f"{name}: no frames to sample (the sequence is empty)")
    if sampling == "all_ordered":
        return np.arange(min(num_frames, max_frames) if max_frames > 0 else num_frames)
    if sampling == "central_ordered":
        start = max(0, (num_frames - frames) // 2)
        return np.arange(start, start + frames) % num_frames
    if sampling == "fixed_ordered":
        window = frames + frames_skip
        repeats = math.ceil(window / num_frames) if num_frames < window else 1
        positions = np.tile(np.arange(num_frames), repeats)
        start = int(rng.integers(0, positions.size - window + 1))
        chosen = np.sort(rng.choice(np.arange(start, start + window), frames, replace=False))
        return positions[chosen]
    indices = rng.choice(num_frames, frames, replace=num_frames < frames)
    return np.sort(indices) if sampling == "fixed_allordered" else indices


def fixed_ordered_draws(seed: int, epoch: int, count: int, frames: int = 30, frames_skip: int = 4) -> np.ndarray:
    """Uniform draws in [0, 1) for `count` sequences, (count, 1 + frames + frames_skip), one row per sequence:
    what `sample_fixed_ordered` turns into frame positions."""
    return np.random.default_rng((seed, epoch)).random((count, 1 + frames + frames_skip))


def sample_fixed_ordered(num_frames: np.ndarray, draws: np.ndarray, frames: int = 30,
                         frames_skip: int = 4) -> np.ndarray:
    """(B, frames) positions for B sequences of `num_frames` (all > 0): fixed_ordered sampling, vectorised.

    As `sample_frame_indices`: the sequence repeated until it holds frames + frames_skip positions, a window of
    that many consecutive positions starting at draws[:, 0] of the possible starts, and the `frames` window
    offsets with the smallest of draws[:, 1:] (a uniform subset, without replacement), in order.
    """
    window = frames + frames_skip
    counts = np.asarray(num_frames, np.int64)
    positions = counts * np.where(counts < window, -(-window // counts), 1)
    starts = np.minimum((draws[:, 0] * (positions - window + 1)).astype(np.int64), positions - window)
    offsets = np.sort(np.argsort(draws[:, 1:], axis=1)[:, :frames], axis=1)
    return (starts[:, None] + offsets) % counts[:, None]


class _ShardSequences(Dataset):
    """Common part: selection of keys, metadata and labels in memory, per-item rows read on demand.

    Options shared by the datasets: `verify` (check shard digests against the index), `schema`,
    `include_failed`; `row_cache` (default) reads items from a local cache of the shards built once per shard
    under `cache_dir` (None: $RAGAR_CACHE_DIR/rows or /frames, else under ~/.cache/ragar-data; a progress bar
    shows when several are built), else items read their row group from the shard, keeping `max_open_shards`
    shards open per process.
    """

    data_columns: list[str] = []

    def __init__(self, dataset_dir, keys=None, subjects=None, sampling="fixed_ordered", frames=30,
                 frames_skip=4, seed=0, max_frames=720, verify=True, schema: AttributeSchema | None = None,
                 max_open_shards: int = 8, include_failed: bool = False, row_cache: bool = True,
                 cache_dir: str | Path | None = None, progress: bool = True):
        if sampling not in SAMPLINGS:
            raise InputError(f"sampling {sampling!r} not in {SAMPLINGS}")
        self.dataset_dir = Path(dataset_dir)
        self.shards = ShardDataset(self.dataset_dir, verify=verify)
        self.sampling, self.frames, self.frames_skip = sampling, frames, frames_skip
        self.seed, self.max_frames, self.epoch = seed, max_frames, 0
        self.schema = schema or default_schema()
        self._reader = self.make_reader(row_cache, cache_dir, max_open_shards)
        self._draws: tuple[int, np.ndarray] | None = None  # (epoch, fixed_ordered draws of every item)

        metadata = self.shards.table(columns=METADATA_COLUMNS + self.extra_metadata_columns()).to_pylist()
        by_key = {row["key"]: row for row in metadata}
        if keys is None:
            selected = sorted(by_key)
        else:
            selected = [str(k) for k in keys]
            missing = [k for k in selected if k not in by_key]
            if missing:
                raise KeyError(f"{len(missing)} keys not in the dataset {self.dataset_dir}, e.g. {missing[:3]}")
        if subjects is not None:
            wanted = {str(s) for s in subjects}
            selected = [k for k in selected if by_key[k]["subject"] in wanted]
        self.records = [by_key[k] for k in selected]
        # sequences the extraction flagged (quality_ok false) stay out unless asked for; explicit keys are the
        # caller's choice and are taken as given
        keep_failed = include_failed or keys is not None
        self.skipped_failed = [] if keep_failed else [r["key"] for r in self.records if not r["quality_ok"]]
        if self.skipped_failed:
            warnings.warn(f"{self.dataset_dir}: left out {len(self.skipped_failed)} sequences failing the quality "
                          f"filter (include_failed=True keeps them), e.g. {self.skipped_failed[:3]}", stacklevel=3)
            self.records = [r for r in self.records if r["quality_ok"]]
        self.check_selection()
        self.labels = np.array([r["labels"] for r in self.records], dtype=np.int64).reshape(-1, len(self.schema))
        self.one_hot = self.schema.to_one_hot(self.labels)
        self._digests = {self.dataset_dir / e["file"]: e["sha256"] if verify else None
                         for e in self.shards.index["shards"]}
        # (shard path, row) per item from the index, once: ShardDataset.locate rebuilds its path list per call
        paths = {entry["file"]: self.dataset_dir / entry["file"] for entry in self.shards.index["shards"]}
        where = {key: (paths[entry["file"]], row)  # one Path per shard: lookups by it then compare by identity
                 for entry in self.shards.index["shards"] for row, key in enumerate(entry["keys"])}
        self._locations = [where[record["key"]] for record in self.records]
        # the shards this selection reads (reading the metadata above already checked their digests)
        needed = sorted({path for path, _ in self._locations})
        self._reader.prepare({path: self._digests[path] for path in needed}, self.data_columns, progress=progress)

    def make_reader(self, row_cache: bool, cache_dir, max_open_shards: int):
        return ArrowRowCache(cache_dir) if row_cache else ParquetRowReader(max_open_shards)

    def extra_metadata_columns(self) -> list[str]:
        return []

    @property
    def reads_in_threads(self) -> bool:
        """Do items read outside the GIL, so that `training.data.ReaderThreads` may read them in parallel?"""
        return False

    def check_selection(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def keys(self) -> list[str]:
        return [r["key"] for r in self.records]

    def _read_table(self, index: int):
        path, row = self._locations[index]
        return self._reader.read(path, row, self.data_columns, self._digests.get(path))

    def _sample(self, index: int, num_frames: int) -> np.ndarray:
        return self._sample_batch(np.array([index]), np.array([num_frames]))[0]

    def _sample_batch(self, indices: np.ndarray, num_frames: np.ndarray) -> list[np.ndarray] | np.ndarray:
        """Frame positions of items `indices` (sequences of `num_frames`): (B, frames) for fixed_ordered."""
        empty = np.flatnonzero(num_frames <= 0)
        if empty.size:
            raise InputError(f"{self.records[indices[empty[0]]]['key']}: no frames to sample (the sequence is empty)")
        if self.sampling == "fixed_ordered":
            if self._draws is None or self._draws[0] != self.epoch:
                self._draws = (self.epoch, fixed_ordered_draws(self.seed, self.epoch, len(self), self.frames,
                                                               self.frames_skip))
            return sample_fixed_ordered(num_frames, self._draws[1][indices], self.frames, self.frames_skip)
        return [sample_frame_indices(int(count), self.sampling, np.random.default_rng((self.seed, self.epoch, int(i))),
                                     self.frames, self.frames_skip, self.max_frames, name=self.records[i]["key"])
                for i, count in zip(indices, num_frames)]

    def __getstate__(self):
        # each worker draws its own table (a few MB for large selections)
        return dict(self.__dict__, _draws=None)

    def _item_metadata(self, index: int) -> dict:
        """The item's fields other than its sequence."""
        record = self.records[index]
        return {
            "labels": torch.from_numpy(self.labels[index]),
            "one_hot": torch.from_numpy(self.one_hot[index]),
            "key": record["key"], "subject": record["subject"], "combination": int(record["combination"]),
            "condition": record["condition"], "view": int(record["view"]),
        }


class SilhouetteDataset(_ShardSequences):
    """Silhouette sequences: item["silhouettes"] float32 (T, 64, 44) in [0, 1] (or (T, H, W) with cut=False);
    with `unit_range=False` the stored uint8 values, for the consumer to convert (`silhouettes_to_unit_range`):
    a GPU then receives a quarter of the bytes.

    Other item fields: labels int64 (15,) (-1 = not annotated), one_hot float32 (45,), key, subject,
    combination, condition, view. Without explicit `keys`, sequences failing the extraction's quality filter
    are left out unless include_failed (listed in `skipped_failed`); sequences without silhouettes are always
    left out (`skipped_empty`). With the row cache on, frames come from the frame cache (`frame_cache=False`:
    from the Arrow row cache, which decompresses whole sequences).
    """

    data_columns = ["silhouettes"]

    def __init__(self, dataset_dir, keys=None, sampling="fixed_ordered", frames=30, frames_skip=4, cut=True,
                 seed=0, max_frames=720, subjects=None, frame_cache: bool = True, unit_range: bool = True,
                 **options):
        self.frame_cache, self.cut, self.unit_range = frame_cache, cut, unit_range
        super().__init__(dataset_dir, keys=keys, subjects=subjects, sampling=sampling, frames=frames,
                         frames_skip=frames_skip, seed=seed, max_frames=max_frames, **options)

    def make_reader(self, row_cache: bool, cache_dir, max_open_shards: int):
        if row_cache and self.frame_cache:
            return FrameCache(cache_dir, cut=self.cut)
        return super().make_reader(row_cache, cache_dir, max_open_shards)

    def extra_metadata_columns(self) -> list[str]:
        return SILHOUETTE_SHAPE_COLUMNS

    @property
    def reads_in_threads(self) -> bool:
        return isinstance(self._reader, FrameCache)  # preadv and numpy's gather release the GIL

    def check_selection(self) -> None:
        # OpenGait never sees these: pretreatment writes no pickle for a sequence with no kept frame
        self.skipped_empty = [r["key"] for r in self.records if r["num_silhouettes"] == 0]
        if self.skipped_empty:
            warnings.warn(f"{self.dataset_dir}: left out {len(self.skipped_empty)} sequences with no silhouettes "
                          f"(no frame kept by normalisation), e.g. {self.skipped_empty[:3]}", stacklevel=3)
            self.records = [r for r in self.records if r["num_silhouettes"] > 0]

    def read_frames(self, index: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Normalised uint8 frames (S, H, W) of item `index`, cut when the dataset cuts (the frame cache holds
        them cut): all of them, or those at `positions` (only these are read and decoded)."""
        record = self.records[index]
        if isinstance(self._reader, FrameCache):
            return self._cached_frames(index, positions)
        blob = self._read_table(index).column(0)[0].as_buffer()
        return self._cut(decode_silhouettes(blob, record["silhouette_encoding"], record["num_silhouettes"],
                                            record["silhouette_height"], record["silhouette_width"], positions))

    def _cached_frames(self, index: int, positions: np.ndarray | None) -> np.ndarray:
        return self._frame_copy(index).read(self._locations[index][1],
                                            None if positions is None else np.asarray(positions, np.int64))

    def _frame_copy(self, index: int):
        """Item `index`'s open frame-cache copy, after checking it holds the sequence's frame count."""
        path, row = self._locations[index]
        copy = self._reader.shard(path, self._digests[path])
        count = self.records[index]["num_silhouettes"]
        if copy.frame_count(row) != count:
            raise ShardError(f"{path}: the frame cache holds {copy.frame_count(row)} frames of row {row} "
                             f"({self.records[index]['key']}), the shard {count}; remove {self._reader.cache_dir}")
        return copy

    def _cut(self, frames: np.ndarray) -> np.ndarray:
        width = frames.shape[-1]
        cut = cutting_columns(width) if self.cut else 0
        return frames[..., cut:width - cut] if cut else frames

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        return to_unit_range(frames) if self.unit_range else torch.from_numpy(np.ascontiguousarray(frames))

    def __getitem__(self, index: int) -> dict:
        positions = self._sample(index, int(self.records[index]["num_silhouettes"]))
        item = {"silhouettes": self._tensor(self.read_frames(index, positions))}
        item.update(self._item_metadata(index))
        return item

    def __getitems__(self, indices: list[int]) -> Sequence[dict]:
        """The items of one batch, equal to `[self[i] for i in indices]`: positions sampled for the batch at
        once, frames read into one array (`_batch_frames`), made a tensor without a copy (converted to float
        once), given as `BatchItems`, which `collate` turns into the batch without building each item."""
        indices = np.asarray(indices, np.int64)
        positions = self._sample_batch(indices, np.array([self.records[i]["num_silhouettes"] for i in indices]))
        frames = self._batch_frames(indices, positions)
        if frames is None:  # all_ordered lengths differ: items as `__getitem__` makes them
            return [dict(self._item_metadata(int(index)),
                         silhouettes=self._tensor(self.read_frames(int(index), where)))
                    for index, where in zip(indices, positions)]
        silhouettes = torch.from_numpy(frames)
        if self.unit_range:
            silhouettes = silhouettes.float().div_(255.0)  # to_unit_range's values, divided once for the batch
        return BatchItems(self._batch_fields(indices, silhouettes))

    def _batch_fields(self, indices: np.ndarray, silhouettes: torch.Tensor) -> dict:
        """What `collate` makes of the items `indices` whose frames are the rows of `silhouettes`."""
        records = [self.records[int(index)] for index in indices]
        count, length = silhouettes.shape[:2]
        return {"labels": torch.from_numpy(self.labels[indices]), "one_hot": torch.from_numpy(self.one_hot[indices]),
                "key": [r["key"] for r in records], "subject": [r["subject"] for r in records],
                "combination": torch.tensor([int(r["combination"]) for r in records], dtype=torch.int64),
                "condition": [r["condition"] for r in records],
                "view": torch.tensor([int(r["view"]) for r in records], dtype=torch.int64),
                "silhouettes": silhouettes, "lengths": torch.full((count,), length, dtype=torch.int64),
                "mask": torch.ones((count, length), dtype=torch.bool)}

    def _batch_frames(self, indices: np.ndarray, positions) -> np.ndarray | None:
        """(B, T, H, W) uint8 frames of the items at their positions, read straight into one array (from the
        frame cache: one read per item, one gather); None when the items' frame counts or sizes differ."""
        if len({len(where) for where in positions}) > 1:
            return None
        if not isinstance(self._reader, FrameCache):
            frames = [self.read_frames(int(index), where) for index, where in zip(indices, positions)]
            return np.stack(frames) if len({f.shape for f in frames}) == 1 else None
        copies = [self._frame_copy(int(index)) for index in indices]
        if len({copy.frame_shape for copy in copies}) > 1:
            return None
        positions = np.asarray(positions, np.int64)
        frames = np.empty(positions.shape + copies[0].frame_shape, np.uint8)
        read_batch(copies, [self._locations[index][1] for index in indices], positions, frames)
        return frames


class PoseDataset(_ShardSequences):
    """Pose sequences: item["keypoints_2d"] float32 (T, 17, 3) COCO-17 x, y (pixels), score; with
    `keypoints_3d=True` also item["keypoints_3d"] (T, 17, 3) H36M-17. Other fields as SilhouetteDataset."""

    def __init__(self, dataset_dir, keys=None, sampling="fixed_ordered", frames=30, frames_skip=4, seed=0,
                 max_frames=720, subjects=None, keypoints_3d=False, **options):
        self.with_3d = keypoints_3d
        self.data_columns = ["keypoints_2d", "num_frames"] + (["keypoints_3d"] if keypoints_3d else [])
        super().__init__(dataset_dir, keys=keys, subjects=subjects, sampling=sampling, frames=frames,
                         frames_skip=frames_skip, seed=seed, max_frames=max_frames, **options)

    def extra_metadata_columns(self) -> list[str]:
        return ["keypoints_2d_model"] + (["keypoints_3d_model"] if self.with_3d else [])

    def check_selection(self) -> None:
        # The model column is null exactly when the pose stage did not run (shard schema); say so up front.
        for column in self.extra_metadata_columns():
            missing = [r["key"] for r in self.records if r[column] is None]
            if missing:
                raise ShardError(f"{self.dataset_dir}: {len(missing)} selected sequences have no {column[:-6]} "
                                 f"(pose stage not run), e.g. {missing[:3]}; select keys with poses")

    def __getitem__(self, index: int) -> dict:
        row = table_to_records(self._read_table(index))[0]
        key = self.records[index]["key"]
        if row["keypoints_2d"] is None:
            raise ShardError(f"{key}: no keypoints_2d in its shard row")
        positions = self._sample(index, int(row["num_frames"]))
        item = {"keypoints_2d": torch.from_numpy(np.ascontiguousarray(row["keypoints_2d"][positions],
                                                                      dtype=np.float32))}
        if self.with_3d:
            if row["keypoints_3d"] is None:
                raise ShardError(f"{key}: no keypoints_3d in its shard row")
            item["keypoints_3d"] = torch.from_numpy(np.ascontiguousarray(row["keypoints_3d"][positions],
                                                                         dtype=np.float32))
        item.update(self._item_metadata(index))
        return item


SEQUENCE_FIELDS = ("silhouettes", "keypoints_2d", "keypoints_3d")


class BatchItems(Sequence):
    """The items of a batch read at once (`SilhouetteDataset.__getitems__`), held as what `collate` makes of
    them (`fields`): `collate` returns those without building an item, and any other consumer gets item dicts,
    made on access, equal to the dataset's items (their tensors are rows of the batch's)."""

    def __init__(self, fields: dict):
        self.fields = fields

    def __len__(self) -> int:
        return len(self.fields["key"])

    def __getitem__(self, slot):
        if isinstance(slot, slice):
            return [self[i] for i in range(len(self))[slot]]
        fields = self.fields
        if not -len(self) <= slot < len(self):
            raise IndexError(slot)
        return {"labels": fields["labels"][slot], "one_hot": fields["one_hot"][slot], "key": fields["key"][slot],
                "subject": fields["subject"][slot], "combination": int(fields["combination"][slot]),
                "condition": fields["condition"][slot], "view": int(fields["view"][slot]),
                "silhouettes": fields["silhouettes"][slot]}


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """torch.stack; without a copy when the tensors are the rows, in order, of one contiguous tensor (a batch
    that `SilhouetteDataset.__getitems__` built at once): that tensor is returned."""
    base = tensors[0]._base
    if base is not None and base.is_contiguous() and base.shape[0] == len(tensors) \
            and base.shape[1:] == tensors[0].shape and base.dtype == tensors[0].dtype:
        row_bytes = base.stride(0) * base.element_size()
        if all(t._base is base and t.is_contiguous() and t.data_ptr() == base.data_ptr() + slot * row_bytes
               for slot, t in enumerate(tensors)):
            return base
    return torch.stack(tensors)


def _stack_metadata(batch: list[dict]) -> dict:
    out = {}
    for name in batch[0]:
        if name in SEQUENCE_FIELDS:
            continue
        values = [item[name] for item in batch]
        if isinstance(values[0], torch.Tensor):
            out[name] = stack(values)
        elif isinstance(values[0], int):
            out[name] = torch.tensor(values, dtype=torch.int64)
        else:
            out[name] = values
    return out


def collate(batch: list[dict]) -> dict:
    """Batch items; sequences of unequal length are zero-padded at the end.

    Sequence fields become (B, T_max, ...); `lengths` int64 (B,) gives each item's frame count and `mask`
    bool (B, T_max) its valid frames. Fixed sampling gives equal lengths, so this is a plain stack then.
    """
    if isinstance(batch, BatchItems):
        return dict(batch.fields)
    out = _stack_metadata(batch)
    present = [name for name in SEQUENCE_FIELDS if name in batch[0]]
    lengths = torch.tensor([item[present[0]].shape[0] for item in batch], dtype=torch.int64)
    longest = int(lengths.max())
    for name in present:
        if bool((lengths == longest).all()):
            out[name] = stack([item[name] for item in batch])
            continue
        padded = batch[0][name].new_zeros((len(batch), longest) + tuple(batch[0][name].shape[1:]))
        for slot, item in enumerate(batch):
            padded[slot, : item[name].shape[0]] = item[name]
        out[name] = padded
    out["lengths"] = lengths
    out["mask"] = torch.arange(longest)[None, :] < lengths[:, None]
    return out


def collate_concat(batch: list[dict]) -> dict:
    """OpenGait's test-time layout: sequences concatenated along time, (sum T, ...), plus `lengths` (seqL)."""
    out = _stack_metadata(batch)
    present = [name for name in SEQUENCE_FIELDS if name in batch[0]]
    for name in present:
        out[name] = torch.cat([item[name] for item in batch], dim=0)
    out["lengths"] = torch.tensor([item[present[0]].shape[0] for item in batch], dtype=torch.int64)
    return out


def keys_of_subjects(dataset_dir: str | Path, subjects: Iterable[str]) -> list[str]:
    """Keys of the dataset's sequences whose subject is in `subjects` (e.g. a partition's TRAIN_SET)."""
    shards = ShardDataset(dataset_dir)
    wanted = {str(s) for s in subjects}
    table = shards.table(columns=["key", "subject"])
    return sorted(k for k, s in zip(table["key"].to_pylist(), table["subject"].to_pylist()) if s in wanted)


__all__ = ["SAMPLINGS", "sample_frame_indices", "silhouettes_to_unit_range", "fixed_ordered_draws", "sample_fixed_ordered", "stack",
           "SilhouetteDataset", "PoseDataset", "BatchItems", "collate", "collate_concat",
           "keys_of_subjects"]
