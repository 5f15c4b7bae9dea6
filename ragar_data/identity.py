"""Sequence identity: (subject, attribute combination, condition, view), its stable string key and raw layout.

A sequence is one walk of one subject seen by one view. Attribute labels belong to (subject, combination):
combination 0 is the subject's real gait, 1 and 2 are the simulated attribute combinations of RA-GAR.

Raw video layout (written by `ragar-data synth`, read by `ragar-data extract --videos` by default):
    <videos>/<subject>/c<combination>/<condition>/<view:03d>.mp4      e.g. 001/c0/nm-01/036.mp4
Names are ASCII and lower case; numbers are ASCII digits (`0.mp4` and `000.mp4` both mean view 0, so both in one
folder are an error). Any view 0..359 is accepted: other camera setups than RA-GAR's ten angles exist.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ragar_data.errors import InputError, RagarDataError

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "bg-01", "bg-02", "cl-01", "cl-02")
CONDITION_GROUPS = ("nm", "bg", "cl")
VIEWS = tuple(range(0, 325, 36))  # 0, 36, ..., 324 degrees
COMBINATIONS = (0, 1, 2)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")

_SUBJECT = re.compile(r"[A-Za-z0-9_]+")  # used with fullmatch: "$" would accept a final newline
# [0-9], not \d: \d and int() accept other scripts' digits ('١', '３'), which would alias ASCII keys
_KEY = re.compile(r"(?P<subject>[A-Za-z0-9_]+)-c(?P<combination>[0-9]+)-(?P<condition>[a-z]{2}-[0-9]{2})"
                  r"-(?P<view>[0-9]{3})")
_COMBINATION_FOLDER = re.compile(r"c([0-9]+)")
_VIEW_STEM = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True, order=True)
class SequenceKey:
    subject: str
    combination: int
    condition: str
    view: int

    def __post_init__(self):
        if not isinstance(self.subject, str) or not _SUBJECT.fullmatch(self.subject):
            raise InputError(f"subject id {self.subject!r} must be letters, digits or '_'")
        if self.combination not in COMBINATIONS:
            raise InputError(f"combination {self.combination} not in {COMBINATIONS}")
        if self.condition not in CONDITIONS:
            raise InputError(f"condition {self.condition!r} not in {CONDITIONS}")
        if not 0 <= self.view < 360:
            raise InputError(f"view {self.view} is not an angle in degrees 0..359")

    def __str__(self) -> str:
        return f"{self.subject}-c{self.combination}-{self.condition}-{self.view:03d}"

    @classmethod
    def parse(cls, key: str) -> SequenceKey:
        match = _KEY.fullmatch(key)
        if not match:
            raise InputError(f"not a sequence key: {key!r} (expected like '001-c0-nm-01-036')")
        return cls(match["subject"], int(match["combination"]), match["condition"], int(match["view"]))

    @property
    def condition_group(self) -> str:
        """'nm', 'bg' or 'cl'."""
        return self.condition[:2]

    @property
    def is_real(self) -> bool:
        """True for the subject's own gait (combination 0), False for simulated combinations."""
        return self.combination == 0

    @property
    def type_name(self) -> str:
        """OpenGait type folder name for this sequence: ``c<combination>-<condition>``."""
        return f"c{self.combination}-{self.condition}"

    @property
    def view_name(self) -> str:
        return f"{self.view:03d}"

    def raw_video_relpath(self, suffix: str = ".mp4") -> Path:
        return Path(self.subject) / f"c{self.combination}" / self.condition / f"{self.view:03d}{suffix}"

    @classmethod
    def from_raw_video_relpath(cls, relpath: str | Path) -> SequenceKey:
        parts = Path(relpath).parts
        if len(parts) != 4:
            raise InputError(f"{relpath}: expected <subject>/c<combination>/<condition>/<view>.mp4")
        for depth, name in enumerate(parts):
            problem = _name_problem(name, depth)
            if problem:
                raise InputError(f"{relpath}: {problem}")
        return cls(parts[0], int(parts[1][1:]), parts[2], int(Path(parts[3]).stem))


@dataclass(frozen=True)
class SequenceMeta:
    """Optional metadata of a sequence beside its key."""

    key: SequenceKey
    camera: str | None = None
    illumination: float | None = None  # mean scene brightness 0..1, when known
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ the raw tree

