"""OpenGait dataset trees: export shards to `<id>/<type>/<view>/<view>.pkl` and import such trees into shards.

Owns the tree layout, the two type-folder namings and pickle I/O. The silhouettes themselves are already
normalised in the shards (`ragar_data.silhouettes`, OpenGait pretreatment rules), so export only pickles them.

Tree (what OpenGait's `DataSet` lists and `pickle.load`s; `pretreatment.py` writes the same)::

    OUT/<subject>/<type>/<view:03d>/<view:03d>.pkl    numpy uint8 (S, 64, 64), one sequence
    OUT/partition.json                                {"TRAIN_SET": [...], "TEST_SET": [...]} when known

Type folder namings:
- ``key``: ``c<combination>-<condition>``, e.g. ``c1-bg-02`` (`SequenceKey.type_name`).
- ``ragar``: ``<n>_<a1>_<a2>_..._<a15>``, the RA-GAR release convention that OpenGait's
  `FoundationGait_Scaling_LinearProbing_RAGAR` reads: it splits the name on ``_``, drops the first token and
  takes the 15 class indices in Table 1 order. The leading integer only keeps a subject's type folders apart
  (the probe ignores it; its meaning in the released files is not documented). We write the running number
  of the walk within the subject, ``n = 8 * combination + condition position`` (nm-01..04, bg-01..02,
  cl-01..02 -> 0..7), zero-padded to two digits: ``00``..``23`` for the 24 walks of a subject.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import InputError, RagarDataError
from ragar_data.identity import CONDITIONS, SequenceKey
from ragar_data.export_tree import TreeWriter
from ragar_data.progress import Progress, track
from ragar_data.safe_load import load_array_pickle
from ragar_data.shards import (
    INDEX_NAME,
    SHARD_DIR,
    check_shard_matches_index,
    iter_records,
    make_record,
    open_shard,
    read_index,
    update_index,
    write_shard,
)

NAMINGS = ("key", "ragar")
MODALITIES = ("silhouette", "pose")
PARTITION_FILE = "partition.json"
# Protocol 4 is what pickle.dump (no protocol given, as in pretreatment.py) writes on Python 3.8-3.13.
PICKLE_PROTOCOL = 4
WALKS_PER_COMBINATION = len(CONDITIONS)
_KEY_TYPE = re.compile(r"^c(?P<combination>\d+)-(?P<condition>[a-z]{2}-\d{2})$")
_RAGAR_TYPE = re.compile(r"^\d+(_\d+)+$")


class TreeLayoutError(RagarDataError):
    """A folder does not look like an OpenGait tree (`id/type/view/*.pkl`) or holds unexpected data."""


# ---------------------------------------------------------------------------------------------- naming


def walk_number(combination: int, condition: str) -> int:
    """Running number of a walk within its subject: 8 * combination + position of the condition (0..23)."""
    return WALKS_PER_COMBINATION * combination + CONDITIONS.index(condition)


def ragar_type_name(key: SequenceKey, labels, schema: AttributeSchema | None = None) -> str:
    """``<walk number>_<a1>_..._<a15>`` for `key` with class indices `labels` (all known)."""
    schema = schema or default_schema()
    labels = np.asarray(labels).reshape(-1)
    if labels.shape != (len(schema),) or (labels < 0).any():
        raise RagarDataError(f"{key}: the ragar type naming needs all {len(schema)} attribute labels, "
                             f"got {labels.tolist()} (-1 = not annotated); annotate it or use --naming key")
    return "_".join([f"{walk_number(key.combination, key.condition):02d}"] + [str(int(v)) for v in labels])


def type_folder_name(key: SequenceKey, labels, naming: str, schema: AttributeSchema | None = None) -> str:
    if naming == "key":
        return key.type_name
    if naming == "ragar":
        return ragar_type_name(key, labels, schema)
    raise InputError(f"type naming {naming!r} not in {NAMINGS}")


def parse_type_folder(name: str, where: Path, schema: AttributeSchema | None = None):
    """(combination, condition, labels (15,) int8 or None) from a type folder name of either naming."""
    schema = schema or default_schema()
    match = _KEY_TYPE.match(name)
    if match:
        combination, condition = int(match["combination"]), match["condition"]
        SequenceKey("x", combination, condition, 0)  # validates both; raises ValueError
        return combination, condition, None
    if _RAGAR_TYPE.match(name):
        tokens = [int(t) for t in name.split("_")]
        number, labels = tokens[0], np.array(tokens[1:], dtype=np.int64)
        if labels.size != len(schema):
            raise TreeLayoutError(f"{where}: type folder {name!r} holds {labels.size} class indices after the "
                                  f"leading number, expected {len(schema)} (A1..A15)")
        too_big = [f"A{i + 1}={v}" for i, (v, n) in enumerate(zip(labels, schema.num_classes)) if v >= n]
        if too_big:
            raise TreeLayoutError(f"{where}: class index out of range in type folder {name!r}: {too_big}")
        if number >= WALKS_PER_COMBINATION * 3:
            raise TreeLayoutError(
                f"{where}: leading number {number} of type folder {name!r} is not a walk number 0..23 "
                "(8 * combination + condition position); ragar-data cannot tell its combination and condition")
        return number // WALKS_PER_COMBINATION, CONDITIONS[number % WALKS_PER_COMBINATION], labels.astype(np.int8)
    raise TreeLayoutError(f"{where}: type folder {name!r} is neither c<combination>-<condition> (e.g. c0-nm-01) "
                          "nor <n>_<a1>_..._<a15> (RA-GAR release naming)")


# ---------------------------------------------------------------------------------------------- pickles


def pickle_bytes(array: np.ndarray) -> bytes:
    """The bytes of a sequence pickle, as `pickle.dump` in OpenGait's pretreatment writes them."""
    return pickle.dumps(array, protocol=PICKLE_PROTOCOL)


