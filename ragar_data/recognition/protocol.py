"""The identity protocol of the paper's Table 7, drawn from a seed and kept as a canonical JSON file.

As the paper: for each subject, seven sequences with real attributes (combination 0), whatever their condition
and view; one is the gallery, six are probes; 100 random subjects train, the rest test. Sets smaller than the
paper's 533 subjects train on the same share (100/533, at least 2 subjects) unless a count is given.

Owns: the draw (numpy's PCG64 from one seed, over sorted inputs, so the same seed and keys give the same
protocol on every machine), the file format and its reader. Does not own which sequences are usable (the
caller lists them, e.g. `usable_real_keys`) nor training or metrics.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragar_data.atomic import atomic_write_text
from ragar_data.errors import InputError
from ragar_data.identity import SequenceKey

FORMAT = "ragar-identity-protocol/1"
SEQUENCES_PER_SUBJECT = 7  # the paper: one gallery + six probes
PAPER_TRAIN_SUBJECTS = 100
PAPER_SUBJECTS = 533
DEFAULT_SEED = 0


@dataclass(frozen=True)
class IdentityProtocol:
    seed: int
    sequences_per_subject: int
    train_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]
    sequences: Mapping[str, tuple[str, ...]]  # subject -> its drawn keys, gallery first, then the probes
    excluded: Mapping[str, int]  # subject -> real sequences it has, when fewer than sequences_per_subject
    train_rule: str

    def train_keys(self) -> list[str]:
        return sorted(key for subject in self.train_subjects for key in self.sequences[subject])

    def gallery_keys(self) -> list[str]:
        return [self.sequences[subject][0] for subject in self.test_subjects]

    def probe_keys(self) -> list[str]:
        return sorted(key for subject in self.test_subjects for key in self.sequences[subject][1:])

    def to_document(self) -> dict:
        return {"format": FORMAT, "seed": self.seed, "sequences_per_subject": self.sequences_per_subject,
                "train_rule": self.train_rule, "train_subjects": list(self.train_subjects),
                "test_subjects": list(self.test_subjects),
                "subjects": {subject: {"gallery": keys[0], "probes": list(keys[1:])}
                             for subject, keys in self.sequences.items()},
                "excluded": dict(self.excluded)}


def default_train_count(num_subjects: int) -> int:
    """100 subjects when the set is the paper's size or larger, else the paper's share, at least 2 (and at
    least 2 left to test)."""
    if num_subjects < 4:
        raise InputError(f"identity recognition needs at least 4 subjects with enough real sequences "
                         f"(2 train, 2 test), found {num_subjects}")
    if num_subjects >= PAPER_SUBJECTS:
        return PAPER_TRAIN_SUBJECTS
    return min(max(2, round(num_subjects * PAPER_TRAIN_SUBJECTS / PAPER_SUBJECTS)), num_subjects - 2)


def draw_protocol(real_keys: Iterable[str], seed: int = DEFAULT_SEED, train_subjects: int | None = None,
                  sequences_per_subject: int = SEQUENCES_PER_SUBJECT) -> IdentityProtocol:
    """Draw the protocol from the keys of usable real-attribute sequences (combination 0).

    Subjects with fewer than ``sequences_per_subject`` such sequences are left out and listed in ``excluded``.
    """
    by_subject: dict[str, list[str]] = {}
    for key in sorted(set(real_keys)):
        parsed = SequenceKey.parse(key)
        if not parsed.is_real:
            raise InputError(f"{key}: the identity protocol draws only real-attribute sequences (combination 0)")
        by_subject.setdefault(parsed.subject, []).append(key)
    eligible = [s for s in sorted(by_subject) if len(by_subject[s]) >= sequences_per_subject]
    excluded = {s: len(by_subject[s]) for s in sorted(by_subject) if s not in eligible}
    rule = "given"
    if train_subjects is None:
        train_subjects = default_train_count(len(eligible))
        rule = (f"paper: {PAPER_TRAIN_SUBJECTS}" if len(eligible) >= PAPER_SUBJECTS else
                f"scaled: round({len(eligible)} x {PAPER_TRAIN_SUBJECTS}/{PAPER_SUBJECTS}) = {train_subjects}")
    if not 2 <= train_subjects <= len(eligible) - 2:
        raise InputError(f"train subjects must be between 2 and {len(eligible) - 2} (of {len(eligible)} subjects "
                         f"with {sequences_per_subject} real sequences), got {train_subjects}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(eligible))
    train = sorted(eligible[i] for i in order[:train_subjects])
    test = sorted(eligible[i] for i in order[train_subjects:])
    sequences = {}
    for subject in eligible:
        keys = by_subject[subject]
        chosen = [keys[i] for i in rng.choice(len(keys), sequences_per_subject, replace=False)]
        sequences[subject] = (chosen[0], *sorted(chosen[1:]))
    return IdentityProtocol(seed, sequences_per_subject, tuple(train), tuple(test), sequences, excluded, rule)


def canonical_json(protocol: IdentityProtocol) -> str:
    """Sorted keys, no spaces, ASCII, one final newline: the same bytes wherever it is written."""
    return json.dumps(protocol.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def write_protocol(protocol: IdentityProtocol, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, canonical_json(protocol))
    return path


def read_protocol(path: str | Path) -> IdentityProtocol:
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable identity protocol ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{path}: not an identity protocol (expected format {FORMAT!r})")
    try:
        sequences = {s: (entry["gallery"], *entry["probes"]) for s, entry in document["subjects"].items()}
        protocol = IdentityProtocol(int(document["seed"]), int(document["sequences_per_subject"]),
                                    tuple(document["train_subjects"]), tuple(document["test_subjects"]),
                                    sequences, dict(document["excluded"]), str(document["train_rule"]))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: identity protocol misses or mistypes a field ({error!r})") from None
    missing = [s for s in protocol.train_subjects + protocol.test_subjects if s not in sequences]
    if missing:
        raise InputError(f"{path}: subjects {missing[:3]} are listed but have no sequences")
    return protocol


def usable_real_keys(dataset_dir: str | Path) -> list[str]:
    """Keys of the dataset's real-attribute sequences that passed the quality filter and kept silhouettes."""
    from ragar_data.shards import ShardDataset

    columns = ["key", "combination", "quality_ok", "num_silhouettes"]
    table = ShardDataset(dataset_dir).table(columns).to_pydict()
    return sorted(key for key, combination, ok, count in zip(*(table[c] for c in columns))
                  if combination == 0 and ok and count > 0)


def protocol_for(dataset_dir: str | Path, path: str | Path, seed: int = DEFAULT_SEED,
                 train_subjects: int | None = None) -> IdentityProtocol:
    """The protocol file at ``path`` if it exists (its seed must match), else a new draw written there."""
    path = Path(path)
    if path.is_file():
        protocol = read_protocol(path)
        if protocol.seed != seed:
            raise InputError(f"{path}: protocol drawn with seed {protocol.seed}, not {seed}; use another output "
                             "folder or the same seed")
        if train_subjects is not None and train_subjects != len(protocol.train_subjects):
            raise InputError(f"{path}: protocol trains on {len(protocol.train_subjects)} subjects, not "
                             f"{train_subjects}; use another output folder")
        return protocol
    protocol = draw_protocol(usable_real_keys(dataset_dir), seed, train_subjects)
    write_protocol(protocol, path)
    return protocol
