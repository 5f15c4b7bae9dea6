"""Parquet shards: one row per sequence, schema from `schemas/shard.yaml`, plus the dataset index.

Owns: the Arrow schema, record <-> table conversion, shard and index writes (atomic, through `ragar_data.atomic`),
integrity checks on read (sha256 from the index, Parquet page checksums, schema version), and random access by
sequence key.
Does not own: what goes into a record (the extraction pipeline and importers build records).

Dataset layout::

    DATASET/index.json               schema version, per shard: file, rows, bytes, sha256, keys
    DATASET/shards/<name>.parquet    zstd, page checksums, row groups of `row_group_rows` sequences
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ragar_data.atomic import atomic_write_bytes
from ragar_data.errors import InputError, ShardError
from ragar_data.identity import SequenceKey
from ragar_data.schemas import schema_path

SCHEMA_VERSION_KEY = b"ragar_data.shard_schema_version"
INDEX_NAME = "index.json"
SHARD_DIR = "shards"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SCALAR_TYPES = {
    "string": pa.string(), "binary": pa.binary(), "bool": pa.bool_(), "int8": pa.int8(),
    "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool
    length: str | None = None  # column holding the frame count of a per-frame array
    frame_shape: tuple[int, ...] = ()

    @property
    def arrow_type(self) -> pa.DataType:
        if self.type.startswith("list<"):
            return pa.list_(_SCALAR_TYPES[self.type[5:-1]])
        return _SCALAR_TYPES[self.type]

    @property
    def is_list(self) -> bool:
        return self.type.startswith("list<")


@dataclass(frozen=True)
class ShardSpec:
    version: int
    compression: str
    row_group_rows: int
    columns: tuple[ColumnSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"no column {name!r} in the shard schema")

    def arrow_schema(self) -> pa.Schema:
        fields = [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        return pa.schema(fields, metadata={SCHEMA_VERSION_KEY: str(self.version).encode()})


@lru_cache(maxsize=1)
def shard_spec() -> ShardSpec:
    """The shard schema of this version of ragar-data."""
    document = yaml.safe_load(schema_path("shard.yaml").read_text())
    columns = tuple(
        ColumnSpec(
            name=c["name"], type=c["type"], nullable=bool(c["nullable"]), length=c.get("length"),
            frame_shape=tuple(c.get("frame_shape", ())),
        )
        for c in document["columns"]
    )
    return ShardSpec(int(document["version"]), document["compression"], int(document["row_group_rows"]), columns)


@dataclass(frozen=True)
class ShardInfo:
    file: str  # relative to the dataset directory
    rows: int
    bytes: int
    sha256: str
    keys: tuple[str, ...]

    def to_json(self) -> dict:
        return {"file": self.file, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256, "keys": list(self.keys)}


# ---------------------------------------------------------------------------------------------- records


def make_record(key: SequenceKey, **columns) -> dict:
    """A record for `key` with identity columns filled in and optional columns defaulted to None."""
    record = {name: None for name in shard_spec().names}
    record.update(
        key=str(key), subject=key.subject, combination=key.combination, condition=key.condition, view=key.view,
        quality_ok=True, quality_reasons=[], fps=30.0,
    )
    record.update(columns)
    return record


def encode_silhouettes(frames: np.ndarray) -> tuple[bytes, str]:
    """Bit-pack binary (0/255) frames; keep other uint8 frames as raw bytes."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if np.all((frames == 0) | (frames == 255)):
        return np.packbits(frames > 127).tobytes(), "packbits"
    return frames.tobytes(), "uint8"


