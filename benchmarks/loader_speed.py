"""Loader speed and size: our shards vs an OpenGait pickle tree, side by side in one run.

    python benchmarks/loader_speed.py [--sequences 320] [--frames 90] [--batches 60] [--workers 0 2]
                                      [--large-shards 40] [--rounds 3] [--readers frame-cache row-cache]
                                      [--json FILE]

Builds its own data: walking-figure masks (benchmarks/walker_masks.py, 320x180) normalised with
ragar_data.silhouettes, written once as shards and once as an OpenGait tree (export_opengait). Training
batches are 32 sequences x 30 frames x 64 x 44 (fixed_ordered sampling, 30 + 4 skip), sequences in random
order. The OpenGait side reads the way OpenGait's DataSet + CollateFn + BaseSilCuttingTransform do: list the
view folder, pickle.load every pkl, sample in Python, cut 10 columns each side, divide by 255.

Our loader is measured with its readers: the frame cache (the default: uncompressed frames, only the sampled
span read), the Arrow row cache (`frame_cache=False`: memory-mapped zstd copies of whole rows) and, with
`--readers row-groups`, direct Parquet row-group reads (`row_cache=False`, 8 shards open per process); on the
small set and on a large one (`--large-shards` shards of 256 sequences, the extractor's shard size, made of
copies of the small set's sequences). Batches come from a batch sampler through the trainer's loader
(`ragar_data.training.data.batch_loader`), so the dataset builds each batch in one call. There `workers=N`
means N parallel readers: threads of the training process for the frame cache (its reads run outside the GIL,
and a batch then crosses no process boundary), DataLoader worker processes for the row cache and the pickles.
The pickle tree's per-item cost does not depend on the number of sequences; it is measured on the small set.

Each round measures every reader once, warm (the reader's files read whole just before) and then cold
(before each measurement the reader's files are dropped from the page cache with posix_fadvise DONTNEED; the
host may still cache the disk). Rates are wall-clock; CPU milliseconds per batch (this process, its reader
threads included, and the DataLoader workers) are the steadier figure on a shared machine. A ratio is taken
within one round; the table gives each reader's best rate and its ratio to the pickles in every round.
`--json FILE` also writes every round's figures and the bytes per sequence (benchmarks/performance.py reads it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import BatchSampler, Dataset, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from walker_masks import walker_masks  # noqa: E402

from ragar_data.identity import CONDITIONS, VIEWS, SequenceKey  # noqa: E402
from ragar_data.loaders import SilhouetteDataset, collate, silhouettes_to_unit_range  # noqa: E402
from ragar_data.opengait import export_opengait  # noqa: E402
from ragar_data.shards import ShardDataset, make_record, update_index, write_shard  # noqa: E402
from ragar_data.training.data import batch_loader  # noqa: E402
from ragar_data.silhouettes import normalise_sequence  # noqa: E402

BATCH, FRAMES, SKIP = 32, 30, 4


def build(root: Path, sequences: int, frames: int) -> None:
    rng = np.random.default_rng(0)
    records = []
    for number in range(sequences):
        within = number % 240  # a subject's 3 combinations x 8 walks x 10 views
        key = SequenceKey(f"{number // 240 + 1:03d}", within // 80, CONDITIONS[within % 8], VIEWS[(within // 8) % 10])
        count = int(rng.integers(frames * 2 // 3, frames * 4 // 3))
        masks = walker_masks(count, 180, 320, rng)
        silhouettes, kept = normalise_sequence(masks)
        records.append(make_record(key, image_width=320, image_height=180,
                                   labels=rng.integers(0, 2, 15).astype(np.int8),
                                   frame_index=np.arange(count, dtype=np.int32),
                                   boxes=np.zeros((count, 4), np.float32), silhouettes=silhouettes,
                                   silhouette_frame_index=kept.astype(np.int32)))
    infos = [write_shard(root / "shards_dataset", f"part-{i // 100:03d}", records[i:i + 100])
             for i in range(0, len(records), 100)]
    update_index(root / "shards_dataset", infos)
    export_opengait(root / "shards_dataset", root / "opengait_tree", progress=False)


class PickleTree(Dataset):
    """What OpenGait's DataSet does per item: list the sequence folder, pickle.load each pkl."""

    def __init__(self, root: Path):
        self.folders = sorted(p for p in root.glob("*/*/*") if p.is_dir())

    def __len__(self):
        return len(self.folders)

    def __getitem__(self, index):
        data = []
        for name in sorted(os.listdir(self.folders[index])):
            with open(self.folders[index] / name, "rb") as handle:
                data.append(pickle.load(handle))
        return data, index