def read_pickle(path: Path):
    """A pickle of the tree, through the restricted unpickler (numpy arrays and plain containers only):
    a pickle asking for anything else raises `UnsafePickleError` naming the file, and nothing runs."""
    return load_array_pickle(path)


def iter_dataset_records(dataset_dir: str | Path, columns: list[str]):
    """Records of every shard of a dataset, shard by shard and row group by row group, digests, row counts and
    keys checked against the index."""
    dataset_dir = Path(dataset_dir)
    for entry in read_index(dataset_dir)["shards"]:
        path = dataset_dir / entry["file"]
        check_shard_matches_index(path, open_shard(path, entry["sha256"]), entry)
        yield from iter_records(path, columns=columns)


def partition_bytes(dataset_dir: Path, partition: str | Path | None) -> bytes | None:
    """The tree's partition.json: `partition` (validated) or the dataset's; None when neither exists."""
    from ragar_data.split import load_partition, partition_json

    source = Path(partition) if partition is not None else dataset_dir / PARTITION_FILE
    if partition is None and not source.is_file():
        return None
    loaded = load_partition(source)  # raises PartitionError naming the file
    # a released file is copied byte for byte; others are rewritten in the canonical OpenGait layout
    return source.read_bytes() if loaded.is_released else partition_json(loaded).encode()


# ---------------------------------------------------------------------------------------------- export


@dataclass
class TreeSummary:
    """What a tree export did; the counts both exporters (silhouettes, poses) report."""

    out_root: Path
    written: int = 0
    existing: int = 0  # already in the tree from an earlier run (resume)
    failed_quality: list[str] = field(default_factory=list)  # quality_ok false, left out unless include_failed
    partition: Path | None = None
    removed: list[str] = field(default_factory=list)  # written by an earlier export, no longer exported
    changed: list[str] = field(default_factory=list)  # written by an earlier export, changed since: left
    foreign: int = 0  # files in OUT this export did not write (left in place)


