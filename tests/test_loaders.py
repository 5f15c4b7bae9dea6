"""Loaders over shards: OpenGait sampling semantics, labels/one-hot, determinism, DataLoader workers."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ragar_data.attributes import default_schema
from ragar_data.errors import ShardError
from ragar_data.identity import SequenceKey
from ragar_data.loaders import (
    PoseDataset,
    SilhouetteDataset,
    collate,
    collate_concat,
    fixed_ordered_draws,
    keys_of_subjects,
    sample_fixed_ordered,
    sample_frame_indices,
    to_unit_range,
)
from ragar_data.shards import make_record, update_index, write_shard
from ragar_data.silhouettes import normalise_sequence
from ragar_data.training.data import EpochBatches
from factories import build_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader_dataset")
    return root, build_dataset(root)


# ------------------------------------------------------------------------------------------ sampling


def test_fixed_ordered_takes_sorted_window_of_frames_plus_skip():
    for seed in range(50):
        rng = np.random.default_rng(seed)
        indices = sample_frame_indices(100, "fixed_ordered", rng, frames=30, frames_skip=4)
        assert indices.shape == (30,)
        assert np.all(np.diff(indices) > 0)  # strictly ordered, no repeats in a long sequence
        assert indices[-1] - indices[0] <= 33  # inside one window of 30 + 4 positions


def test_fixed_ordered_repeats_short_sequences_first():
    # 7 frames -> repeated ceil(34 / 7) = 5 times (35 positions); a 34-position window of the repeated list
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(40):
        indices = sample_frame_indices(7, "fixed_ordered", rng, frames=30, frames_skip=4)
        assert indices.shape == (30,) and indices.min() >= 0 and indices.max() <= 6
        counts = np.bincount(indices, minlength=7)
        assert counts.max() <= 5 and counts.sum() == 30  # each frame at most once per repetition
        seen.add(tuple(indices))
    assert len(seen) > 1  # random windows


def test_fixed_unordered_and_allordered():
    rng = np.random.default_rng(0)
    long = sample_frame_indices(100, "fixed_unordered", rng, frames=30)
    assert len(set(long.tolist())) == 30  # without replacement when long enough
    assert not np.all(np.diff(long) > 0)  # not sorted (probability of sorted ~ 1/30!)
    short = sample_frame_indices(10, "fixed_unordered", rng, frames=30)
    assert short.shape == (30,) and set(short.tolist()) <= set(range(10))
    ordered = sample_frame_indices(10, "fixed_allordered", rng, frames=30)
    assert np.all(np.diff(ordered) >= 0)


def test_all_ordered_caps_at_max_frames():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(sample_frame_indices(50, "all_ordered", rng), np.arange(50))
    np.testing.assert_array_equal(sample_frame_indices(1000, "all_ordered", rng, max_frames=720), np.arange(720))


def test_sampling_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="001-c0-nm-01-000: no frames"):
        sample_frame_indices(0, "fixed_ordered", rng, name="001-c0-nm-01-000")
    with pytest.raises(ValueError, match="sampling"):
        sample_frame_indices(5, "random", rng)


# ------------------------------------------------------------------------------------------ datasets


def test_silhouette_items(dataset):
    root, records = dataset
    data = SilhouetteDataset(root)
    assert len(data) == len(records) and data.keys() == sorted(records)
    schema = default_schema()
    for index in range(len(data)):
        item = data[index]
        record = records[item["key"]]
        assert item["silhouettes"].shape == (30, 64, 44) and item["silhouettes"].dtype == torch.float32
        assert 0.0 <= float(item["silhouettes"].min()) and float(item["silhouettes"].max()) == 1.0
        assert item["labels"].dtype == torch.int64
        np.testing.assert_array_equal(item["labels"].numpy(), record["labels"])
        np.testing.assert_array_equal(item["one_hot"].numpy(), schema.to_one_hot(record["labels"]))
        assert item["one_hot"].shape == (45,) and float(item["one_hot"].sum()) == 15
        key = SequenceKey.parse(item["key"])
        assert (item["subject"], item["combination"], item["condition"], item["view"]) == (
            key.subject, key.combination, key.condition, key.view)


def test_silhouettes_are_the_stored_frames_cut_and_scaled(dataset):
    root, records = dataset
    data = SilhouetteDataset(root, sampling="all_ordered")
    for index in range(len(data)):
        item = data[index]
        stored = records[item["key"]]["silhouettes"]
        expected = stored[:, :, 10:54].astype(np.float64) / 255.0  # OpenGait's cut and division
        np.testing.assert_array_equal(item["silhouettes"].numpy(), expected.astype(np.float32))
    uncut = SilhouetteDataset(root, sampling="all_ordered", cut=False)[0]
    assert uncut["silhouettes"].shape[1:] == (64, 64)
    levels = np.arange(256, dtype=np.uint8)  # every grey level the cubic resize can leave
    np.testing.assert_array_equal(to_unit_range(levels).numpy(), (levels / 255.0).astype(np.float32))


def test_items_are_deterministic_per_seed_epoch_index(dataset):
    root, _ = dataset
    first = SilhouetteDataset(root, seed=5)
    second = SilhouetteDataset(root, seed=5)
    assert torch.equal(first[3]["silhouettes"], second[3]["silhouettes"])
    second.set_epoch(1)
    assert not torch.equal(first[3]["silhouettes"], second[3]["silhouettes"])
    other_seed = SilhouetteDataset(root, seed=6)
    assert not torch.equal(first[3]["silhouettes"], other_seed[3]["silhouettes"])


def test_selection_by_keys_and_subjects(dataset):
    root, records = dataset
    keys = sorted(records)[:4]
    assert SilhouetteDataset(root, keys=keys).keys() == keys
    by_subject = SilhouetteDataset(root, subjects=["002"])
    assert len(by_subject) == 8 and all(k.startswith("002-") for k in by_subject.keys())
    assert keys_of_subjects(root, ["001", "003"]) == sorted(k for k in records if k[:3] in ("001", "003"))
    with pytest.raises(KeyError, match="not in the dataset"):
        SilhouetteDataset(root, keys=["999-c0-nm-01-000"])


def test_dataloader_with_two_workers_matches_single_process(dataset):
    root, _ = dataset
    data = SilhouetteDataset(root, seed=1)
    loader = DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert sum(b["silhouettes"].shape[0] for b in batches) == len(data)
    assert batches[0]["silhouettes"].shape == (4, 30, 64, 44)
    assert batches[0]["labels"].shape == (4, 15) and batches[0]["one_hot"].shape == (4, 45)
    in_process = torch.stack([data[i]["silhouettes"] for i in range(4)])
    assert torch.equal(batches[0]["silhouettes"], in_process)
    assert batches[0]["key"] == data.keys()[:4]


def test_collate_variable_lengths(dataset):
    root, records = dataset
    data = SilhouetteDataset(root, sampling="all_ordered")
    items = [data[i] for i in range(3)]
    lengths = [item["silhouettes"].shape[0] for item in items]
    assert len(set(lengths)) > 1  # the fixture mixes lengths
    padded = collate(items)
    assert padded["silhouettes"].shape == (3, max(lengths), 64, 44)
    assert padded["lengths"].tolist() == lengths
    assert padded["mask"].sum(1).tolist() == lengths
    assert float(padded["silhouettes"][int(np.argmin(lengths)), -1].abs().sum()) == 0.0
    concatenated = collate_concat(items)
    assert concatenated["silhouettes"].shape == (sum(lengths), 64, 44)
    assert torch.equal(concatenated["silhouettes"][: lengths[0]], items[0]["silhouettes"])
    assert concatenated["view"].dtype == torch.int64


def test_pose_dataset(dataset):
    root, records = dataset
    data = PoseDataset(root, sampling="all_ordered", keypoints_3d=True)
    item = data[2]
    stored = records[item["key"]]["keypoints_2d"]
    np.testing.assert_array_equal(item["keypoints_2d"].numpy(), stored)
    np.testing.assert_array_equal(item["keypoints_3d"].numpy(), records[item["key"]]["keypoints_3d"])
    fixed = PoseDataset(root, frames=20)[0]
    assert fixed["keypoints_2d"].shape == (20, 17, 3) and "keypoints_3d" not in fixed


def test_pose_dataset_without_poses_says_so(tmp_path):
    build_dataset(tmp_path, subjects=("001",), with_pose=False)
    with pytest.raises(ShardError, match="no keypoints_2d"):
        PoseDataset(tmp_path)


def _spy_row_group_reads(monkeypatch) -> list:
    import pyarrow.parquet as pq

    calls = []
    original = pq.ParquetFile.read_row_group

    def spy(self, group, *args, **kwargs):
        calls.append(group)
        return original(self, group, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    return calls


def test_reads_only_the_needed_row_group(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    # one shard of 24 rows in several row groups (schemas/shard.yaml row_group_rows)
    from ragar_data.shards import ShardDataset, shard_spec

    records = build_dataset(tmp_path, lengths=(6,), rows_per_shard=24)
    data = SilhouetteDataset(tmp_path, sampling="all_ordered", row_cache=False)
    assert len(records) == 24
    calls = _spy_row_group_reads(monkeypatch)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("whole-shard read per item"))
    first, last = data[0], data[23]
    located = ShardDataset(tmp_path)
    rows_per_group = shard_spec().row_group_rows
    assert rows_per_group < 24
    assert calls == [located.locate(item["key"])[1] // rows_per_group for item in (first, last)]
    np.testing.assert_array_equal(last["silhouettes"].numpy() * 255, records[last["key"]]["silhouettes"][:, :, 10:54])


def test_row_cache_gives_the_same_items_and_is_built_once(tmp_path, monkeypatch):
    root, cache = tmp_path / "data", tmp_path / "cache"
    build_dataset(root, rows_per_shard=5)
    direct = SilhouetteDataset(root, seed=3, row_cache=False)
    calls = _spy_row_group_reads(monkeypatch)
    SilhouetteDataset(root, seed=3, cache_dir=cache, frame_cache=False)  # builds the copies
    assert len(calls) == len(direct)  # the first dataset copies every row once (5 shards, one row per group)
    copies = sorted(cache.glob("*.arrow"))
    assert len(copies) == 5
    expected = [direct[index]["silhouettes"] for index in range(len(direct))]
    calls.clear()
    again = SilhouetteDataset(root, seed=3, cache_dir=cache, frame_cache=False)
    for index, silhouettes in enumerate(expected):
        assert torch.equal(again[index]["silhouettes"], silhouettes)
    assert calls == []  # items come from the memory-mapped copies, not the shards
    poses = PoseDataset(root, sampling="all_ordered", keypoints_3d=True, cache_dir=cache)
    plain = PoseDataset(root, sampling="all_ordered", keypoints_3d=True, row_cache=False)
    assert torch.equal(poses[4]["keypoints_3d"], plain[4]["keypoints_3d"])
    assert len(list(cache.glob("*.arrow"))) == 10  # other columns, other copies


def test_row_cache_follows_the_shard_digest_and_rebuilds_broken_copies(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    build_dataset(root, rows_per_shard=30, seed=0)
    first = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache, frame_cache=False)
    (copy,) = cache.glob("*.arrow")
    copy.write_bytes(copy.read_bytes()[:1000])  # a truncated copy is rebuilt, not read
    rebuilt = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache, frame_cache=False)
    assert torch.equal(rebuilt[2]["silhouettes"], first[2]["silhouettes"])
    assert copy.stat().st_size > 1000
    records = build_dataset(root, rows_per_shard=30, seed=1)  # re-extracted: new content, new digest
    changed = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache, frame_cache=False)
    key = changed.keys()[2]
    np.testing.assert_array_equal(changed[2]["silhouettes"].numpy() * 255,
                                  records[key]["silhouettes"][:, :, 10:54])
    assert len(list(cache.glob("*.arrow"))) == 2


def test_128_option_and_empty_sequences(tmp_path):
    rng = np.random.default_rng(2)
    masks = (rng.random((12, 90, 120)) > 0.5).astype(np.uint8) * 255
    frames_128, kept = normalise_sequence(masks, size=128)
    common = dict(image_width=120, image_height=90, labels=np.full(15, -1, np.int8),
                  frame_index=np.arange(12, dtype=np.int32), boxes=np.zeros((12, 4), np.float32))
    records = [
        make_record(SequenceKey("001", 0, "nm-01", 0), silhouettes=frames_128,
                    silhouette_frame_index=kept.astype(np.int32), **common),
        make_record(SequenceKey("001", 0, "nm-02", 0), silhouettes=np.zeros((0, 128, 128), np.uint8),
                    silhouette_frame_index=np.zeros(0, np.int32), **common),
    ]
    update_index(tmp_path, [write_shard(tmp_path, "p", records)])
    with pytest.warns(UserWarning, match="left out 1 sequences with no silhouettes"):
        data = SilhouetteDataset(tmp_path, frames=8)
    assert data.keys() == ["001-c0-nm-01-000"] and data.skipped_empty == ["001-c0-nm-02-000"]
    item = data[0]
    assert item["silhouettes"].shape == (8, 128, 88)  # cut int(128 // 64) * 10 = 20 columns each side
    assert float(item["one_hot"].sum()) == 0.0 and item["labels"].tolist() == [-1] * 15  # not annotated


def test_failed_quality_sequences_are_left_out_unless_asked(tmp_path):
    records = build_dataset(tmp_path, subjects=("001",), conditions=("nm-01",), views=(0, 36))
    failing = dict(records["001-c1-nm-01-036"], quality_ok=False, quality_reasons=["too few frames"])
    for name in ("silhouette_encoding", "num_silhouettes", "silhouette_height", "silhouette_width"):
        failing[name] = None  # derived again by the writer from the frames
    rows = [failing if key == "001-c1-nm-01-036" else record for key, record in records.items()]
    for path in (tmp_path / "shards").glob("*.parquet"):
        path.unlink()
    update_index(tmp_path, [write_shard(tmp_path, "all", rows)])
    with pytest.warns(UserWarning, match="left out 1 sequences failing the quality filter"):
        data = SilhouetteDataset(tmp_path)
    assert data.skipped_failed == ["001-c1-nm-01-036"] and "001-c1-nm-01-036" not in data.keys()
    assert len(SilhouetteDataset(tmp_path, include_failed=True)) == len(records)
    assert "001-c1-nm-01-036" in SilhouetteDataset(tmp_path, keys=sorted(records)).keys()  # explicit keys as given


# ------------------------------------------------------------------------------------------ frame cache, batches


def test_vectorised_fixed_ordered_follows_the_scalar_rule():
    # the rule of sample_frame_indices: repeat to frames + skip positions, a window start, a subset in order
    rng = np.random.default_rng(0)
    counts = np.array([1, 7, 33, 34, 35, 90, 200] * 20)
    draws = rng.random((counts.size, 35))
    batch = sample_fixed_ordered(counts, draws, frames=30, frames_skip=4)
    assert batch.shape == (counts.size, 30)
    for count, row, chosen in zip(counts, draws, batch):
        positions = np.tile(np.arange(count), -(-34 // count) if count < 34 else 1)
        start = int(row[0] * (positions.size - 34 + 1))
        offsets = np.sort(np.argsort(row[1:])[:30])
        np.testing.assert_array_equal(chosen, positions[start + offsets])
    starts = sample_fixed_ordered(np.full(4000, 90), rng.random((4000, 35)))[:, 0]
    assert starts.min() == 0 and starts.max() >= 56  # every window start (0..56) is reachable
    draws_again = fixed_ordered_draws(5, 2, 10)
    np.testing.assert_array_equal(draws_again, fixed_ordered_draws(5, 2, 10))
    assert not np.array_equal(draws_again, fixed_ordered_draws(5, 3, 10))


def test_frame_cache_batches_equal_the_shards_and_it_is_built_once(tmp_path, monkeypatch):
    root, cache = tmp_path / "data", tmp_path / "cache"
    build_dataset(root, rows_per_shard=5)
    direct = SilhouetteDataset(root, seed=3, row_cache=False)
    calls = _spy_row_group_reads(monkeypatch)
    SilhouetteDataset(root, seed=3, cache_dir=cache)  # builds the copies
    assert len(calls) == len(direct) and len(list(cache.glob("*.frames.npy"))) == 5
    calls.clear()
    cached = SilhouetteDataset(root, seed=3, cache_dir=cache)
    cached.set_epoch(1), direct.set_epoch(1)
    batches = EpochBatches(len(cached), 4, seed=3, epoch=1)  # as the trainer reads them
    expected = [collate([direct[i] for i in indices]) for indices in batches]  # item by item, from the shards
    calls.clear()
    read = list(DataLoader(cached, batch_sampler=batches, collate_fn=collate))
    assert calls == [] and len(read) == len(expected) == len(cached) // 4  # frames came from the copies
    for batch, reference in zip(read, expected):
        assert torch.equal(batch["silhouettes"], reference["silhouettes"])
        assert torch.equal(batch["one_hot"], reference["one_hot"]) and batch["key"] == reference["key"]
    everything = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache)
    for index in (0, 1, 2):  # whole sequences of different lengths (7, 25, 40 frames)
        assert torch.equal(everything[index]["silhouettes"],
                           SilhouetteDataset(root, sampling="all_ordered", row_cache=False)[index]["silhouettes"])


def test_frame_cache_follows_the_shard_digest_and_rebuilds_broken_copies(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    build_dataset(root, rows_per_shard=30, seed=0)
    first = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache)
    (frames,), (offsets,) = cache.glob("*.frames.npy"), cache.glob("*.offsets.npy")
    frames.write_bytes(frames.read_bytes()[:5000])  # a truncated copy is rebuilt, not read
    rebuilt = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache)
    assert torch.equal(rebuilt[2]["silhouettes"], first[2]["silhouettes"]) and frames.stat().st_size > 5000
    offsets.unlink()  # a copy without its row index (a build killed in between) is rebuilt too
    assert torch.equal(SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache)[5]["silhouettes"],
                       first[5]["silhouettes"])
    records = build_dataset(root, rows_per_shard=30, seed=1)  # re-extracted: new content, new digest
    changed = SilhouetteDataset(root, sampling="all_ordered", cache_dir=cache)
    np.testing.assert_array_equal(changed[2]["silhouettes"].numpy() * 255,
                                  records[changed.keys()[2]]["silhouettes"][:, :, 10:54])
    assert len(list(cache.glob("*.frames.npy"))) == 2
    assert not list(cache.glob(".*tmp*"))  # temporaries renamed or removed


def test_batches_are_the_same_whatever_the_worker_count_and_collate_does_not_copy(dataset):
    root, _ = dataset
    data = SilhouetteDataset(root, seed=4)
    items = data.__getitems__([5, 2, 9])
    batch = collate(items)
    assert batch["silhouettes"].data_ptr() == items[0]["silhouettes"].data_ptr()  # rows of one tensor
    assert torch.equal(batch["silhouettes"], torch.stack([data[i]["silhouettes"] for i in (5, 2, 9)]))
    assert torch.equal(batch["labels"], torch.stack([data[i]["labels"] for i in (5, 2, 9)]))
    # collate takes the batch as read; item by item (any other consumer's way) it is the same batch
    by_item = collate([items[0], items[1], items[2]])
    assert list(batch) == list(by_item)
    for name, value in by_item.items():
        assert torch.equal(batch[name], value) if isinstance(value, torch.Tensor) else batch[name] == value, name
    assert items[1]["key"] == data[2]["key"] and items[1]["view"] == data[2]["view"] and len(items[:2]) == 2
    batches = EpochBatches(len(data), 3, seed=4, epoch=0)
    single = list(DataLoader(data, batch_sampler=batches, collate_fn=collate))
    double = list(DataLoader(data, batch_sampler=batches, collate_fn=collate, num_workers=2))
    assert all(torch.equal(a["silhouettes"], b["silhouettes"]) for a, b in zip(single, double))
    assert len(single) == len(double) == len(data) // 3


def test_the_trainer_reads_uint8_batches_from_the_frame_cache(tmp_path, monkeypatch):
    from ragar_data.frame_cache import FrameCache
    from ragar_data.training.config import load_config
    from ragar_data.training.data import silhouette_dataset
    from ragar_data.training.trainer import _to_device

    root = tmp_path / "data"
    build_dataset(root)
    config = load_config("smoke", ["data.frames=6"])
    keys = SilhouetteDataset(root).keys()
    training = silhouette_dataset(root, keys, config, train=True, seed=7)
    assert isinstance(training._reader, FrameCache)  # the default
    indices = next(iter(EpochBatches(len(training), 4, seed=7, epoch=0)))
    sent = collate(training.__getitems__(indices))
    assert sent["silhouettes"].dtype == torch.uint8  # a quarter of the bytes through DataLoader workers
    received = _to_device(sent, torch.device("cpu"))
    from_shards = SilhouetteDataset(root, keys=keys, frames=6, seed=7, row_cache=False)
    assert torch.equal(received["silhouettes"], torch.stack([from_shards[i]["silhouettes"] for i in indices]))


@pytest.mark.slow
def test_training_builds_each_batch_in_one_call(tmp_path, monkeypatch):
    from ragar_data.training.config import load_config
    from ragar_data.training.stages import train_classification

    root = tmp_path / "data"
    build_dataset(root)
    config = load_config("smoke", [f"train.output_dir={tmp_path / 'run'}", f"data.dataset={root}", "data.frames=6",
                                   "model.channels=[4,8,8,16]", "text.dim=16", "train.classification_iterations=2"])
    batch_calls = []
    original = SilhouetteDataset.__getitems__
    monkeypatch.setattr(SilhouetteDataset, "__getitems__", lambda self, i: batch_calls.append(i) or original(self, i))
    result = train_classification(config, progress=False)  # the command's path: dataset from the partition
    assert len(batch_calls) == 2 and all(np.isfinite(list(result.losses.values())))


def test_reader_threads_give_the_batches_of_a_dataloader_and_stop_with_the_consumer(dataset):
    import threading

    from ragar_data.training.data import ReaderThreads, batch_loader

    root, _ = dataset
    data = SilhouetteDataset(root, seed=5, unit_range=False)
    data.set_epoch(2)
    batches = EpochBatches(len(data), 3, seed=5, epoch=2)
    threads = batch_loader(data, batches, 2, collate)
    assert isinstance(threads, ReaderThreads) and len(threads) == len(batches)  # no worker processes
    single = list(DataLoader(data, batch_sampler=batches, collate_fn=collate))
    for _ in range(2):  # a second pass reads the same batches
        read = list(threads)
        assert len(read) == len(single) == len(data) // 3
        for batch, reference in zip(read, single):
            assert torch.equal(batch["silhouettes"], reference["silhouettes"]) and batch["key"] == reference["key"]
            assert batch["silhouettes"].dtype == torch.uint8
    for batch in threads:  # the consumer stops early: the reader threads end with the iteration
        break
    del batch
    assert not [t for t in threading.enumerate() if t.name.startswith("ragar-reader")]
    rows = SilhouetteDataset(root, seed=5, frame_cache=False)  # the row cache decompresses: worker processes
    assert isinstance(batch_loader(rows, batches, 2, collate), DataLoader)


def test_reader_threads_pass_on_a_read_error(tmp_path):
    from ragar_data.training.data import batch_loader

    root = tmp_path / "data"
    build_dataset(root, rows_per_shard=30)
    data = SilhouetteDataset(root, seed=5, cache_dir=tmp_path / "cache")
    data[0]  # the copy is open
    (frames,) = (tmp_path / "cache").glob("*.frames.npy")
    os.truncate(frames, 1000)  # and its file cut short under the reader
    with pytest.raises(ShardError, match="shorter than its index"):
        list(batch_loader(data, EpochBatches(len(data), 3, seed=5, epoch=0), 2, collate))


def test_training_with_reader_threads_trains_as_in_one_process(tmp_path, monkeypatch):
    from ragar_data.training import trainer
    from ragar_data.training.config import load_config
    from ragar_data.training.data import ReaderThreads
    from ragar_data.training.stages import train_classification

    root = tmp_path / "data"
    build_dataset(root)
    loaders = []
    real = trainer.batch_loader
    monkeypatch.setattr(trainer, "batch_loader", lambda *a, **k: loaders.append(real(*a, **k)) or loaders[-1])
    losses = {}
    for workers in (0, 2):
        config = load_config("smoke", [f"train.output_dir={tmp_path / f'run{workers}'}", f"data.dataset={root}",
                                       "data.frames=6", "model.channels=[4,8,8,16]", "text.dim=16",
                                       "train.classification_iterations=3", f"data.num_workers={workers}"])
        losses[workers] = train_classification(config, progress=False).losses
    assert isinstance(loaders[-1], ReaderThreads) and not isinstance(loaders[0], ReaderThreads)
    assert losses[0] == losses[2] and len(losses[0]) == 3  # the same sampled frames, the same steps


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_reader_threads_pin_batches_when_asked(dataset):
    from ragar_data.training.data import batch_loader

    root, _ = dataset
    data = SilhouetteDataset(root, seed=5, unit_range=False)
    batches = EpochBatches(len(data), 3, seed=5, epoch=0)
    pinned = next(iter(batch_loader(data, batches, 2, collate, pin_memory=True)))
    plain = next(iter(batch_loader(data, batches, 2, collate)))
    assert pinned["silhouettes"].is_pinned() and not plain["silhouettes"].is_pinned()
    assert torch.equal(pinned["silhouettes"], plain["silhouettes"])