LEVELS = ("<subject>", "c<combination>", "<condition>", "<view>.mp4")


class RawLayoutError(RagarDataError, ValueError):
    """The raw video tree cannot be read as one video per sequence (two files give the same key)."""


@dataclass
class RawTree:
    """What a scan of the raw tree found: videos sorted by key, and every entry it did not read, with why."""

    videos: list[tuple[SequenceKey, Path]]
    skipped: list[tuple[Path, str]]


def _name_problem(name: str, depth: int) -> str | None:
    """Why `name` cannot stand at `depth` of the raw layout (0 = subject folder ... 3 = video file), or None."""
    if depth == 0:
        return None if _SUBJECT.fullmatch(name) else "subject id must be ASCII letters, digits or '_'"
    if depth == 1:
        match = _COMBINATION_FOLDER.fullmatch(name)
        if match and int(match[1]) in COMBINATIONS:
            return None
        case = f" (lower case: 'c{name[1:]}')" if name[:1] == "C" else ""
        return f"not a combination folder c0, c1 or c2{case}"
    if depth == 2:
        if name in CONDITIONS:
            return None
        case = " (lower case)" if name.lower() in CONDITIONS else ""
        return f"not a condition{case}; expected one of {', '.join(CONDITIONS)}"
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in VIDEO_SUFFIXES:
        return f"not a video file (suffix {suffix!r}; expected one of {', '.join(VIDEO_SUFFIXES)})"
    if not _VIEW_STEM.fullmatch(stem):
        return f"view {stem!r} is not an angle in degrees written in ASCII digits (e.g. 036)"
    if int(stem) >= 360:
        return f"view {int(stem)} is not an angle in degrees 0..359"
    return None


def _entries(folder: Path, skipped: list) -> list[os.DirEntry]:
    """Entries of `folder` by name; hidden ones (.DS_Store, partial copies) are not part of the layout."""
    try:
        with os.scandir(folder) as scan:
            return sorted((entry for entry in scan if not entry.name.startswith(".")), key=lambda e: e.name)
    except OSError as error:
        skipped.append((Path(folder), f"cannot read this folder: {error.strerror or error}"))
        return []


def _walk(folder: Path, depth: int, found: list, skipped: list) -> None:
    for entry in _entries(folder, skipped):
        path = Path(entry.path)
        is_dir = entry.is_dir()  # follows links: a linked subject or view folder is read like a real one
        if depth < 3 and not is_dir:
            skipped.append((path, f"a file where a {LEVELS[depth]} folder is expected"))
        elif depth == 3 and is_dir:
            skipped.append((path, f"a folder where {LEVELS[3]} files are expected (too deep)"))
        elif depth == 3 and not entry.is_file():
            skipped.append((path, "not a regular file (a broken link?)"))
        elif problem := _name_problem(entry.name, depth):
            skipped.append((path, problem))
        elif depth < 3:
            _walk(path, depth + 1, found, skipped)
        else:
            found.append(path)


def scan_raw_tree(root: str | Path) -> RawTree:
    """Every video of the raw layout under `root` and every entry skipped with its reason (hidden names aside).

    Raises `RawLayoutError` naming both files when two give the same key (`0.mp4` and `000.mp4`, `c0/` and
    `c00/`): keeping either would silently drop a real sequence.
    """
    root = Path(root)
    try:
        os.scandir(root).close()
    except OSError as error:
        raise FileNotFoundError(f"{root}: cannot read the videos folder: {error.strerror or error}") from error
    paths, skipped = [], []
    _walk(root, 0, paths, skipped)
    first_path: dict[SequenceKey, Path] = {}
    clashes = []
    for path in paths:
        key = SequenceKey.from_raw_video_relpath(path.relative_to(root))
        if key in first_path:
            clashes.append(f"{first_path[key]} and {path} are both sequence {key}")
        else:
            first_path[key] = path
    if clashes:
        raise RawLayoutError(f"{root}: {len(clashes)} sequence(s) have two videos; keep one of each:\n  "
                             + "\n  ".join(clashes))
    return RawTree(sorted(first_path.items()), sorted(skipped))


def scan_raw_videos(root: str | Path) -> list[tuple[SequenceKey, Path]]:
    """All videos under `root` in the raw layout, sorted by key (`scan_raw_tree` also lists what it skipped)."""
    return scan_raw_tree(root).videos