@dataclass
class ExportSummary(TreeSummary):
    empty: list[str] = field(default_factory=list)  # no frames: nothing written, as pretreatment does

    def __str__(self) -> str:
        lines = [f"{self.out_root}: wrote {self.written} sequence pickles, kept {self.existing} from an earlier run"]
        lines += tree_lines(self)
        if self.empty:
            lines.append(f"skipped {len(self.empty)} sequences with no frames, e.g. {self.empty[:3]}")
        if self.failed_quality:
            lines.append(f"left out {len(self.failed_quality)} sequences failing the quality filter "
                         f"(--include-failed keeps them), e.g. {self.failed_quality[:3]}")
        lines.append(f"partition: {self.partition}" if self.partition else
                     "no partition file (run `ragar-data split` or pass --split FILE)")
        return "\n".join(lines)


def tree_lines(summary) -> list[str]:
    """Summary lines about files of earlier exports and other files in OUT (both tree exporters)."""
    lines = []
    if summary.removed:
        lines.append(f"removed {len(summary.removed)} files an earlier export of this dataset wrote and this one "
                     f"no longer does, e.g. {summary.removed[:3]}")
    if summary.changed:
        lines.append(f"left {len(summary.changed)} files of an earlier export that were changed since it wrote "
                     f"them, e.g. {summary.changed[:3]}")
    if summary.foreign:
        lines.append(f"{summary.foreign} other files in the folder were not written by this export (left in place)")
    return lines


def start_export(dataset_dir: Path, out_root: Path, naming: str, partition, summary, modality: str,
                 overwrite: bool) -> tuple[int, TreeWriter]:
    """Checks and steps shared by the tree exporters: the naming, the index, the partition (a bad --split fails
    before anything is written), the output folder's owner, the partition copy; returns the number of sequences
    in the dataset and the writer of the tree."""
    if naming not in NAMINGS:
        raise InputError(f"type naming {naming!r} not in {NAMINGS}")
    total = read_index(dataset_dir)["sequences"]
    partition_data = partition_bytes(dataset_dir, partition)
    writer = TreeWriter(out_root, dataset_dir, modality, naming, overwrite)
    if partition_data is not None:
        summary.partition = out_root / PARTITION_FILE
        writer.write(summary.partition, partition_data)
    return total, writer


def finish_export(writer: TreeWriter, summary) -> None:
    """Remove what the earlier export wrote and this one no longer does; fill the summary's counts."""
    summary.removed, summary.changed = writer.finish()
    summary.foreign = writer.foreign_files()


def sequence_pickle_path(out_root: Path, key: SequenceKey, labels, naming: str, schema: AttributeSchema) -> Path:
    """`out_root/<id>/<type>/<view>/<view>.pkl`, the path OpenGait's DataSet lists."""
    type_name = type_folder_name(key, labels, naming, schema)
    return out_root / key.subject / type_name / key.view_name / f"{key.view_name}.pkl"


def export_opengait(dataset_dir: str | Path, out_root: str | Path, naming: str = "key",
                    partition: str | Path | None = None, overwrite: bool = False, include_failed: bool = False,
                    progress: bool = True) -> ExportSummary:
    """Write the dataset's silhouettes as an OpenGait tree (see the module docstring).

    Resumable: a pickle already holding what would be written is kept; files of an earlier export of the same
    dataset are rewritten or removed as needed; a folder holding anything else is refused unless `overwrite`
    (`ragar_data.export_tree`). Every pickle is written atomically. Sequences failing the extraction's quality
    filter are left out unless `include_failed`.
    """
    dataset_dir, out_root = Path(dataset_dir), Path(out_root)
    schema = default_schema()
    summary = ExportSummary(out_root)
    total, writer = start_export(dataset_dir, out_root, naming, partition, summary, "silhouette", overwrite)
    columns = ["key", "labels", "quality_ok", "silhouettes", "silhouette_encoding", "num_silhouettes",
               "silhouette_height", "silhouette_width"]
    for record in track(iter_dataset_records(dataset_dir, columns), "export opengait", total, unit="seq",
                        enabled=progress):
        key = SequenceKey.parse(record["key"])
        frames = record["silhouettes"]
        if not record["quality_ok"] and not include_failed:
            summary.failed_quality.append(str(key))
            continue
        if frames.shape[0] == 0:
            summary.empty.append(str(key))
            continue
        path = sequence_pickle_path(out_root, key, record["labels"], naming, schema)
        written = writer.write(path, pickle_bytes(np.ascontiguousarray(frames, dtype=np.uint8)), str(key))
        summary.written += written
        summary.existing += not written
    finish_export(writer, summary)
    return summary


