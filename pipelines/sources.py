"""Inputs of an extraction run: the raw video tree or a CSV manifest, as a sorted list of work units, plus
every entry that was not read and why (`Inputs`).

Manifest CSV (UTF-8, header required, one row per sequence; start/end frames optional, end exclusive):
    video,subject,combination,condition,view[,start_frame,end_frame]
    recordings/day1_cam3.mp4,001,0,nm-01,36,120,310
Relative video paths are resolved against the manifest's folder. Malformed rows, unknown columns, two rows of
one sequence and two rows of the same video and frame range are errors naming the line. A row whose video file
is missing is kept as a unit, so the runner logs it in the failures log and goes on; it is listed with its line
before the run, and `strict` refuses it.

Raw tree: the layout of `ragar_data.identity`; entries that break it are listed with the reason and skipped
(`strict` refuses them), and two videos of one sequence are an error naming both. Views outside RA-GAR's ten
angles are accepted with a note (other camera setups exist).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ragar_data.errors import InputError
from ragar_data.identity import VIEWS, SequenceKey, scan_raw_tree

MANIFEST_COLUMNS = ("video", "subject", "combination", "condition", "view")
OPTIONAL_COLUMNS = ("start_frame", "end_frame")
_INTEGER = re.compile(r"[0-9]+")  # ASCII only: int() also takes '١', ' 1', '1_0' and '+1'
_LISTED = 20  # entries printed per list before "... and N more"


@dataclass(frozen=True)
class WorkUnit:
    key: SequenceKey
    video: Path
    source: str  # path as written in the dataset's `source` column (relative to the videos root / manifest)
    start_frame: int = 0
    end_frame: int | None = None


@dataclass
class Inputs:
    """The units of a run and what the scan did not read."""

    units: list[WorkUnit]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): not extracted
    missing: list[str] = field(default_factory=list)  # "<manifest>:<line>: <video>" kept as units, will fail
    notes: list[str] = field(default_factory=list)  # accepted, worth a look (views outside RA-GAR's)

    def report(self) -> list[str]:
        """Lines to print before the run: skipped entries, missing videos and notes, each list capped."""
        lines = []
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} entr{'y' if len(self.skipped) == 1 else 'ies'} of the input:")
            lines += _capped([f"  {path}: {reason}" for path, reason in self.skipped])
        if self.missing:
            lines.append(f"{len(self.missing)} manifest row(s) name a missing video (they will fail):")
            lines += _capped([f"  {entry}" for entry in self.missing])
        lines += [f"note: {note}" for note in self.notes]
        return lines

    def check_strict(self) -> None:
        """Under --strict: refuse the run when anything of the input would be skipped or is missing."""
        if self.skipped or self.missing:
            listing = "\n".join(self.report())
            raise InputError(f"--strict: the input has {len(self.skipped)} skipped entr(ies) and {len(self.missing)} "
                             f"missing video(s); nothing was extracted:\n{listing}")


def _capped(lines: list[str]) -> list[str]:
    more = [f"  ... and {len(lines) - _LISTED} more"] if len(lines) > _LISTED else []
    return lines[:_LISTED] + more


def read_inputs(videos: str | Path | None = None, manifest: str | Path | None = None,
                strict: bool = False) -> Inputs:
    """The units of `videos` (raw tree) or `manifest` (CSV); with `strict`, anything skipped or missing fails."""
    if (videos is None) == (manifest is None):
        raise InputError("give exactly one of videos (raw tree) or manifest (CSV)")
    inputs = scan_tree(videos) if videos is not None else read_manifest(manifest)
    inputs.notes += _view_notes(inputs.units)
    if strict:
        inputs.check_strict()
    return inputs


def _view_notes(units: list[WorkUnit]) -> list[str]:
    counts: dict[int, int] = {}
    for unit in units:
        if unit.key.view not in VIEWS:
            counts[unit.key.view] = counts.get(unit.key.view, 0) + 1
    return [f"view {view} ({count} sequence(s)) is not one of RA-GAR's views 0, 36, ..., 324"
            for view, count in sorted(counts.items())]


def scan_tree(videos: str | Path) -> Inputs:
    root = Path(videos)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: videos folder not found")
    tree = scan_raw_tree(root)
    units = [WorkUnit(key, path, path.relative_to(root).as_posix()) for key, path in tree.videos]
    skipped = [(str(path), reason) for path, reason in tree.skipped]
    if not units:
        listing = "".join(f"\n  {line}" for line in _capped([f"{p}: {r}" for p, r in skipped]))
        raise InputError(f"{root}: no videos in the raw layout <subject>/c<combination>/<condition>/<view>.mp4"
                         + (f"; skipped:{listing}" if skipped else ""))
    return Inputs(units, skipped)


# ------------------------------------------------------------------------------------------ manifest


def read_manifest(manifest: str | Path) -> Inputs:
    from ragar_data.annotations import TextEncodingError, decode_utf8

    path = Path(manifest)
    try:
        text = decode_utf8(path.read_bytes())
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read manifest: {error.strerror or error}") from error
    except TextEncodingError as error:
        raise InputError(f"{path}:{error.line}: {error.reason}") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [cell.strip() for cell in next(reader, [])]
    except csv.Error as error:
        raise InputError(f"{path}:1: malformed CSV header: {error}") from None
    _check_manifest_header(path, header)
    units, missing, problems, line_of = [], [], [], {}
    while True:
        line = reader.line_num + 1  # the line the record begins on (blank lines and quoted line breaks count)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(f"{path}:{line}: malformed CSV: {error}")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        try:
            unit = _manifest_unit(path, header, cells)
        except ValueError as error:
            problems.append(f"{path}:{line}: {error}")
            continue
        clip = (unit.video.resolve(), unit.start_frame, unit.end_frame)
        if unit.key in line_of or clip in line_of:
            first = line_of.get(unit.key) or line_of[clip]
            what = f"sequence {unit.key}" if unit.key in line_of else "the same video and frame range"
            problems.append(f"{path}:{line}: {what} is already on line {first}")
            continue
        line_of[unit.key] = line_of[clip] = line
        units.append(unit)
        if not unit.video.is_file():
            missing.append(f"{path}:{line}: {unit.source} (not a file)")
    if problems:
        listing = "\n  ".join(_capped(problems))
        raise InputError(f"{path}: {len(problems)} bad manifest row(s):\n  {listing}")
    if not units:
        raise InputError(f"{path}: manifest has no rows")
    return Inputs(sorted(units, key=lambda u: u.key), missing=missing)


def _check_manifest_header(path: Path, header: list[str]) -> None:
    expected = f"{','.join(MANIFEST_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]"
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    # an unknown column is refused, not dropped: a misspelt `start_frames` would extract the whole video
    known = MANIFEST_COLUMNS + OPTIONAL_COLUMNS
    unknown = [c or f"#{i + 1} (empty name)" for i, c in enumerate(header) if c not in known]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or repeated:
        found = "; ".join(f"{what} {names}" for what, names in
                          (("missing", missing), ("unknown", unknown), ("repeated", repeated)) if names)
        raise InputError(f"{path}:1: manifest header: {found}; expected {expected}")


def _manifest_unit(path: Path, header: list[str], cells: list[str]) -> WorkUnit:
    if len(cells) != len(header):
        raise InputError(f"expected {len(header)} fields as in the header, found {len(cells)}")
    row = {name: cell.strip() for name, cell in zip(header, cells)}
    if not row["video"]:
        raise InputError("empty video path")
    key = SequenceKey(row["subject"], _integer(row, "combination"), row["condition"], _integer(row, "view"))
    start = _integer(row, "start_frame") if row.get("start_frame") else 0
    end = _integer(row, "end_frame") if row.get("end_frame") else None
    if end is not None and end <= start:
        raise InputError(f"frame range [{start}, {end}) is empty (end_frame is exclusive)")
    video = Path(row["video"])
    resolved = video if video.is_absolute() else path.parent / video
    return WorkUnit(key, resolved, row["video"], start, end)


def _integer(row: dict, column: str) -> int:
    if not _INTEGER.fullmatch(row[column]):
        raise InputError(f"{column} {row[column]!r} is not a non-negative integer in ASCII digits")
    return int(row[column])
