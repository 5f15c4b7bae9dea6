"""What an extraction run knows about the folder it writes: who else writes it, what it holds, what is done.

Owns: the run lock (`OUT/extract/lock`), the check that the output folder holds no other dataset, the list of
shard files that extract runs wrote (the only ones a run may remove), and the source identity of a finished
part (the video's size, mtime and a digest of sampled bytes, the sequence's source path, frame range and labels,
the config hash), which decides whether the part can be reused. Does not own: the run folder's layout
(`runner.RunFolder`) or the shard format (`ragar_data.shards`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from ragar_data.errors import RagarDataError

PART_SOURCE_KEY = b"ragar_data.part_source"
SAMPLE_BYTES = 64 * 1024  # bytes read at the start, middle and end of a video for its digest
# shards that extract runs of ragar-data before run states listed them: `part-00000.parquet`, ...
_LEGACY_SHARD = re.compile(r"^part-\d{5}\.parquet$")


class OutputFolderError(RagarDataError):
    """The output folder cannot be written, is being written by another run, or holds another dataset."""


# ---------------------------------------------------------------------------------------------- the folder


@contextmanager
def run_lock(out_dir: Path, root: Path) -> Iterator[None]:
    """Hold `root/lock` (flock) for the run: a second run on the same folder refuses instead of mixing shards."""
    import fcntl

    path = root / "lock"
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as error:
        raise OutputFolderError(f"{out_dir}: cannot write the dataset folder ({error.strerror or error}); "
                                "choose a writable --out") from error
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise OutputFolderError(f"{out_dir}: another extract run is writing this folder (process {holder}, "
                                    f"lock {path}); wait for it to end or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock; the file stays (removing it would race with a waiting run)


def check_writable(folders: list[Path]) -> None:
    """A clear error up front when one of the existing `folders` cannot take a new file (read-only folder or
    file system), instead of a traceback after the whole run."""
    for folder in folders:
        if not folder.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise OutputFolderError(f"{folder}: cannot write here ({error.strerror or error}); choose a writable "
                                    "--out") from error


def source_of(videos: str | Path | None, manifest: str | Path | None) -> dict:
    """The run's input, as compared between runs into one folder."""
    if videos is not None:
        return {"videos": str(Path(videos).resolve())}
    return {"manifest": str(Path(manifest).resolve())}


def _source_text(source: dict) -> str:
    return next((f"{kind} {path}" for kind, path in source.items()), "an unknown source")


def previous_source(run_info: dict) -> dict:
    """The source of an earlier run's run.json (older run states name it only as given on the command line)."""
    if "source" in run_info:
        return run_info["source"]
    return source_of(run_info.get("videos"), run_info.get("manifest")) if (
        run_info.get("videos") or run_info.get("manifest")) else {}


def tracked_shards(out_dir: Path, run_info: dict | None) -> set[str]:
    """Shard files (relative to `out_dir`) that extract runs wrote here: listed in the run state, or for a run
    state of an older ragar-data, the `part-NNNNN.parquet` files it wrote."""
    if run_info is None:
        return set()
    if "shards" in run_info:
        return set(run_info["shards"])
    return {f"shards/{p.name}" for p in (out_dir / "shards").glob("*.parquet") if _LEGACY_SHARD.match(p.name)}


def check_output_folder(out_dir: Path, run_info: dict | None, source: dict, config_hash: str,
                        overwrite: bool) -> None:
    """Refuse an output folder that holds another dataset: one that extract did not write (imported shards,
    an unrelated index.json), or another source or config than this run's, unless `overwrite`. Shard files
    that no extract run wrote are never replaced or removed: their presence is refused even with `overwrite`."""
    shards = sorted(f"shards/{p.name}" for p in (out_dir / "shards").glob("*.parquet"))
    if run_info is None:
        found = ([f"{out_dir / 'index.json'}"] if (out_dir / "index.json").exists() else []) + shards
        if found:
            raise OutputFolderError(f"{out_dir}: holds a dataset that ragar-data extract did not write "
                                    f"({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); extract into "
                                    "another folder (extract never replaces files it did not write)")
        return
    before, before_hash = previous_source(run_info), run_info.get("config_hash")
    holds_rows = bool(shards or tracked_shards(out_dir, run_info))  # a run that failed every sequence holds none
    if (before != source or before_hash != config_hash) and holds_rows and not overwrite:
        what = " and ".join(w for w, differs in (("source", before != source), ("config", before_hash != config_hash))
                            if differs)
        raise OutputFolderError(
            f"{out_dir}: holds the dataset extracted from {_source_text(before)} with config {before_hash} "
            f"({len(run_info.get('sequences', []))} sequences); this run has another {what} "
            f"({_source_text(source)}, config {config_hash}). Choose another --out, or pass --overwrite to replace "
            "it (only the shards that extract runs wrote are removed)")
    untracked = [s for s in shards if s not in tracked_shards(out_dir, run_info)]
    if untracked:
        raise OutputFolderError(f"{out_dir}: {', '.join(untracked[:3])}{', ...' if len(untracked) > 3 else ''} "
                                f"({len(untracked)} shard file(s)) were not written by ragar-data extract; move them "
                                "out of the folder first (extract never replaces or removes them)")


# ---------------------------------------------------------------------------------------------- parts


def video_fingerprint(path: Path) -> dict | None:
    """Size, mtime and sha256 of the first, middle and last `SAMPLE_BYTES` (with the size) of a video; None when
    it cannot be read (the sequence then fails at decoding and reports why)."""
    try:
        stat = os.stat(path)
        digest = hashlib.sha256(str(stat.st_size).encode())
        with open(path, "rb") as handle:
            for offset in sorted({0, max(0, stat.st_size // 2 - SAMPLE_BYTES // 2),
                                  max(0, stat.st_size - SAMPLE_BYTES)}):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE_BYTES))
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sample_sha256": digest.hexdigest()}


def part_identity(unit, labels, config_hash: str) -> dict:
    """What a finished part was made from; a part is reused only when all of it is unchanged."""
    return {"video": video_fingerprint(unit.video), "source": unit.source, "start_frame": unit.start_frame,
            "end_frame": unit.end_frame, "labels": None if labels is None else [int(v) for v in labels],
            "config_hash": config_hash}


def read_part_identity(path: Path) -> dict | None:
    """The identity stored in a part file's metadata; None for a missing or unreadable part, or one written by
    an older ragar-data (no identity)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata[PART_SOURCE_KEY]) if PART_SOURCE_KEY in metadata else None
    except (OSError, ValueError, KeyError):  # pyarrow's ArrowInvalid is a ValueError
        return None


def why_redone(stored: dict | None, expected: dict) -> str:
    """Why a part of an earlier run is not reused (the part exists)."""
    if stored is None:
        return "its part has no source identity (older ragar-data) or is unreadable"
    if stored.get("video") != expected["video"]:
        return "its video changed (size, modification time or content)"
    if stored.get("labels") != expected["labels"]:
        return "its annotation labels changed"
    return "its source path or frame range changed"
