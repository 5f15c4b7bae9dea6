"""Inputs of an extraction run: the raw video tree or a CSV manifest, as a sorted list of work units.

Manifest CSV (header required, one row per sequence; start/end frames optional, end exclusive):
    video,subject,combination,condition,view[,start_frame,end_frame]
    recordings/day1_cam3.mp4,001,0,nm-01,36,120,310
Relative video paths are resolved against the manifest's folder. A row pointing to a missing file is kept as a
unit so the runner logs it in the failures log (and goes on); malformed rows are errors naming the line.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ragar_data.errors import InputError
from ragar_data.identity import SequenceKey, scan_raw_videos

MANIFEST_COLUMNS = ("video", "subject", "combination", "condition", "view")
OPTIONAL_COLUMNS = ("start_frame", "end_frame")


@dataclass(frozen=True)
class WorkUnit:
    key: SequenceKey
    video: Path
    source: str  # path as written in the dataset's `source` column (relative to the videos root / manifest)
    start_frame: int = 0
    end_frame: int | None = None


def units_from_tree(videos: str | Path) -> list[WorkUnit]:
    root = Path(videos)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: videos folder not found")
    units = [WorkUnit(key, path, path.relative_to(root).as_posix()) for key, path in scan_raw_videos(root)]
    if not units:
        raise InputError(f"{root}: no videos in the raw layout <subject>/c<combination>/<condition>/<view>.mp4")
    return units


def units_from_manifest(manifest: str | Path) -> list[WorkUnit]:
    path = Path(manifest)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read manifest: {error}") from error
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: manifest header lacks {missing}; expected "
                         f"{','.join(MANIFEST_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]")
    units, seen, problems = [], {}, []
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            key = SequenceKey(row["subject"], int(row["combination"]), row["condition"], int(row["view"]))
            start = int(row["start_frame"]) if row.get("start_frame") else 0
            end = int(row["end_frame"]) if row.get("end_frame") else None
            if start < 0 or (end is not None and end <= start):
                raise InputError(f"frame range [{start}, {end}) is empty or negative")
        except (ValueError, KeyError) as error:
            problems.append(f"{path}:{line}: {error}")
            continue
        if key in seen:
            problems.append(f"{path}:{line}: sequence {key} already listed on line {seen[key]}")
            continue
        seen[key] = line
        video = Path(row["video"])
        resolved = video if video.is_absolute() else path.parent / video
        units.append(WorkUnit(key, resolved, row["video"], start, end))
    if problems:
        raise InputError("bad manifest rows:\n  " + "\n  ".join(problems))
    if not units:
        raise InputError(f"{path}: manifest has no rows")
    return sorted(units, key=lambda u: u.key)
