"""Atomic file writes: a reader sees the old file or the new one, never half a file.

Every writer goes through a temporary name in the target's folder (`.<name>.<random>.tmp<suffix>`), flushed to
disk, then renamed over the target; on any failure the temporary file or folder is removed. `atomic_path` gives
that name to writers that want a file name (PyAV, cv2, matplotlib, ONNX export, `save_pretrained` folders);
the others take bytes, text, JSON, a Parquet table or a torch object. A run killed with SIGKILL can leave a
temporary behind: `remove_stale_temporaries` clears those of one target before it is written again.
Does not own: what is written (shards, runs, checkpoints: their modules), or resumable downloads
(`ragar_data.weights` keeps its `.part` file on failure and publishes it with `replace_into`).
"""
from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_name(path: Path, suffix: str | None = None) -> Path:
    """A fresh name beside `path` that `remove_stale_temporaries(path)` recognises; `suffix` (default: the
    target's own, for writers that choose the format by extension) ends it."""
    ending = path.suffix if suffix is None else suffix
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{ending}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def replace_into(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Flush `temporary` (a file, or every file of a folder) to disk and rename it to `path`. Where a folder is
    involved on either side, the existing `path` is removed first (a rename cannot replace a non-empty folder)."""
    temporary, path = Path(temporary), Path(path)
    if temporary.is_dir():
        for file in (p for p in temporary.rglob("*") if p.is_file() and not p.is_symlink()):
            _fsync_file(file)
    else:
        _fsync_file(temporary)
    if (temporary.is_dir() and (path.exists() or path.is_symlink())) or (path.is_dir() and not path.is_symlink()):
        _remove(path)  # a rename replaces a file by a file, not a folder or by a folder
    os.replace(temporary, path)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary name for the writer to create `path` under (a file or a folder); when the block ends
    without an error it replaces `path`, otherwise it is removed. The target's folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path, suffix)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"{path}: the writer created nothing at {temporary}")
        replace_into(temporary, path)
    finally:
        if temporary.exists() or temporary.is_symlink():
            _remove(temporary)


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Remove the temporaries of `path` left by a write that was killed (`.<name>.*.tmp*` beside it)."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        _remove(stale)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path, suffix="") as temporary, open(temporary, "xb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, document, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Write `document` as JSON, with a final newline, to `path` atomically."""
    atomic_write_text(path, json.dumps(document, indent=indent, sort_keys=sort_keys) + "\n")


def atomic_write_parquet(path: str | os.PathLike, table, **write_options) -> None:
    """Write the pyarrow `table` to `path` atomically; `write_options` go to `pyarrow.parquet.write_table`."""
    import pyarrow.parquet as pq

    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, **write_options)


def atomic_torch_save(path: str | os.PathLike, obj) -> None:
    """`torch.save(obj)` to `path` atomically."""
    import torch

    with atomic_path(path) as temporary:
        torch.save(obj, temporary)
