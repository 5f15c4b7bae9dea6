"""A local cache of silhouette frames for training loaders: each shard's frames uncompressed, read by span.

A training item uses 30 of a sequence's frames. Shards store whole sequences zstd-compressed, so reading one
item from them (or from the Arrow row cache) decompresses every frame; OpenGait's pickles are uncompressed but
are read whole. This cache stores a shard's normalised frames once as a plain `.npy` array (frames, H, W) uint8,
with OpenGait's cut already applied when the loader cuts (64 x 44: a third fewer bytes to keep and read), plus a
row index (`offsets[r]:offsets[r + 1]` are row r's frames), so an item reads only the span of frames
that holds its sampled ones (34 consecutive frames for fixed_ordered's 30), with one `preadv`; a batch
(`read_batch`) is one read per item and one gather into the batch array, both outside the GIL, so threads may
read batches in parallel (the open copies are shared under a lock, reads keep no state).

The shards stay the source of truth. A shard's copy is named after its sha256 (or, for unverified datasets, its
path, size and mtime), so a changed shard gets a new copy; each file is written to a temporary name and renamed
(`ragar_data.atomic`), the row index last, and a copy whose files disagree is rebuilt. Several DataLoader
workers may build the same copy at once: each renames a complete file over the same name.

Owns building, naming and reading the copies. Does not own frame sampling (`ragar_data.loaders`) nor the shard
format (`ragar_data.shards`).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ragar_data.atomic import atomic_path
from ragar_data.errors import ShardError
from ragar_data.row_access import read_row_group, shard_identity
from ragar_data.shards import decode_silhouettes, open_shard
from ragar_data.silhouettes import cutting_columns

FORMAT_TAG = "frames-v1"
SHAPE_COLUMNS = ["silhouette_encoding", "num_silhouettes", "silhouette_height", "silhouette_width"]


def default_cache_dir() -> Path:
    """$RAGAR_CACHE_DIR/frames, else ~/.cache/ragar-data/frames."""
    root = os.environ.get("RAGAR_CACHE_DIR")
    return Path(root) / "frames" if root else Path.home() / ".cache" / "ragar-data" / "frames"


class ShardFrames:
    """One shard's open copy: frames read with `preadv` (only the span holding the asked positions) and the row
    index `offsets` (rows + 1,) int64. Reads, not a memory map: in a VM each first touch of a mapped page is a
    fault costing about as much as copying the frame, and a memory map touches every sampled frame once per
    process. Reads hold no state, so several threads may read one copy at once."""

    def __init__(self, path: Path, handle, data_offset: int, frame_shape: tuple[int, int], offsets: np.ndarray):
        self.path, self.handle, self.data_offset = path, handle, data_offset
        self.frame_shape, self.offsets = frame_shape, offsets
        self.frame_bytes = frame_shape[0] * frame_shape[1]
        self._starts = offsets.tolist()  # Python ints: per-item lookups without numpy scalars

    @property
    def rows(self) -> int:
        return self.offsets.size - 1

    def frame_count(self, row: int) -> int:
        return self._starts[row + 1] - self._starts[row]

    def read_span(self, row: int, first: int, buffers: list, count: int) -> None:
        """Read row `row`'s frames first .. first + count - 1 into `buffers` (writable, count frames in all), in
        one `preadv`."""
        if first < 0 or first + count > self.frame_count(row):
            raise IndexError(f"frame positions {first}..{first + count - 1} outside 0..{self.frame_count(row) - 1}")
        offset = self.data_offset + (self._starts[row] + first) * self.frame_bytes
        if os.preadv(self.handle.fileno(), buffers, offset) != count * self.frame_bytes:
            raise ShardError(f"{self.path}: the frame cache file is shorter than its index; remove it")

    def read(self, row: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Row `row`'s frames (S, H, W) uint8: all of them, or those at `positions` (in that order)."""
        first, last = (0, self.frame_count(row)) if positions is None else (int(positions.min()),
                                                                            int(positions.max()) + 1)
        span = np.empty((last - first,) + self.frame_shape, np.uint8)
        self.read_span(row, first, [span], last - first)
        return span if positions is None else span[positions - first]

    def close(self) -> None:
        self.handle.close()

    def __del__(self):
        self.close()