# ---------------------------------------------------------------------------------------------- import


@dataclass(frozen=True)
class TreeSequence:
    key: SequenceKey
    labels: np.ndarray | None  # from a ragar type name
    path: Path  # the pickle
    relpath: str


def scan_tree(root: str | Path, schema: AttributeSchema | None = None) -> list[TreeSequence]:
    """Every sequence of an OpenGait tree, checked: `root/<id>/<type>/<view>/*.pkl`; files other than JSON at
    the top level, and anything but folders above the pickles, are layout errors naming the path."""
    root = Path(root)
    if not root.is_dir():
        raise TreeLayoutError(f"{root}: not a folder")
    if (root / INDEX_NAME).is_file() and (root / SHARD_DIR).is_dir():
        raise TreeLayoutError(f"{root}: this is a ragar-data dataset (index.json + shards/), not an OpenGait tree")
    schema = schema or default_schema()
    found: dict[SequenceKey, TreeSequence] = {}
    for subject_dir in sorted(root.iterdir()):
        if subject_dir.is_file():
            if subject_dir.suffix in (".json", ".md", ".txt") or subject_dir.name.startswith("."):
                continue  # partition files and notes beside the ids, as OpenGait tolerates
            raise TreeLayoutError(f"{subject_dir}: unexpected file at the top of the tree (expected id folders)")
        if subject_dir.name.startswith("."):
            continue
        for type_dir in sorted(subject_dir.iterdir()):
            if not type_dir.is_dir():
                raise TreeLayoutError(f"{type_dir}: expected a type folder inside id folder {subject_dir.name}")
            combination, condition, labels = parse_type_folder(type_dir.name, type_dir, schema)
            for view_dir in sorted(type_dir.iterdir()):
                if not view_dir.is_dir():
                    raise TreeLayoutError(f"{view_dir}: expected a view folder (e.g. 036) inside {type_dir}")
                if not view_dir.name.isdigit():
                    raise TreeLayoutError(f"{view_dir}: view folder name must be the view angle in degrees")
                try:
                    key = SequenceKey(subject_dir.name, combination, condition, int(view_dir.name))
                except ValueError as error:
                    raise TreeLayoutError(f"{view_dir}: {error}") from error
                pickles = sorted(p for p in view_dir.iterdir() if p.suffix == ".pkl")
                others = [p.name for p in view_dir.iterdir() if p.suffix != ".pkl" and not p.name.startswith(".")]
                if others:
                    raise TreeLayoutError(f"{view_dir}: non-pickle files {others[:3]} (OpenGait reads only .pkl)")
                if not pickles:
                    continue  # OpenGait skips empty view folders too
                named = view_dir / f"{view_dir.name}.pkl"
                if len(pickles) > 1 and named not in pickles:
                    raise TreeLayoutError(f"{view_dir}: several pickles {[p.name for p in pickles]} and none named "
                                          f"{named.name}; import one modality tree at a time")
                path = named if named in pickles else pickles[0]
                if key in found:
                    raise TreeLayoutError(f"{view_dir}: sequence {key} also at {found[key].path.parent}")
                found[key] = TreeSequence(key, labels, path, path.relative_to(root).as_posix())
    if not found:
        raise TreeLayoutError(f"{root}: no sequences found (expected <id>/<type>/<view>/<view>.pkl)")
    return [found[key] for key in sorted(found)]