def opengait_collate(batch):
    """CollateFn fixed_ordered sampling (Python random, as upstream) + BaseSilCuttingTransform."""
    sequences = []
    for data, _ in batch:
        frames = data[0]
        seq_len, indices = len(frames), list(range(len(frames)))
        window = FRAMES + SKIP
        if seq_len < window:
            repeat = math.ceil(window / seq_len)
            seq_len, indices = seq_len * repeat, indices * repeat
        start = random.choice(list(range(0, seq_len - window + 1)))
        chosen = sorted(np.random.choice(list(range(seq_len))[start:start + window], FRAMES, replace=False))
        sequences.append(np.asarray([frames[indices[i]] for i in chosen]))
    stacked = np.asarray(sequences)[..., 10:-10] / 255.0
    return torch.from_numpy(stacked).float()


def delivered(batch) -> torch.Tensor:
    """What the training step receives: float32 (32, 30, 64, 44) in [0, 1]. Our loader sends uint8 frames and
    the trainer converts them (`silhouettes_to_unit_range`, on the CPU here): the conversion is timed."""
    return silhouettes_to_unit_range(batch)["silhouettes"] if isinstance(batch, dict) else batch


def cpu_seconds(iterator) -> float:
    """CPU time used so far by this process and the iterator's DataLoader workers (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    workers = 0.0
    for worker in getattr(iterator, "_workers", []):
        fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        workers += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return time.process_time() + workers


def measure(loader, batches: int) -> tuple[float, float]:
    """(batches per second of wall time, CPU milliseconds per batch over all processes): on a shared machine
    the CPU time per batch is the steadier figure."""
    iterator = iter(loader)
    next(iterator)  # worker start-up and first file opens are not steady state
    start, cpu_start = time.perf_counter(), cpu_seconds(iterator)
    received = []
    for _ in range(batches):
        silhouettes = delivered(next(iterator))
        received.append((tuple(silhouettes.shape), silhouettes.dtype))
        # a training step is done with its batch before the next one is read (holding it too would make every
        # batch's float32 tensor land on freshly mapped pages: page faults costing about as much as the reads)
        del silhouettes
    elapsed, cpu = time.perf_counter() - start, cpu_seconds(iterator) - cpu_start
    assert set(received) == {((BATCH, FRAMES, 64, 44), torch.float32)}, set(received)
    return batches / elapsed, cpu / batches * 1e3


def print_table(title: str, values: dict, baseline, workers: list[int], higher_is_better: bool) -> None:
    """One row per loader: its best value, then its ratio to the pickles' in each round (> 1: ours better)."""
    print(f"\n{title:<60}" + "".join(f"{f'workers={w}':>11}{'vs pickles by round':>22}" for w in workers))
    best = max if higher_is_better else min
    for (name, size), rounds in values.items():
        ratios = [[(r[w] / b[w]) if higher_is_better else (b[w] / r[w]) for r, b in zip(rounds, values[baseline])]
                  for w in workers]
        cells = "".join(f"{best(r[w] for r in rounds):>11.1f}{' '.join(f'{x:.2f}' for x in ratio):>22}"
                        for w, ratio in zip(workers, ratios))
        print(f"{name:<36}{size:<24}{cells}")


def silhouettes(root: Path, options: dict) -> SilhouetteDataset:
    # as the trainer's dataset (ragar_data.training.data.silhouette_dataset): uint8 frames, converted by the trainer
    return SilhouetteDataset(root, sampling="fixed_ordered", frames=FRAMES, frames_skip=SKIP, progress=False,
                             unit_range=False, **options)