class FrameCache:
    """Uncompressed copies of shards' silhouettes, built on first use, kept open per process (up to
    `max_open` shards). `cut`: the copies hold the frames after OpenGait's cut (`silhouettes.cutting_columns`)."""

    def __init__(self, cache_dir: str | Path | None = None, cut: bool = True, max_open: int = 256):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cut, self.max_open = cut, max_open
        self._open: OrderedDict[Path, ShardFrames] = OrderedDict()
        self._lock = threading.Lock()  # reader threads (`training.data.ReaderThreads`) share the open copies

    def copy_paths(self, shard: Path, sha256: str | None) -> tuple[Path, Path]:
        """(frames file, row index file) of `shard`'s copy."""
        stem = f"{shard_identity(shard, sha256)[:32]}-{FORMAT_TAG}-{'cut' if self.cut else 'full'}"
        return self.cache_dir / f"{stem}.frames.npy", self.cache_dir / f"{stem}.offsets.npy"

    def prepare(self, shards: dict[Path, str | None], columns: list[str] | None = None,
                progress: bool = False) -> None:
        """Build the copies that are missing or unreadable, with a progress bar when asked. `columns` (the row
        readers' argument) can only be the silhouettes."""
        if columns not in (None, ["silhouettes"]):
            raise ValueError(f"the frame cache holds silhouettes only, not {columns}")
        missing = []
        for path, digest in shards.items():
            copy = _open_copy(*self.copy_paths(path, digest))
            if copy is None:
                missing.append((path, digest))
            else:
                copy.close()
        if not missing:
            return
        from ragar_data.progress import track

        for path, digest in track(missing, f"frame cache ({self.cache_dir})", unit="shard",
                                  enabled=progress and len(missing) >= 4):
            write_frame_copy(path, digest, *self.copy_paths(path, digest), cut=self.cut)

    def shard(self, path: Path, sha256: str | None) -> ShardFrames:
        """The open copy of the shard at `path` (built now when missing: a copy removed since `prepare`)."""
        with self._lock:
            if path in self._open:
                self._open.move_to_end(path)
                return self._open[path]
            frames_path, offsets_path = self.copy_paths(path, sha256)
            copy = _open_copy(frames_path, offsets_path)
            if copy is None:
                write_frame_copy(path, sha256, frames_path, offsets_path, cut=self.cut)
                copy = _open_copy(frames_path, offsets_path)
                if copy is None:
                    raise ShardError(f"{frames_path}: the frame copy of {path} just written cannot be read back")
            self._open[path] = copy
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)  # closed when no reader holds it any more (ShardFrames.__del__)
            return copy

    def close(self) -> None:
        """Close the open copies (when no read is under way)."""
        with self._lock:
            while self._open:
                self._open.popitem()[1].close()

    def __getstate__(self):
        # open files do not cross process boundaries: DataLoader workers open their own
        return {"cache_dir": self.cache_dir, "cut": self.cut, "max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(**state)


def read_batch(copies: list[ShardFrames], rows: list[int], positions: np.ndarray, out: np.ndarray) -> None:
    """Fill `out` (B, T, H, W) uint8, C-contiguous, with the frames at `positions` (B, T) of row `rows[b]` of
    `copies[b]`: one `preadv` per item of the span holding its positions (34 frames for fixed_ordered's 30),
    then one gather into `out`, both outside the GIL. (Reading the sampled frames straight into `out`, the
    skipped ones into scratch, measured no faster: building the buffer lists costs what the gather does.)"""
    if any(copy.frame_shape != out.shape[2:] for copy in copies):
        raise ShardError(f"frames of {sorted({copy.frame_shape for copy in copies})} read into {out.shape[2:]}")
    first = positions.min(axis=1)
    sizes = positions.max(axis=1) + 1 - first
    ends = np.cumsum(sizes)
    starts = ends - sizes
    spans = np.empty((int(ends[-1]),) + out.shape[2:], np.uint8)
    for copy, row, frame, start, end in zip(copies, rows, first.tolist(), starts.tolist(), ends.tolist()):
        copy.read_span(row, frame, [spans[start:end]], end - start)
    # mode="clip" gathers without an intermediate buffer; the indices are in range by construction
    np.take(spans, ((starts - first)[:, None] + positions).ravel(), axis=0, mode="clip",
            out=out.reshape((-1,) + out.shape[2:]))


def _open_copy(frames_path: Path, offsets_path: Path) -> ShardFrames | None:
    """The copy, open; None when a file is missing, unreadable or the two disagree (then it is rebuilt)."""
    if not (frames_path.is_file() and offsets_path.is_file()):
        return None
    handle = open(frames_path, "rb", buffering=0)
    try:
        offsets = np.load(offsets_path, allow_pickle=False)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(handle))
        if read_header is None:
            raise ValueError("not a version 1 or 2 .npy file")
        shape, fortran_order, dtype = read_header(handle)
        data_offset = handle.tell()
        size = os.fstat(handle.fileno()).st_size
    except (OSError, ValueError):
        handle.close()
        return None
    consistent = (offsets.ndim == 1 and offsets.size >= 1 and offsets.dtype == np.int64 and len(shape) == 3
                  and dtype == np.uint8 and not fortran_order and int(offsets[-1]) == shape[0]
                  and size == data_offset + shape[0] * shape[1] * shape[2] and bool(np.all(np.diff(offsets) >= 0)))
    if not consistent:
        handle.close()
        return None
    return ShardFrames(frames_path, handle, data_offset, (shape[1], shape[2]), offsets)