def _load_array(sequence: TreeSequence, modality: str) -> np.ndarray:
    array = read_pickle(sequence.path)
    if not isinstance(array, np.ndarray):
        array = np.asarray(array) if isinstance(array, list) else array
    if not isinstance(array, np.ndarray):
        raise TreeLayoutError(f"{sequence.path}: expected a numpy array, found {type(array).__name__}")
    if modality == "silhouette":
        if array.ndim != 3 or array.dtype != np.uint8 or array.shape[0] == 0:
            raise TreeLayoutError(f"{sequence.path}: expected silhouettes uint8 (T, H, W) with T > 0, "
                                  f"found {array.dtype} {array.shape}")
        return np.ascontiguousarray(array)
    if array.ndim != 3 or array.shape[1:] != (17, 3) or array.shape[0] == 0 or array.dtype.kind not in "fiu":
        raise TreeLayoutError(f"{sequence.path}: expected pose (T, 17, 3) x, y, confidence with T > 0, "
                              f"found {array.dtype} {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _merge(record: dict | None, key: SequenceKey, modality: str, array: np.ndarray, labels: np.ndarray,
           source: str) -> dict:
    """The shard record for `key` with `array` as its `modality`, keeping the other modality of `record`.

    Frame columns (num_frames, frame_index, boxes) follow the pose when there is one: a release gives no
    source frame numbers or boxes, so frame_index counts 0..T-1 and boxes are NaN (unknown).
    """
    if record is None:
        record = make_record(key, image_width=0, image_height=0, labels=labels, source=source,
                             silhouettes=np.zeros((0, 64, 64), np.uint8),
                             silhouette_frame_index=np.zeros(0, np.int32))
    record = dict(record)
    if (labels < 0).all():
        labels = np.asarray(record["labels"], dtype=np.int8)  # nothing new to say about labels
    if (np.asarray(record["labels"]) != labels).any() and (np.asarray(record["labels"]) >= 0).any():
        raise RagarDataError(f"{key}: labels {labels.tolist()} from {source} differ from the labels already "
                             f"in the dataset {np.asarray(record['labels']).tolist()}")
    record["labels"] = labels
    count = array.shape[0]
    if modality == "silhouette":
        record["silhouettes"] = array
        record["silhouette_frame_index"] = np.arange(count, dtype=np.int32)
        for derived in ("num_silhouettes", "silhouette_height", "silhouette_width", "silhouette_encoding"):
            record[derived] = None
        has_pose = record.get("keypoints_2d") is not None
        if not has_pose:
            record["num_frames"], record["frame_index"] = count, np.arange(count, dtype=np.int32)
            record["boxes"] = np.full((count, 4), np.nan, np.float32)
    else:
        record["keypoints_2d"], record["keypoints_2d_model"] = array, "imported"
        record["num_frames"], record["frame_index"] = count, np.arange(count, dtype=np.int32)
        record["boxes"] = np.full((count, 4), np.nan, np.float32)
    return record


@dataclass
class ImportSummary:
    dataset_dir: Path
    modality: str
    sequences: int = 0
    subjects: int = 0
    merged: int = 0  # sequences that already had the other modality
    kept_subjects: int = 0  # subjects whose shard already held this modality (resumed run)
    unlabelled: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.dataset_dir}: imported {self.sequences} {self.modality} sequences of {self.subjects} "
                 f"subjects ({self.merged} merged into sequences already there); {self.kept_subjects} subjects "
                 "already imported by an earlier run were kept"]
        if self.unlabelled:
            lines.append(f"{len(self.unlabelled)} sequences have no attribute labels (neither a ragar type name "
                         f"nor an annotation row), e.g. {self.unlabelled[:3]}; they are stored with -1")
        return "\n".join(lines)