def decode_silhouettes(blob: bytes, encoding: str, count: int, height: int, width: int,
                       positions: np.ndarray | None = None) -> np.ndarray:
    """(count, height, width) uint8 frames of a silhouette blob, or only the frames at `positions` (in that
    order, repeats allowed): a loader's 30 sampled frames are decoded without copying the whole sequence."""
    if encoding not in ("packbits", "uint8"):
        raise ShardError(f"unknown silhouette encoding {encoding!r}")
    size = count * height * width
    buffer = np.frombuffer(blob, dtype=np.uint8)
    expected = (size + 7) // 8 if encoding == "packbits" else size
    if buffer.size < expected:
        raise ShardError(f"silhouette blob holds {buffer.size} bytes, expected {expected} for "
                         f"{count}x{height}x{width} ({encoding})")
    if positions is None:
        positions = np.arange(count)
    positions = np.asarray(positions, np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= count):
        raise IndexError(f"frame positions outside 0..{count - 1}")
    frame = height * width
    if encoding == "uint8":
        return buffer[:size].reshape(count, height, width)[positions]  # fancy indexing copies only these frames
    if frame % 8 == 0:  # each frame starts on a byte: unpack the chosen frames only
        chosen = buffer[: size // 8].reshape(count, frame // 8)[positions]
        return (np.unpackbits(chosen, axis=1) * np.uint8(255)).reshape(len(positions), height, width)
    frames = np.unpackbits(buffer, count=size).reshape(count, height, width)
    return frames[positions] * np.uint8(255)


def _complete(record: dict) -> dict:
    """Derive counts and the silhouette columns; check per-frame shapes against the schema."""
    record = dict(record)
    key = record.get("key")
    frames = record.get("silhouettes")
    if frames is None:
        frames = np.zeros((0, 64, 64), np.uint8)
    if isinstance(frames, np.ndarray):
        if frames.ndim != 3:
            raise ShardError(f"{key}: silhouettes must be (S, H, W), got {frames.shape}")
        record["num_silhouettes"], record["silhouette_height"], record["silhouette_width"] = frames.shape
        record["silhouettes"], record["silhouette_encoding"] = encode_silhouettes(frames)
    if record.get("num_frames") is None:
        record["num_frames"] = len(record["frame_index"])
    record.setdefault("quality_reasons", [])
    for column in shard_spec().columns:
        if record.get(column.name) is None and not column.nullable:
            raise ShardError(f"{key}: column {column.name!r} may not be empty")
        if column.length and record.get(column.name) is not None:
            array = np.asarray(record[column.name])
            expected = (int(record[column.length]),) + column.frame_shape
            if array.shape != expected and array.size != int(np.prod(expected)):
                raise ShardError(f"{key}: column {column.name!r} has shape {array.shape}, expected {expected}")
    return record


def _list_array(values: list, column: ColumnSpec) -> pa.Array:
    """Flattened list column from per-row arrays (None -> null), built from offsets in one go."""
    value_type = column.arrow_type.value_type
    if value_type == pa.string():
        return pa.array([None if v is None else list(v) for v in values], type=column.arrow_type)
    dtype = value_type.to_pandas_dtype()
    # a null row adds no items (np.asarray(None) would be one NaN item, shifting every later row)
    flat = [np.zeros(0, dtype) if v is None else np.asarray(v, dtype=dtype).ravel() for v in values]
    lengths = np.array([0 if v is None else f.size for v, f in zip(values, flat)], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    items = pa.array(np.concatenate(flat) if flat else np.zeros(0, dtype), type=value_type)
    mask = pa.array([v is None for v in values]) if any(v is None for v in values) else None
    return pa.ListArray.from_arrays(offsets, items, mask=mask)


def records_to_table(records: Iterable[dict]) -> pa.Table:
    spec = shard_spec()
    records = [_complete(r) for r in records]
    arrays = []
    for column in spec.columns:
        values = [r.get(column.name) for r in records]
        if column.is_list:
            arrays.append(_list_array(values, column))
        else:
            arrays.append(pa.array(values, type=column.arrow_type))
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema())


def _frames(column: pa.ChunkedArray | pa.Array, spec: ColumnSpec) -> list:
    """Per-row numpy arrays in frame shape from a list column (null -> None)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if column.type.value_type == pa.string():
        return column.to_pylist()
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    rows = []
    for row in range(len(column)):
        if not valid[row]:
            rows.append(None)
            continue
        chunk = values[offsets[row] : offsets[row + 1]]
        rows.append(chunk.reshape((-1,) + spec.frame_shape) if spec.length else chunk.copy())
    return rows


def table_to_records(table: pa.Table) -> list[dict]:
    """Records from a shard table (any subset of columns); silhouettes decoded when their columns are read."""
    spec = shard_spec()
    columns = {}
    for name in table.column_names:
        column = spec.column(name)
        columns[name] = _frames(table[name], column) if column.is_list else table[name].to_pylist()
    records = [{name: columns[name][i] for name in columns} for i in range(table.num_rows)]
    needed = {"silhouettes", "silhouette_encoding", "num_silhouettes", "silhouette_height", "silhouette_width"}
    if needed <= set(table.column_names):
        for r in records:
            r["silhouettes"] = decode_silhouettes(
                r["silhouettes"], r["silhouette_encoding"], r["num_silhouettes"],
                r["silhouette_height"], r["silhouette_width"],
            )
    return records


# ---------------------------------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _statistics_columns(spec: ShardSpec) -> list[str]:
    """Min/max statistics only for scalar columns: for a binary blob they would copy the blob into page headers
    and the footer, which page checksums do not cover (and which doubles the bytes)."""
    return [c.name for c in spec.columns if not c.is_list and c.type != "binary"]


def write_shard(dataset_dir: str | Path, name: str, records: Iterable[dict]) -> ShardInfo:
    """Write `records` as `DATASET/shards/<name>.parquet` atomically and return its index entry.

    The index is not touched: call `update_index` once the shards of a run are written.
    """
    return write_shard_table(dataset_dir, name, records_to_table(records))


def write_shard_table(dataset_dir: str | Path, name: str, table: pa.Table) -> ShardInfo:
    """`write_shard` for rows already in a table: cast to the shard schema (its metadata replaces the table's)
    and written in one chunk, so the bytes do not depend on how the table was put together."""
    if not _NAME.match(name):
        raise InputError(f"shard name {name!r}: use letters, digits, '_', '-', '.'")
    spec = shard_spec()
    table = table.cast(spec.arrow_schema()).combine_chunks()
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression=spec.compression, row_group_size=spec.row_group_rows,
        write_page_checksum=True, write_statistics=_statistics_columns(spec),
        use_dictionary=["subject", "condition", "camera", "keypoints_2d_model", "keypoints_3d_model",
                        "silhouette_encoding", "pipeline_hash"],
    )
    data = sink.getvalue().to_pybytes()
    relative = f"{SHARD_DIR}/{name}.parquet"
    atomic_write_bytes(Path(dataset_dir) / relative, data)
    return ShardInfo(relative, table.num_rows, len(data), hashlib.sha256(data).hexdigest(),
                     tuple(table["key"].to_pylist()))


def read_index(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / INDEX_NAME
    if not path.is_file():
        raise ShardError(f"{path}: no dataset index (is {dataset_dir} a ragar-data dataset? run extract or import)")
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ShardError(f"{path}: unreadable dataset index: {error}") from error
    if index.get("schema_version") != shard_spec().version:
        raise ShardError(
            f"{path}: dataset written with shard schema version {index.get('schema_version')}, "
            f"this ragar-data reads version {shard_spec().version}"
        )
    for entry in index.get("shards", []):
        _check_index_entry(Path(dataset_dir), path, entry)
    return index


_ENTRY_FIELDS = {"file": str, "rows": int, "bytes": int, "sha256": str, "keys": list}


def _check_index_entry(dataset_dir: Path, index_path: Path, entry) -> None:
    """An index entry names a file directly inside DATASET/shards/ (no `..`, no absolute path, no symlink
    leading out of it) and as many keys as rows."""
    if not isinstance(entry, dict) or any(not isinstance(entry.get(f), t) for f, t in _ENTRY_FIELDS.items()):
        raise ShardError(f"{index_path}: malformed shard entry {str(entry)[:120]} (expected "
                         f"{', '.join(_ENTRY_FIELDS)})")
    file = entry["file"]
    folder, _, name = file.partition("/")
    if folder != SHARD_DIR or not _NAME.match(name) or not name.endswith(".parquet") or name.strip(".") == "":
        raise ShardError(f"{index_path}: shard entry {file!r} is not {SHARD_DIR}/<name>.parquet; an index may only "
                         f"name files inside the dataset's {SHARD_DIR}/ folder")
    path = dataset_dir / file
    if path.is_symlink() and path.resolve().parent != (dataset_dir / SHARD_DIR).resolve():
        raise ShardError(f"{index_path}: shard entry {file!r} is a symbolic link to {path.resolve()}, outside "
                         f"the dataset's {SHARD_DIR}/ folder")
    if len(entry["keys"]) != entry["rows"]:
        raise ShardError(f"{index_path}: shard entry {file!r} lists {len(entry['keys'])} keys for "
                         f"{entry['rows']} rows")


def check_shard_matches_index(path: Path, parquet: pq.ParquetFile, entry: dict) -> None:
    """The shard holds the rows the index says, in the index's order (random access by key relies on it)."""
    if parquet.metadata.num_rows != entry["rows"]:
        raise ShardError(f"{path}: {parquet.metadata.num_rows} rows, the index says {entry['rows']}")
    keys = _read(path, lambda: parquet.read(columns=["key"]))["key"].to_pylist()
    if keys != list(entry["keys"]):
        row = next(i for i, (found, listed) in enumerate(zip(keys, entry["keys"])) if found != listed)
        raise ShardError(f"{path}: row {row} holds sequence {keys[row]}, the index lists {entry['keys'][row]} "
                         "there; the index was edited or belongs to another version of this shard")


def update_index(dataset_dir: str | Path, infos: Iterable[ShardInfo] = (), prune: bool = True) -> dict:
    """Merge `infos` into `DATASET/index.json` (atomically); shards on disk missing from it are hashed and added.

    With `prune`, entries whose file no longer exists are dropped.
    """
    dataset_dir = Path(dataset_dir)
    index_path = dataset_dir / INDEX_NAME
    entries = {}
    if index_path.is_file():
        entries = {e["file"]: e for e in read_index(dataset_dir)["shards"]}
    entries.update({info.file: info.to_json() for info in infos})
    for path in sorted((dataset_dir / SHARD_DIR).glob("*.parquet")):
        relative = f"{SHARD_DIR}/{path.name}"
        if relative not in entries or entries[relative]["bytes"] != path.stat().st_size:
            table = read_table(path, columns=["key"])
            entries[relative] = ShardInfo(relative, table.num_rows, path.stat().st_size, file_sha256(path),
                                          tuple(table["key"].to_pylist())).to_json()
    if prune:
        entries = {f: e for f, e in entries.items() if (dataset_dir / f).is_file()}
    index = {
        "format": "ragar-data shards",
        "schema_version": shard_spec().version,
        "sequences": sum(e["rows"] for e in entries.values()),
        "shards": [entries[f] for f in sorted(entries)],
    }
    atomic_write_bytes(index_path, (json.dumps(index, indent=1) + "\n").encode())
    return index


def _check_schema(path: Path, schema: pa.Schema) -> None:
    spec = shard_spec()
    version = (schema.metadata or {}).get(SCHEMA_VERSION_KEY)
    if version is None:
        raise ShardError(f"{path}: not a ragar-data shard (no {SCHEMA_VERSION_KEY.decode()} in its metadata)")
    if int(version) != spec.version:
        raise ShardError(f"{path}: shard schema version {int(version)}, this ragar-data reads version {spec.version}")
    expected = spec.arrow_schema()
    for field in expected:
        if field.name not in schema.names:
            raise ShardError(f"{path}: schema mismatch: column {field.name!r} is missing")
        if not schema.field(field.name).type.equals(field.type):
            raise ShardError(f"{path}: schema mismatch: column {field.name!r} is "
                             f"{schema.field(field.name).type}, expected {field.type}")
    extra = set(schema.names) - set(expected.names)
    if extra:
        raise ShardError(f"{path}: schema mismatch: unexpected columns {sorted(extra)}")


def open_shard(path: str | Path, expected_sha256: str | None = None) -> pq.ParquetFile:
    """Open a shard after checking its digest (when given) and schema; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"{path}: shard file is missing")
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise ShardError(f"{path}: sha256 differs from the dataset index: the file is truncated, corrupted or "
                         "was changed after writing; re-extract or restore it")
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        raise ShardError(f"{path}: not a readable Parquet shard (truncated or corrupted): {error}") from error
    _check_schema(path, parquet.schema_arrow)
    return parquet


def _read(path: Path, read) -> pa.Table:
    try:
        return read()
    except (pa.ArrowException, OSError) as error:
        raise ShardError(f"{path}: corrupted shard data: {error}") from error


def read_table(path: str | Path, columns: list[str] | None = None, expected_sha256: str | None = None) -> pa.Table:
    parquet = open_shard(path, expected_sha256)
    return _read(Path(path), lambda: parquet.read(columns=columns))


def iter_records(path: str | Path, columns: list[str] | None = None) -> Iterator[dict]:
    """Records of one shard, one row group at a time."""
    parquet = open_shard(path)
    for group in range(parquet.num_row_groups):
        yield from table_to_records(_read(Path(path), lambda: parquet.read_row_group(group, columns=columns)))


class ShardDataset:
    """Random access to the sequences of a dataset by key; each shard is opened (and verified) on first use."""

    def __init__(self, dataset_dir: str | Path, verify: bool = True):
        self.dataset_dir = Path(dataset_dir)
        self.index = read_index(self.dataset_dir)
        self.verify = verify
        self._locations: dict[str, tuple[int, int]] = {}
        for shard_number, entry in enumerate(self.index["shards"]):
            for row, key in enumerate(entry["keys"]):
                self._locations[key] = (shard_number, row)
        self._paths = [self.dataset_dir / e["file"] for e in self.index["shards"]]
        self._open: dict[int, tuple[pq.ParquetFile, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._locations)

    def __contains__(self, key: str) -> bool:
        return str(key) in self._locations

    def keys(self) -> list[str]:
        return sorted(self._locations)

    @property
    def shard_paths(self) -> list[Path]:
        return list(self._paths)

    def locate(self, key: str) -> tuple[Path, int]:
        if str(key) not in self._locations:
            raise KeyError(f"sequence {key} is not in the dataset {self.dataset_dir}")
        shard_number, row = self._locations[str(key)]
        return self._paths[shard_number], row

    def _parquet(self, shard_number: int) -> tuple[pq.ParquetFile, np.ndarray]:
        if shard_number not in self._open:
            entry = self.index["shards"][shard_number]
            path = self.dataset_dir / entry["file"]
            parquet = open_shard(path, entry["sha256"] if self.verify else None)
            check_shard_matches_index(path, parquet, entry)
            group_rows = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
            self._open[shard_number] = (parquet, np.cumsum([0] + group_rows))
        return self._open[shard_number]

    def read_record(self, key: str, columns: list[str] | None = None) -> dict:
        """One sequence's record, reading only the row group that holds it; the row's key is checked."""
        shard_number, row = self._locations.get(str(key), (None, None))
        if shard_number is None:
            raise KeyError(f"sequence {key} is not in the dataset {self.dataset_dir}")
        parquet, starts = self._parquet(shard_number)
        group = int(np.searchsorted(starts, row, side="right") - 1)
        path = self._paths[shard_number]
        read_columns = None if columns is None else list(dict.fromkeys([*columns, "key"]))
        table = _read(path, lambda: parquet.read_row_group(group, columns=read_columns))
        record = table_to_records(table.slice(row - starts[group], 1))[0]
        if record["key"] != str(key):
            raise ShardError(f"{path}: row {row} holds sequence {record['key']}, not {key} as the index says")
        if columns is not None and "key" not in columns:
            del record["key"]
        return record

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """All shards' rows for `columns` (metadata queries; avoid silhouettes for large datasets)."""
        tables = [_read(path, lambda i=i: self._parquet(i)[0].read(columns=columns))
                  for i, path in enumerate(self._paths)]
        return pa.concat_tables(tables) if tables else shard_spec().arrow_schema().empty_table()

    def __getstate__(self):
        # open Parquet files do not cross process boundaries (DataLoader workers reopen them)
        state = dict(self.__dict__)
        state["_open"] = {}
        return state
