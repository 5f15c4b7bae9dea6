"""Sequence identity: (subject, attribute combination, condition, view), its stable string key and raw layout.

A sequence is one walk of one subject seen by one view. Attribute labels belong to (subject, combination):
combination 0 is the subject's real gait, 1 and 2 are the simulated attribute combinations of RA-GAR.

Raw video layout (written by `ragar-data synth`, read by `ragar-data extract --videos` by default):
    <videos>/<subject>/c<combination>/<condition>/<view:03d>.mp4      e.g. 001/c0/nm-01/036.mp4
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ragar_data.errors import InputError

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "bg-01", "bg-02", "cl-01", "cl-02")
CONDITION_GROUPS = ("nm", "bg", "cl")
VIEWS = tuple(range(0, 325, 36))  # 0, 36, ..., 324 degrees
COMBINATIONS = (0, 1, 2)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")

_SUBJECT = re.compile(r"^[A-Za-z0-9_]+$")
_KEY = re.compile(r"^(?P<subject>[A-Za-z0-9_]+)-c(?P<combination>\d+)-(?P<condition>[a-z]{2}-\d{2})-(?P<view>\d{3})$")


@dataclass(frozen=True, order=True)
class SequenceKey:
    subject: str
    combination: int
    condition: str
    view: int

    def __post_init__(self):
        if not _SUBJECT.match(self.subject):
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
        match = _KEY.match(key)
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
        if len(parts) != 4 or not parts[1].startswith("c") or Path(parts[3]).suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"{relpath}: expected <subject>/c<combination>/<condition>/<view>.mp4")
        try:
            return cls(parts[0], int(parts[1][1:]), parts[2], int(Path(parts[3]).stem))
        except ValueError as error:
            raise InputError(f"{relpath}: {error}") from error


@dataclass(frozen=True)
class SequenceMeta:
    """Optional metadata of a sequence beside its key."""

    key: SequenceKey
    camera: str | None = None
    illumination: float | None = None  # mean scene brightness 0..1, when known
    extra: dict = field(default_factory=dict)


def scan_raw_videos(root: str | Path) -> list[tuple[SequenceKey, Path]]:
    """All videos under `root` in the raw layout, sorted by key; files elsewhere in the tree are ignored."""
    root = Path(root)
    found = []
    for path in root.rglob("*"):
        if path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file():
            continue
        try:
            found.append((SequenceKey.from_raw_video_relpath(path.relative_to(root)), path))
        except ValueError:
            continue
    return sorted(found)