def _frame_size(shard: Path, table: dict) -> tuple[int, int]:
    sizes = {(h, w) for n, h, w in zip(table["num_silhouettes"], table["silhouette_height"],
                                       table["silhouette_width"]) if n}
    if len(sizes) > 1:
        raise ShardError(f"{shard}: silhouettes of several sizes {sorted(sizes)} in one shard; the frame cache "
                         "holds one size per shard (read it with frame_cache=False)")
    return sizes.pop() if sizes else (64, 64)


def write_frame_copy(shard: Path, sha256: str | None, frames_path: Path, offsets_path: Path,
                     cut: bool = True) -> None:
    """Decode every row of `shard` (digest checked when given) into the frames file (cut when `cut`), then
    write the row index."""
    parquet = open_shard(shard, sha256)
    table = parquet.read(columns=SHAPE_COLUMNS[1:]).to_pydict()
    height, width = _frame_size(shard, table)
    cut_columns = cutting_columns(width) if cut else 0
    offsets = np.concatenate([[0], np.cumsum(table["num_silhouettes"], dtype=np.int64)]).astype(np.int64)
    frames_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(frames_path) as temporary:
        frames = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8,
                                           shape=(int(offsets[-1]), height, width - 2 * cut_columns))
        row = 0
        for group in range(parquet.num_row_groups):
            columns = read_row_group(parquet, shard, group, ["silhouettes"] + SHAPE_COLUMNS).to_pydict()
            for blob, encoding, count, h, w in zip(*(columns[name] for name in ["silhouettes"] + SHAPE_COLUMNS)):
                if count:
                    decoded = decode_silhouettes(blob, encoding, count, h, w)
                    frames[offsets[row]:offsets[row + 1]] = decoded[:, :, cut_columns:w - cut_columns]
                row += 1
        frames.flush()
        del frames
    with atomic_path(offsets_path) as temporary:
        np.save(temporary, offsets, allow_pickle=False)