def import_opengait(root: str | Path, dataset_dir: str | Path, modality: str = "silhouette",
                    annotations: str | Path | None = None, progress: bool = True) -> ImportSummary:
    """Read an OpenGait tree (silhouettes uint8 (T, H, W) or poses (T, 17, 3)) into shards, one per subject
    (`shards/opengait-<subject>.parquet`). Importing the other modality of the same sequences later merges
    it into those shards. Labels come from ragar type names, else from the annotation CSV."""
    if modality not in MODALITIES:
        raise InputError(f"modality {modality!r} not in {MODALITIES}")
    from ragar_data.annotations import read_annotations

    root, dataset_dir = Path(root), Path(dataset_dir)
    schema = default_schema()
    sequences = scan_tree(root, schema)
    table = read_annotations(annotations, schema) if annotations is not None else {}
    owners = _key_owners(dataset_dir)
    summary = ImportSummary(dataset_dir, modality)
    by_subject: dict[str, list[TreeSequence]] = {}
    for sequence in sequences:
        by_subject.setdefault(sequence.key.subject, []).append(sequence)
    infos = []
    bar = Progress(f"import {modality}", len(sequences), unit="seq", enabled=progress)
    for subject, members in by_subject.items():
        shard_name = f"opengait-{subject}"
        shard_path = dataset_dir / SHARD_DIR / f"{shard_name}.parquet"
        clash = sorted({owners[str(s.key)] for s in members if owners.get(str(s.key), shard_path) != shard_path})
        if clash:
            raise RagarDataError(f"{dataset_dir}: sequences of subject {subject} already exist in {clash[0]}; "
                                 "import into another dataset folder")
        existing = {r["key"]: r for r in iter_records(shard_path)} if shard_path.is_file() else {}
        if all(str(s.key) in existing and _has(existing[str(s.key)], modality) for s in members):
            summary.kept_subjects += 1  # resumed run: this subject's shard was completed before
            bar.advance(len(members))
            continue
        for sequence in members:
            key = sequence.key
            labels = _labels_for(sequence, table, schema)
            if (labels < 0).all():
                summary.unlabelled.append(str(key))
            previous = existing.get(str(key))
            if previous is not None and _has(previous, "pose" if modality == "silhouette" else "silhouette"):
                summary.merged += 1
            existing[str(key)] = _merge(previous, key, modality, _load_array(sequence, modality), labels,
                                        sequence.relpath)
            bar.advance()
        infos.append(write_shard(dataset_dir, shard_name, [existing[k] for k in sorted(existing)]))
        summary.sequences += len(members)
        summary.subjects += 1
    bar.close()
    update_index(dataset_dir, infos)
    return summary


def _has(record: dict, modality: str) -> bool:
    if modality == "pose":
        return record.get("keypoints_2d") is not None
    return int(record.get("num_silhouettes") or 0) > 0


def _labels_for(sequence: TreeSequence, table: dict, schema: AttributeSchema) -> np.ndarray:
    annotated = table.get((sequence.key.subject, sequence.key.combination))
    if sequence.labels is not None:
        if annotated is not None and (np.asarray(annotated) != sequence.labels).any():
            raise RagarDataError(f"{sequence.path.parent.parent}: labels in the type folder name "
                                 f"{sequence.labels.tolist()} differ from the annotation CSV {list(annotated)}")
        return sequence.labels
    if annotated is not None:
        return np.asarray(annotated, dtype=np.int8)
    return np.full(len(schema), -1, np.int8)


def _key_owners(dataset_dir: Path) -> dict[str, Path]:
    if not (dataset_dir / INDEX_NAME).is_file():
        return {}
    return {key: dataset_dir / entry["file"] for entry in read_index(dataset_dir)["shards"] for key in entry["keys"]}


__all__ = ["NAMINGS", "MODALITIES", "TreeLayoutError", "walk_number", "ragar_type_name", "type_folder_name",
           "parse_type_folder", "export_opengait", "import_opengait", "scan_tree", "ExportSummary",
           "ImportSummary", "read_pickle", "pickle_bytes"]