def loader(dataset, collate_fn, workers: int, batches: int):
    """The trainer's loader (`batch_loader`: reader threads for the frame cache, DataLoader worker processes for
    the others) over random sequences with replacement, as many as the timed batches need, in batches as the
    trainer's EpochBatches gives them."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=BATCH * (batches + 1),
                            generator=torch.Generator().manual_seed(0))
    return batch_loader(dataset, BatchSampler(sampler, BATCH, drop_last=True), workers, collate_fn)


def drop_from_page_cache(files: list[Path]) -> None:
    """Evict the files' pages (written back first: dirty pages cannot be dropped)."""
    for path in files:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def load_into_page_cache(files: list[Path]) -> None:
    """Read the files whole, so that a warm measurement finds all of them in the page cache."""
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.read(1 << 22):
                pass


def files_read(dataset) -> list[Path]:
    """The files a dataset reads per item: the pickles, the frame or row cache copies, or the shards."""
    if isinstance(dataset, PickleTree):
        return [p for folder in dataset.folders for p in folder.iterdir()]
    reader = dataset._reader
    if hasattr(reader, "cache_dir"):
        return sorted(p for p in reader.cache_dir.iterdir() if p.is_file())
    return sorted({path for path, _ in dataset._locations})


def build_large(small: Path, large: Path, shards: int) -> None:
    """`shards` shards of 256 rows (the extractor's shard size), rows copied from the small set, new keys."""
    source = ShardDataset(small)
    records = [source.read_record(key) for key in source.keys()]
    infos = []
    for shard in range(shards):
        rows = []
        for number in range(shard * 256, (shard + 1) * 256):
            within = number % 240
            key = SequenceKey(f"{number // 240 + 1:03d}", within // 80, CONDITIONS[within % 8],
                              VIEWS[(within // 8) % 10])
            rows.append(dict(records[number % len(records)], key=str(key), subject=key.subject,
                             combination=key.combination, condition=key.condition, view=key.view))
        infos.append(write_shard(large, f"part-{shard:05d}", rows))
    update_index(large, infos)


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(sum of file sizes, bytes allocated on disk) of the files under folder."""
    sizes = [(p.stat().st_size, p.stat().st_blocks * 512) for p in folder.rglob("*") if p.is_file()]
    return sum(s for s, _ in sizes), sum(b for _, b in sizes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=320)
    parser.add_argument("--frames", type=int, default=90, help="mean frames per sequence")
    parser.add_argument("--batches", type=int, default=60,
                        help="timed batches per measurement (fewer: a few ms of work, noisy ratios)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the loaders this many times; each ratio is taken within a round and the "
                             "best rate is shown (the machine may be shared: the best round is the least disturbed)")
    parser.add_argument("--readers", nargs="+", default=["frame-cache", "row-cache"],
                        choices=["frame-cache", "row-cache", "row-groups"])
    parser.add_argument("--keep", help="build the data in this folder and keep it")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--large-shards", type=int, default=40,
                        help="shards of 256 sequences in the large set (0: no large set)")
    parser.add_argument("--row-group-rows", type=int,
                        help="write shards with this many sequences per Parquet row group instead of the value in "
                             "schemas/shard.yaml (to measure its effect on random access)")
    args = parser.parse_args()
    if args.row_group_rows:
        import dataclasses

        from ragar_data import shards

        spec = dataclasses.replace(shards.shard_spec(), row_group_rows=args.row_group_rows)
        shards.shard_spec = lambda: spec
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    root = Path(args.keep or tempfile.mkdtemp(prefix="ragar_loader_bench_"))
    try:
        start = time.perf_counter()
        if not (root / "shards_dataset" / "index.json").is_file():
            build(root, args.sequences, args.frames)
        first_shard = pq.ParquetFile(next((root / "shards_dataset" / "shards").glob("*.parquet")))
        row_group_rows = first_shard.metadata
        # cubic resizing leaves grey edge pixels, so normalised frames are stored as 'uint8', not bit-packed
        encodings = set(first_shard.read(columns=["silhouette_encoding"])["silhouette_encoding"].to_pylist())
        print(f"data: {args.sequences} sequences, ~{args.frames} frames each, built in "
              f"{time.perf_counter() - start:.0f} s under {root}; shard row groups of "
              f"{row_group_rows.row_group(0).num_rows} sequences, silhouette encoding {sorted(encodings)}")
        shard_bytes, shard_disk = folder_bytes(root / "shards_dataset")
        tree_bytes, tree_disk = folder_bytes(root / "opengait_tree")
        print(f"{'bytes per sequence':>28} {'file sizes':>12} {'on disk':>10}")
        print(f"{'shards (Parquet, zstd)':>28} {shard_bytes / args.sequences:>12.0f} {shard_disk / args.sequences:>10.0f}")
        print(f"{'OpenGait pickle tree':>28} {tree_bytes / args.sequences:>12.0f} {tree_disk / args.sequences:>10.0f}")
        print(f"{'ratio tree / shards':>28} {tree_bytes / shard_bytes:>12.1f} {tree_disk / shard_disk:>10.1f}")

        large = root / "large_dataset"
        if args.large_shards and not (large / "index.json").is_file():
            build_large(root / "shards_dataset", large, args.large_shards)
        readers = {"frame-cache": ("shards, frame cache", dict(cache_dir=root / "frame_cache")),
                   "row-cache": ("shards, row cache", dict(cache_dir=root / "row_cache", frame_cache=False)),
                   "row-groups": ("shards, row groups", dict(row_cache=False))}
        datasets = {("pickles", f"{args.sequences} seq"): (PickleTree(root / "opengait_tree"), opengait_collate)}
        for reader in args.readers:
            name, options = readers[reader]
            datasets[name, f"{args.sequences} seq"] = (silhouettes(root / "shards_dataset", options), collate)
            if args.large_shards:
                datasets[name, f"{args.large_shards * 256} seq in {args.large_shards} shards"] = (
                    silhouettes(large, options), collate)
        if "frame-cache" in args.readers:
            frame_copies, _ = folder_bytes(root / "frame_cache")
            sequences = args.sequences + args.large_shards * 256
            print(f"{'frame cache (local copy)':>28} {frame_copies / sequences:>12.0f}")

        rates = {cache: {name: [] for name in datasets} for cache in ("warm", "cold")}
        cpu = {cache: {name: [] for name in datasets} for cache in ("warm", "cold")}
        for _ in range(args.rounds):  # alternate the loaders: each ratio is taken within one round
            for cache in ("warm", "cold"):
                for name, (dataset, collate_fn) in datasets.items():
                    rate_row, cpu_row = {}, {}
                    for workers in args.workers:
                        if cache == "cold":
                            if hasattr(dataset, "_reader"):
                                dataset._reader.close()  # open maps keep their pages in the page cache
                            drop_from_page_cache(files_read(dataset))
                        else:
                            load_into_page_cache(files_read(dataset))
                        rate_row[workers], cpu_row[workers] = measure(
                            loader(dataset, collate_fn, workers, args.batches), args.batches)
                    rates[cache][name].append(rate_row)
                    cpu[cache][name].append(cpu_row)
        baseline = next(iter(datasets))
        for cache in ("warm", "cold"):
            print_table(f"batches/s (32 x 30 x 64 x 44), {cache} page cache", rates[cache], baseline, args.workers,
                        higher_is_better=True)
            print_table(f"CPU ms per batch, all processes, {cache} page cache", cpu[cache], baseline, args.workers,
                        higher_is_better=False)
        if args.json:
            def by_name(table):
                return {f"{name} | {size}": rounds for (name, size), rounds in table.items()}

            args.json.write_text(json.dumps({
                "baseline": " | ".join(baseline), "workers": args.workers,
                "bytes_per_sequence": {"shards": shard_bytes / args.sequences, "pickles": tree_bytes / args.sequences,
                                       "shards_on_disk": shard_disk / args.sequences,
                                       "pickles_on_disk": tree_disk / args.sequences},
                "batches_per_s": {cache: by_name(rates[cache]) for cache in rates},
                "cpu_ms_per_batch": {cache: by_name(cpu[cache]) for cache in cpu}}, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
