"""Random access to single rows of shards, for training loaders.

Parquet is the storage and exchange format, but it is not made for reading one row at a time out of hundreds
of files: opening a shard parses its footer (about 2 KB and 50 us per row group, 26 KB of memory each once
parsed), so a loader that draws random sequences from a dataset of many shards spends most of its time
re-opening shards, or holds gigabytes of footers per worker. Two readers:

- `ArrowRowCache` (the loaders' default): on first use, each shard's needed columns are copied once into an
  Arrow IPC file with one record batch per sequence (zstd buffers, about the size of the shard's own column),
  memory-mapped afterwards. Opening one costs ~0.1 ms and a row is one batch. The copy is named after the
  shard's sha256 and the columns, so a re-extracted shard gets a new copy; it is written to a temporary file
  and renamed (after checking it holds the shard's rows), and one that cannot be read is rebuilt. This is the
  Hugging Face `datasets` arrangement: Parquet on disk for everyone, Arrow IPC for random access.
- `ParquetRowReader`: reads the row group holding the row straight from the shard, keeping a few shards
  open (no copy; fine for a few shards).

Both return a one-row `pyarrow.Table` of the asked columns. Does not own the shard format (`shards`).
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ragar_data.atomic import atomic_path
from ragar_data.errors import ShardError
from ragar_data.shards import open_shard

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ragar-data" / "rows"


def default_cache_dir() -> Path:
    """$RAGAR_CACHE_DIR/rows, else ~/.cache/ragar-data/rows."""
    root = os.environ.get("RAGAR_CACHE_DIR")
    return Path(root) / "rows" if root else DEFAULT_CACHE_DIR


class ParquetRowReader:
    """Reads single rows by (shard path, row), one row group at a time, keeping `max_open` files open.

    Each shard's sha256 is checked against the index the first time this process opens it; reopening after
    eviction skips the digest (Parquet page checksums are still verified on every read).
    """

    def __init__(self, max_open: int = 8):
        self.max_open = max_open
        self._open: OrderedDict[Path, tuple[pq.ParquetFile, np.ndarray]] = OrderedDict()
        self._verified: set[Path] = set()

    def prepare(self, shards: dict[Path, str | None], columns: list[str], progress: bool = False) -> None:
        """Nothing to build; shards the caller already verified need not be hashed again."""
        self._verified.update(path for path, digest in shards.items() if digest is not None)

    def _parquet(self, path: Path, sha256: str | None) -> tuple[pq.ParquetFile, np.ndarray]:
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        parquet = open_shard(path, None if path in self._verified else sha256)
        self._verified.add(path)
        group_rows = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        self._open[path] = (parquet, np.cumsum([0] + group_rows))
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return self._open[path]

    def read(self, path: Path, row: int, columns: list[str], sha256: str | None = None) -> pa.Table:
        parquet, starts = self._parquet(path, sha256)
        group = int(np.searchsorted(starts, row, side="right") - 1)
        return read_row_group(parquet, path, group, columns).slice(row - int(starts[group]), 1)

    def close(self) -> None:
        self._open.clear()

    def __getstate__(self):
        # open files do not cross process boundaries: DataLoader workers start with an empty cache
        return {"max_open": self.max_open, "_open": OrderedDict(), "_verified": set(self._verified)}


class ArrowRowCache:
    """Rows of shards through memory-mapped Arrow IPC copies of their columns (one record batch per row)."""

    def __init__(self, cache_dir: str | Path | None = None, max_open: int = 256):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.max_open = max_open
        self._open: OrderedDict[Path, ipc.RecordBatchFileReader] = OrderedDict()

    def copy_path(self, shard: Path, sha256: str | None, columns: list[str]) -> Path:
        columns_tag = hashlib.sha256(",".join(columns).encode()).hexdigest()[:12]
        return self.cache_dir / f"{shard_identity(shard, sha256)[:32]}-{columns_tag}.arrow"

    def prepare(self, shards: dict[Path, str | None], columns: list[str], progress: bool = False) -> None:
        """Build the copies that are missing (or unreadable), with a progress bar when asked."""
        copies = {path: (digest, self.copy_path(path, digest, columns)) for path, digest in shards.items()}
        missing = [(path, digest, copy) for path, (digest, copy) in copies.items() if _batch_count(copy) is None]
        if not missing:
            return
        from ragar_data.progress import track

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for path, digest, copy in track(missing, f"row cache ({self.cache_dir})", unit="shard",
                                        enabled=progress and len(missing) >= 4):
            write_row_copy(path, digest, columns, copy)

    def _reader(self, path: Path, sha256: str | None, columns: list[str]) -> ipc.RecordBatchFileReader:
        copy = self.copy_path(path, sha256, columns)
        if copy in self._open:
            self._open.move_to_end(copy)
            return self._open[copy]
        reader = _open_copy(copy)
        if reader is None:  # not prepared in this process (or removed since): build it now
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            write_row_copy(path, sha256, columns, copy)
            reader = _open_copy(copy)
        self._open[copy] = reader
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return reader

    def read(self, path: Path, row: int, columns: list[str], sha256: str | None = None) -> pa.Table:
        reader = self._reader(path, sha256, columns)
        if not 0 <= row < reader.num_record_batches:
            raise ShardError(f"{path}: row {row} is not in its row cache ({reader.num_record_batches} rows)")
        return pa.Table.from_batches([reader.get_batch(row)])

    def close(self) -> None:
        """Drop the open memory maps (their pages can then leave the page cache)."""
        self._open.clear()

    def __getstate__(self):
        return {"cache_dir": self.cache_dir, "max_open": self.max_open, "_open": OrderedDict()}


def shard_identity(shard: Path, sha256: str | None) -> str:
    """What names a shard's local copies: its sha256, or for unverified datasets a digest of its path, size and
    modification time (a changed file gets new copies either way)."""
    if sha256 is not None:
        return sha256
    stat = shard.stat()
    return hashlib.sha256(f"{shard.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()


def read_row_group(parquet: pq.ParquetFile, path: Path, group: int, columns: list[str]) -> pa.Table:
    try:
        # use_threads=False: a row group is one sequence, and DataLoader workers are the parallelism
        return parquet.read_row_group(group, columns=columns, use_threads=False)
    except OSError as error:
        raise ShardError(f"{path}: corrupted shard data in row group {group}: {error}") from error


def _open_copy(path: Path) -> ipc.RecordBatchFileReader | None:
    """The memory-mapped IPC copy; None when it is missing or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        return ipc.open_file(pa.memory_map(str(path)))
    except (pa.ArrowException, OSError):
        return None


def _batch_count(path: Path) -> int | None:
    reader = _open_copy(path)
    return None if reader is None else reader.num_record_batches


def write_row_copy(shard: Path, sha256: str | None, columns: list[str], out: Path) -> None:
    """`columns` of every row of `shard` (digest checked when given) as an IPC file, one batch per row."""
    parquet = open_shard(shard, sha256)
    options = ipc.IpcWriteOptions(compression="zstd")
    with atomic_path(out) as temporary:
        with pa.OSFile(str(temporary), "wb") as sink:
            with ipc.new_file(sink, parquet.schema_arrow.empty_table().select(columns).schema,
                              options=options) as writer:
                for group in range(parquet.num_row_groups):
                    table = read_row_group(parquet, shard, group, columns)
                    for batch in table.combine_chunks().to_batches(max_chunksize=1):
                        writer.write_batch(batch)
        rows = parquet.metadata.num_rows
        if _batch_count(temporary) != rows:
            raise ShardError(f"{out}: row copy of {shard} does not hold its {rows} rows")
