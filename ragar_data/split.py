"""Train/test partitions of subjects: the released RA-GAR partition, a seeded stratified split, or a given file.

Owns the OpenGait partition format (`{"TRAIN_SET": [...], "TEST_SET": [...]}`, described in
`schemas/partition.yaml`), recognising the released partition by its digest, the seeded 250:283 split with
every class on both sides, the split summary, and the covariate groups evaluation breaks metrics down by.
It does not own the shards (`ragar_data.shards`) nor the metrics (`ragar_data.metrics`).

Protocols:
- ``official``: the partition OpenGait releases as `datasets/RAGAR/ragar.json` (250 train / 283 test
  subjects), reproduced exactly when that file is found and the dataset holds its subjects; otherwise a
  seeded split, and the notes say so plainly.
- ``seeded``: always the seeded split.
- a path to a partition JSON: that partition, validated against the dataset's subjects.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ragar_data.atomic import atomic_write_bytes, atomic_write_json
from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey

# RA-GAR paper: 533 subjects, 250 for training; the text's "remaining 288" is a typo for 283.
PAPER_SUBJECTS = 533
PAPER_TRAIN_SUBJECTS = 250
# OpenGait `datasets/RAGAR/ragar.json`: sha256 of the file bytes, and of its canonical form (see canonical_json).
RELEASED_FILE_SHA256 = "98a97e1a630579cb824f5b88b8e9f38e87e6b5d9758fbe59f71592696e7f3e85"
RELEASED_CANONICAL_SHA256 = "ff6af75583dd78c2fc065a1a57c32b3a27be6fa54c516d020b308b2080841fca"
RELEASED_FILE_NAME = "ragar.json"
PARTITION_ENV = "RAGAR_PARTITION"
SETS = ("TRAIN_SET", "TEST_SET")
DEFAULT_SEED = 0


class PartitionError(RagarDataError):
    """A partition file is malformed, or does not fit the dataset it is applied to."""


@dataclass(frozen=True)
class Partition:
    """Subjects on each side, in the order they are written (the released file's order when reproduced)."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    protocol: str  # "released", "released-subset", "seeded" or "file"
    source: str | None = None  # the file it came from, if any
    seed: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_released(self) -> bool:
        return self.protocol in ("released", "released-subset")

    def to_opengait(self) -> dict:
        return {"TRAIN_SET": list(self.train), "TEST_SET": list(self.test)}

    def canonical_sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.train, self.test).encode()).hexdigest()

    def side_of(self, subjects: Sequence[str]) -> np.ndarray:
        """'train', 'test' or '' (in neither set) for each subject."""
        train, test = set(self.train), set(self.test)
        return np.array(["train" if s in train else "test" if s in test else "" for s in subjects], dtype=object)


def canonical_json(train: Iterable[str], test: Iterable[str]) -> str:
    """Order-free form of a partition: sorted ids, sorted keys, no spaces (what the canonical digest hashes)."""
    return json.dumps({"TEST_SET": sorted(test), "TRAIN_SET": sorted(train)}, separators=(",", ":"), sort_keys=True)


def partition_json(partition: Partition) -> str:
    # OpenGait's ragar.json is json.dumps(indent=4) without a final newline: writing the same way makes a
    # reproduced released partition byte-identical to the released file.
    return json.dumps(partition.to_opengait(), indent=4)


# ------------------------------------------------------------------------------------------ reading files


