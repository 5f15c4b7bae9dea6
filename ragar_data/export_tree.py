"""Bookkeeping of exported pickle trees: which files an export wrote, resuming by content, removing what an
earlier export of the same dataset wrote and this one no longer does, and refusing folders it does not own.

`OUT/.ragar-export.json` lists every file the export wrote (relative path, sequence key, sha256) with the
dataset and the modality it came from. Rules:
- a file whose bytes equal what this export would write is kept (resume), whatever wrote it;
- a file listed in the manifest with its recorded sha256 is ours: rewritten when its content changed, and
  removed at the end of a complete run when this export no longer writes it;
- anything else is not ours: it is never deleted; it is overwritten only with `overwrite`. An OUT that holds
  files but no manifest, or the export of another dataset or modality, is refused unless `overwrite`.
Does not own the tree layout (`ragar_data.opengait`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path, PurePosixPath

from ragar_data.errors import RagarDataError
from ragar_data.atomic import atomic_write_bytes, remove_stale_temporaries

MANIFEST_NAME = ".ragar-export.json"
MANIFEST_FORMAT = "ragar-data export tree"
FLUSH_SECONDS = 30.0  # an interrupted run leaves a manifest at most this old


class ExportFolderError(RagarDataError):
    """The output folder holds files this export did not write."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked_relpath(out_root: Path, manifest: Path, relpath) -> str:
    """A manifest entry must name a file inside OUT: relative, no `..`, not through a symlink leading out."""
    parts = PurePosixPath(str(relpath)).parts
    if not parts or PurePosixPath(str(relpath)).is_absolute() or ".." in parts or "\\" in str(relpath):
        raise ExportFolderError(f"{manifest}: entry {relpath!r} is not a path inside {out_root}")
    if not (out_root / relpath).resolve().is_relative_to(out_root.resolve()):
        raise ExportFolderError(f"{manifest}: entry {relpath!r} leads outside {out_root} (symbolic link)")
    return str(relpath)


def read_manifest(out_root: Path) -> dict | None:
    """The manifest of OUT, checked; None when there is none."""
    path = out_root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportFolderError(f"{path}: unreadable export manifest ({error}); remove the folder's content or "
                                "choose another output folder") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise ExportFolderError(f"{path}: not a ragar-data export manifest")
    for relpath, entry in manifest["files"].items():
        _checked_relpath(out_root, path, relpath)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ExportFolderError(f"{path}: entry {relpath!r} has no sha256")
    return manifest


class TreeWriter:
    """Writes the files of one export into OUT under the rules of the module docstring."""

    def __init__(self, out_root: Path, dataset_dir: Path, modality: str, naming: str, overwrite: bool = False):
        self.out_root, self.overwrite = Path(out_root), overwrite
        self.identity = {"dataset": str(Path(dataset_dir).resolve()), "modality": modality}
        self.naming = naming
        previous = read_manifest(self.out_root)
        self._check_owner(previous)
        self.previous = previous["files"] if previous else {}
        self.current: dict[str, dict] = {}
        self.written = self.kept = 0
        self._last_flush = 0.0
        self._flush(complete=False)

    def _check_owner(self, previous: dict | None) -> None:
        if self.overwrite:
            return
        if previous is None:
            others = [p.name for p in self.out_root.iterdir()] if self.out_root.is_dir() else []
            if others:
                raise ExportFolderError(
                    f"{self.out_root}: the folder holds files not written by ragar-data export (e.g. "
                    f"{sorted(others)[:3]}); choose an empty or new folder, or pass --overwrite to write into it "
                    "(files at the exported paths are replaced, nothing else is deleted)")
            return
        found = {k: previous.get(k) for k in self.identity}
        if found != self.identity:
            raise ExportFolderError(
                f"{self.out_root}: holds the {found['modality']} export of {found['dataset']}, not the "
                f"{self.identity['modality']} export of {self.identity['dataset']}; choose another folder, or "
                "pass --overwrite to replace that export (its files are removed, others are left in place)")

    def _is_ours(self, relpath: str, path: Path) -> bool:
        entry = self.previous.get(relpath) or self.current.get(relpath)
        return entry is not None and path.is_file() and _sha256(path.read_bytes()) == entry["sha256"]

    def write(self, path: Path, data: bytes, key: str | None = None) -> bool:
        """Write `data` at `path` (inside OUT) unless it already holds exactly that; True when written."""
        relpath = path.relative_to(self.out_root).as_posix()
        unchanged = path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
        if not unchanged:
            if path.exists() and not self.overwrite and not self._is_ours(relpath, path):
                raise ExportFolderError(f"{path}: not written by this export (changed since, or another tool's "
                                        "file); pass --overwrite to replace it")
            remove_stale_temporaries(path)  # left by an interrupted atomic write
            atomic_write_bytes(path, data)
        self.written += not unchanged
        self.kept += unchanged
        self.current[relpath] = {"key": key, "sha256": _sha256(data)}
        if time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self._flush(complete=False)
        return not unchanged

    def _flush(self, complete: bool) -> None:
        files = self.current if complete else {**self.previous, **self.current}
        manifest = {"format": MANIFEST_FORMAT, "version": 1, **self.identity, "naming": self.naming,
                    "complete": complete, "files": dict(sorted(files.items()))}
        atomic_write_bytes(self.out_root / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
        self._last_flush = time.monotonic()

    def finish(self) -> tuple[list[str], list[str]]:
        """Remove files the earlier export wrote that this one did not (only when unchanged since), record the
        manifest; returns (removed, left: listed but changed since, so not ours to delete)."""
        removed, left = [], []
        for relpath, entry in sorted(self.previous.items()):
            path = self.out_root / relpath
            if relpath in self.current or not path.is_file():
                continue
            if _sha256(path.read_bytes()) != entry["sha256"]:
                left.append(relpath)
                continue
            path.unlink()
            removed.append(relpath)
            _remove_empty_parents(path.parent, self.out_root)
        self._flush(complete=True)
        return removed, left

    def foreign_files(self) -> int:
        """Files under OUT that this export did not write (left in place)."""
        count = 0
        for folder, _, names in os.walk(self.out_root):
            for name in names:
                relpath = (Path(folder) / name).relative_to(self.out_root).as_posix()
                count += relpath != MANIFEST_NAME and relpath not in self.current
        return count


def _remove_empty_parents(folder: Path, out_root: Path) -> None:
    while folder != out_root and folder.is_relative_to(out_root):
        try:
            folder.rmdir()
        except OSError:  # not empty: other files live there
            return
        folder = folder.parent