def load_partition(path: str | Path) -> Partition:
    """Read and validate an OpenGait partition JSON; the released RA-GAR file is recognised by its digest."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PartitionError(f"{path}: cannot read partition file: {error.strerror or error}") from error
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PartitionError(f"{path}: not a JSON partition file: {error}") from error
    if not isinstance(document, dict):
        raise PartitionError(f"{path}: expected an object {{\"TRAIN_SET\": [...], \"TEST_SET\": [...]}}, "
                             f"found {type(document).__name__}")
    unexpected = sorted(set(document) - set(SETS))
    missing = [name for name in SETS if name not in document]
    if missing or unexpected:
        raise PartitionError(f"{path}: expected exactly the keys {list(SETS)}; missing {missing}, "
                             f"unexpected {unexpected}")
    sides = {}
    for name in SETS:
        ids = document[name]
        if not isinstance(ids, list) or not ids:
            raise PartitionError(f"{path}: {name} must be a non-empty list of subject ids")
        for position, subject in enumerate(ids):
            if not isinstance(subject, str) or not subject:
                raise PartitionError(f"{path}: {name}[{position}] = {subject!r}; subject ids are non-empty "
                                     f"strings (OpenGait folder names, e.g. \"001\")")
        repeated = sorted({s for s in ids if ids.count(s) > 1}) if len(set(ids)) != len(ids) else []
        if repeated:
            raise PartitionError(f"{path}: {name} lists subjects more than once: {repeated[:10]}")
        sides[name] = tuple(ids)
    both = sorted(set(sides["TRAIN_SET"]) & set(sides["TEST_SET"]))
    if both:
        raise PartitionError(f"{path}: {len(both)} subject(s) in both TRAIN_SET and TEST_SET: {both[:10]}")
    file_digest = hashlib.sha256(data).hexdigest()
    canonical = hashlib.sha256(canonical_json(sides["TRAIN_SET"], sides["TEST_SET"]).encode()).hexdigest()
    released = file_digest == RELEASED_FILE_SHA256 or canonical == RELEASED_CANONICAL_SHA256
    return Partition(sides["TRAIN_SET"], sides["TEST_SET"], "released" if released else "file", str(path))


def find_released_partition(dataset_dir: str | Path | None = None,
                            released: str | Path | None = None) -> Partition | None:
    """The released partition, searched in: `released`, $RAGAR_PARTITION, `<dataset_dir>/ragar.json`.

    Returns None when none of those exists; a file found there that is not the released partition is an error
    (use it with ``--protocol FILE`` instead).
    """
    candidates = []
    if released is not None:
        if not Path(released).is_file():
            raise PartitionError(f"{released}: released partition file not found")
        candidates.append(Path(released))
    elif os.environ.get(PARTITION_ENV):
        path = Path(os.environ[PARTITION_ENV])
        if not path.is_file():
            raise PartitionError(f"{path}: ${PARTITION_ENV} names a file that does not exist")
        candidates.append(path)
    elif dataset_dir is not None and (Path(dataset_dir) / RELEASED_FILE_NAME).is_file():
        candidates.append(Path(dataset_dir) / RELEASED_FILE_NAME)
    if not candidates:
        return None
    partition = load_partition(candidates[0])
    if not partition.is_released:
        raise PartitionError(
            f"{candidates[0]}: not the released RA-GAR partition (its digests match neither sha256 "
            f"{RELEASED_FILE_SHA256[:12]}… of the file nor {RELEASED_CANONICAL_SHA256[:12]}… of its canonical "
            f"form); to use it anyway pass it as --protocol {candidates[0]}"
        )
    return partition


# ------------------------------------------------------------------------------------------ splitting


def subject_class_incidence(subject_labels: Mapping[str, Sequence[np.ndarray]], subjects: Sequence[str],
                            schema: AttributeSchema) -> np.ndarray:
    """(subjects, 45) bool: whether any labelled combination of the subject has the class."""
    incidence = np.zeros((len(subjects), schema.total_classes), dtype=bool)
    for row, subject in enumerate(subjects):
        arrays = [np.asarray(a).reshape(-1) for a in subject_labels[subject]]
        if arrays:
            incidence[row] = schema.to_one_hot(np.stack(arrays)).any(0)
    return incidence


def train_count_for(num_subjects: int) -> int:
    """Training subjects for a dataset of this size: the paper's 250:283 proportion, rounded half up."""
    if num_subjects < 2:
        raise PartitionError(f"cannot split {num_subjects} subject(s): a partition needs at least 2")
    if num_subjects == PAPER_SUBJECTS:
        return PAPER_TRAIN_SUBJECTS
    return min(max(int(np.floor(num_subjects * PAPER_TRAIN_SUBJECTS / PAPER_SUBJECTS + 0.5)), 1), num_subjects - 1)


def seeded_assignment(incidence: np.ndarray, num_train: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(N,) bool is-train for subjects in a fixed (sorted) order: iterative stratification, then repair.

    Stratification (Sechidis et al. 2011) hands out the rarest class first, each subject to the side that
    still wants that class most; then side sizes are made exact and swaps bring every class that occurs in
    at least two subjects onto both sides, without taking any class off a side. Only `rng.random` draws are
    used, with stable sorts, so the result does not depend on hash seeds or set order.
    """
    num_subjects, num_labels = incidence.shape
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(num_subjects)
    rank = np.empty(num_subjects, dtype=np.int64)
    rank[np.argsort(tiebreak, kind="stable")] = np.arange(num_subjects)
    wanted_size = np.array([num_train, num_subjects - num_train], dtype=np.float64)
    wanted_label = np.outer(wanted_size / num_subjects, incidence.sum(0).astype(np.float64))
    side = np.full(num_subjects, -1, dtype=np.int64)
    remaining = incidence.copy()
    while remaining.any():
        counts = remaining.sum(0)
        label = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
        members = np.flatnonzero(remaining[:, label])
        for subject in members[np.argsort(rank[members], kind="stable")]:
            if wanted_label[0, label] != wanted_label[1, label]:
                chosen = int(np.argmax(wanted_label[:, label]))
            elif wanted_size[0] != wanted_size[1]:
                chosen = int(np.argmax(wanted_size))
            else:
                chosen = int(tiebreak[subject] >= 0.5)
            side[subject] = chosen
            wanted_label[chosen] -= incidence[subject]
            wanted_size[chosen] -= 1
            remaining[subject] = False
    for subject in np.flatnonzero(side < 0)[np.argsort(rank[side < 0], kind="stable")]:
        side[subject] = int(np.argmax(wanted_size))  # unlabelled subjects only fill the sizes
        wanted_size[side[subject]] -= 1
    is_train = side == 0
    _fix_sizes(is_train, incidence, num_train, rank)
    _repair_coverage(is_train, incidence, rank)
    return is_train


def _keeps_coverage(members: np.ndarray, incidence: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Which of `members` can leave their side without taking a class off it (every class held twice)."""
    return ~(incidence[members] & (counts < 2)).any(1)


def _fix_sizes(is_train: np.ndarray, incidence: np.ndarray, num_train: int, rank: np.ndarray) -> None:
    while is_train.sum() != num_train:
        from_train = is_train.sum() > num_train
        members = np.flatnonzero(is_train == from_train)
        members = members[np.argsort(rank[members], kind="stable")]
        counts = incidence[members].sum(0)
        spare = members[_keeps_coverage(members, incidence, counts)]
        mover = spare[0] if len(spare) else members[0]
        is_train[mover] = not from_train


def _repair_coverage(is_train: np.ndarray, incidence: np.ndarray, rank: np.ndarray) -> None:
    """Swap pairs of subjects while a swap raises the number of (class, side) pairs covered.

    Only classes held by two or more subjects count (a class of one subject cannot be on both sides). Each
    swap strictly raises that number, so the loop ends; among the best swaps the earliest in the seeded order
    is taken.
    """
    eligible = incidence.sum(0) >= 2
    unfixable: set[int] = set()
    while True:
        train_counts, test_counts = incidence[is_train].sum(0), incidence[~is_train].sum(0)
        missing = np.flatnonzero(eligible & ((train_counts == 0) | (test_counts == 0)))
        missing = [int(label) for label in missing if int(label) not in unfixable]
        if not missing:
            return
        label = missing[0]
        lacking_is_train = bool(train_counts[label] == 0)
        lacking_counts, holding_counts = (train_counts, test_counts) if lacking_is_train else (test_counts, train_counts)
        donors = np.flatnonzero((is_train != lacking_is_train) & incidence[:, label])
        partners = np.flatnonzero(is_train == lacking_is_train)
        if not len(donors) or not len(partners):
            unfixable.add(label)
            continue
        # (donors, partners, labels) counts after swapping each donor with each partner
        delta = incidence[donors][:, None, :].astype(np.int64) - incidence[partners][None, :, :]
        covered_after = (((lacking_counts + delta) > 0) & eligible).sum(-1) + \
                        (((holding_counts - delta) > 0) & eligible).sum(-1)
        gain = covered_after - (((lacking_counts > 0) & eligible).sum() + ((holding_counts > 0) & eligible).sum())
        if gain.max() <= 0:
            unfixable.add(label)
            continue
        best_d, best_p = np.nonzero(gain == gain.max())
        pick = np.lexsort((rank[partners[best_p]], rank[donors[best_d]]))[0]
        donor, partner = donors[best_d[pick]], partners[best_p[pick]]
        is_train[donor], is_train[partner] = lacking_is_train, not lacking_is_train


def coverage_notes(incidence: np.ndarray, is_train: np.ndarray, subjects: Sequence[str],
                   schema: AttributeSchema) -> list[str]:
    """Lines naming every class that is not on both sides, and why."""
    names = schema.label_names()
    notes = []
    for label in range(incidence.shape[1]):
        holders = [subjects[i] for i in np.flatnonzero(incidence[:, label])]
        on_train, on_test = incidence[is_train, label].any(), incidence[~is_train, label].any()
        if on_train and on_test:
            continue
        if not holders:
            notes.append(f"class {names[label]} occurs in no subject: absent from both sides")
        elif len(holders) == 1:
            notes.append(f"class {names[label]} occurs only in subject {holders[0]}: it cannot be on both sides")
        else:
            notes.append(f"class {names[label]} ({len(holders)} subjects) could not be placed on the "
                         f"{'training' if not on_train else 'test'} side without removing another class")
    return notes


def seeded_partition(subject_labels: Mapping[str, Sequence[np.ndarray]], seed: int = DEFAULT_SEED,
                     schema: AttributeSchema | None = None, reason: str = "") -> Partition:
    schema = schema or default_schema()
    subjects = sorted(subject_labels)
    num_train = train_count_for(len(subjects))
    incidence = subject_class_incidence(subject_labels, subjects, schema)
    is_train = seeded_assignment(incidence, num_train, seed)
    notes = [f"NOT the released RA-GAR partition: seeded split (seed {seed}) of {len(subjects)} subjects, "
             f"{num_train} train / {len(subjects) - num_train} test" + (f" ({reason})" if reason else "")]
    if len(subjects) != PAPER_SUBJECTS:
        notes.append(f"{len(subjects)} subjects, not the paper's {PAPER_SUBJECTS}: keeping its "
                     f"{PAPER_TRAIN_SUBJECTS}:{PAPER_SUBJECTS - PAPER_TRAIN_SUBJECTS} proportion, "
                     f"round({len(subjects)} x {PAPER_TRAIN_SUBJECTS}/{PAPER_SUBJECTS}) = {num_train} train")
    notes += coverage_notes(incidence, is_train, subjects, schema)
    train = tuple(s for s, t in zip(subjects, is_train) if t)
    test = tuple(s for s, t in zip(subjects, is_train) if not t)
    return Partition(train, test, "seeded", None, seed, tuple(notes))


def apply_partition(partition: Partition, subjects: Iterable[str], strict: bool) -> Partition:
    """`partition` checked against the dataset's subjects.

    strict: a subject of the partition that is not in the data is an error (a user's file); otherwise (the
    released partition over a partial dataset) the partition is restricted to the data's subjects.
    """
    present = set(subjects)
    where = partition.source or "partition"
    listed = set(partition.train) | set(partition.test)
    unknown = sorted(listed - present)
    notes = list(partition.notes)
    protocol = partition.protocol
    if unknown and strict:
        raise PartitionError(f"{where}: {len(unknown)} subject(s) of the partition are not in the dataset: "
                             f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    train = tuple(s for s in partition.train if s in present)
    test = tuple(s for s in partition.test if s in present)
    if unknown:
        protocol = "released-subset"
        notes.append(f"the released RA-GAR partition restricted to this dataset: {len(unknown)} of its "
                     f"{len(listed)} subjects are not in the data ({len(train)} train / {len(test)} test remain)")
    elif partition.is_released:
        notes.append(f"the released RA-GAR partition (OpenGait datasets/RAGAR/ragar.json, sha256 "
                     f"{RELEASED_CANONICAL_SHA256[:12]}… canonical), reproduced exactly")
    unassigned = sorted(present - listed)
    if unassigned:
        notes.append(f"{len(unassigned)} subject(s) of the dataset are in neither set and will not be used: "
                     f"{unassigned[:10]}{' ...' if len(unassigned) > 10 else ''}")
    if not train or not test:
        raise PartitionError(f"{where}: no {'training' if not train else 'test'} subject of the partition is in "
                             f"the dataset")
    return Partition(train, test, protocol, partition.source, partition.seed, tuple(notes))


def split_subjects(subject_labels: Mapping[str, Sequence[np.ndarray]], protocol: str | Path = "official",
                   seed: int = DEFAULT_SEED, released_partition: Partition | None = None,
                   schema: AttributeSchema | None = None) -> Partition:
    """Partition the subjects of `subject_labels` (subject -> its (15,) label arrays, one per combination).

    protocol: "official" (the released partition when `released_partition` is given and its subjects are in
    the data, else seeded), "seeded", or a path to a partition JSON (validated; unknown subjects are errors).
    """
    subjects = sorted(subject_labels)
    if str(protocol) == "seeded":
        return seeded_partition(subject_labels, seed, schema, reason="--protocol seeded")
    if str(protocol) == "official":
        if released_partition is None:
            return seeded_partition(subject_labels, seed, schema,
                                    reason=f"no released partition file found: pass --released FILE, set "
                                           f"${PARTITION_ENV} or put {RELEASED_FILE_NAME} in the dataset")
        if not released_partition.is_released:
            raise PartitionError(f"{released_partition.source}: not the released RA-GAR partition")
        present = set(subjects)
        if not (present & set(released_partition.train)) or not (present & set(released_partition.test)):
            return seeded_partition(subject_labels, seed, schema,
                                    reason="the dataset's subjects are not those of the released partition")
        return apply_partition(released_partition, subjects, strict=False)
    partition = load_partition(protocol)
    return apply_partition(partition, subjects, strict=not partition.is_released)


# ------------------------------------------------------------------------------------------ covariates


def covariate_groups(keys: Iterable[str | SequenceKey]) -> dict[str, np.ndarray]:
    """Per-sequence covariate values for breaking metrics down: condition group, view, real vs simulated."""
    parsed = [k if isinstance(k, SequenceKey) else SequenceKey.parse(str(k)) for k in keys]
    return {
        "condition": np.array([k.condition_group for k in parsed], dtype=object),
        "view": np.array([k.view for k in parsed], dtype=np.int64),
        "combination": np.array(["real" if k.is_real else "simulated" for k in parsed], dtype=object),
    }


# ------------------------------------------------------------------------------------------ datasets


def sequence_labels(dataset_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """Keys and (N, 15) int8 class indices of every sequence of a dataset, read from the shards' label column."""
    from ragar_data.shards import ShardDataset  # shards pull in pyarrow; the pure functions above do not need it

    table = ShardDataset(dataset_dir).table(["key", "labels"])
    keys = table["key"].to_pylist()
    schema = default_schema()
    flat = table["labels"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    if flat.size != len(keys) * len(schema):
        raise RagarDataError(f"{dataset_dir}: label column holds {flat.size} values for {len(keys)} sequences; "
                             f"expected {len(schema)} per sequence")
    return keys, flat.astype(np.int8).reshape(len(keys), len(schema))


def dataset_subjects(dataset_dir: str | Path) -> set[str]:
    from ragar_data.shards import ShardDataset

    return {SequenceKey.parse(key).subject for key in ShardDataset(dataset_dir).keys()}


def labels_by_subject(keys: Sequence[str], labels: np.ndarray) -> dict[str, list[np.ndarray]]:
    """subject -> one (15,) label array per annotated combination (unlabelled sequences are skipped)."""
    per_combination: dict[tuple[str, int], np.ndarray] = {}
    subjects: dict[str, list[np.ndarray]] = {}
    for key, row in zip(keys, labels):
        parsed = SequenceKey.parse(key)
        subjects.setdefault(parsed.subject, [])
        if (row >= 0).any():
            per_combination.setdefault((parsed.subject, parsed.combination), row)
    for (subject, _), row in sorted(per_combination.items()):
        subjects[subject].append(row)
    return subjects


def split_summary(partition: Partition, keys: Sequence[str], labels: np.ndarray,
                  schema: AttributeSchema | None = None) -> dict:
    """Subjects, sequences and per-class counts (sequences and subjects) on each side of `partition`."""
    schema = schema or default_schema()
    subjects = [SequenceKey.parse(k).subject for k in keys]
    side = partition.side_of(subjects)
    one_hot = schema.to_one_hot(labels) > 0 if len(keys) else np.zeros((0, schema.total_classes), bool)
    summary = {
        "protocol": partition.protocol,
        "released_partition": partition.is_released,
        "source": partition.source,
        "seed": partition.seed,
        "notes": list(partition.notes),
        "canonical_sha256": partition.canonical_sha256(),
        "subjects": {"train": len(partition.train), "test": len(partition.test),
                     "unassigned": len(set(subjects) - set(partition.train) - set(partition.test))},
        "sequences": {name: int((side == name).sum()) for name in ("train", "test")},
        "class_sequences": {}, "class_subjects": {}, "classes_missing": {},
    }
    summary["sequences"]["unassigned"] = int((side == "").sum())
    subject_array = np.array(subjects, dtype=object)
    for name in ("train", "test"):
        on_side = side == name
        sequence_counts = one_hot[on_side].sum(0)
        subject_counts = [len(set(subject_array[on_side & one_hot[:, c]])) for c in range(schema.total_classes)]
        summary["class_sequences"][name] = _per_attribute(schema, sequence_counts)
        summary["class_subjects"][name] = _per_attribute(schema, subject_counts)
        summary["classes_missing"][name] = [n for n, c in zip(schema.label_names(), subject_counts) if c == 0]
    return summary


def _per_attribute(schema: AttributeSchema, counts) -> dict:
    counts = [int(c) for c in counts]
    return {a.name: dict(zip(a.classes, counts[o:o + a.num_classes])) for a, o in zip(schema.attributes, schema.offsets)}


def write_partition(partition: Partition, path: str | Path) -> Path:
    atomic_write_bytes(path, partition_json(partition).encode())
    return Path(path)


def summary_path_for(partition_path: Path) -> Path:
    if partition_path.name == "partition.json":
        return partition_path.with_name("split_summary.json")
    return partition_path.with_suffix(".summary.json")


def split_dataset(dataset_dir: str | Path, protocol: str | Path = "official", out: str | Path | None = None,
                  released_partition: str | Path | None = None, seed: int = DEFAULT_SEED) -> tuple[Partition, dict]:
    """Partition a dataset's subjects and write `partition.json` (OpenGait format) and `split_summary.json`.

    `out` defaults to `<dataset_dir>/partition.json`; the summary goes beside it.
    """
    if released_partition is not None and str(protocol) != "official":
        raise PartitionError(f"{released_partition}: a released partition file applies to protocol 'official', "
                             f"not {str(protocol)!r}")
    keys, labels = sequence_labels(dataset_dir)
    if not keys:
        raise PartitionError(f"{dataset_dir}: the dataset has no sequences to split")
    released = find_released_partition(dataset_dir, released_partition) if str(protocol) == "official" else None
    partition = split_subjects(labels_by_subject(keys, labels), protocol, seed, released)
    summary = split_summary(partition, keys, labels)
    out = Path(out) if out is not None else Path(dataset_dir) / "partition.json"
    write_partition(partition, out)
    summary_path = summary_path_for(out)
    summary["partition_file"] = str(out)
    atomic_write_json(summary_path, summary, indent=2)
    summary["summary_file"] = str(summary_path)
    return partition, summary
