"""Atomic writes: the target holds the old content or the new one, and no temporary survives a failure."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ragar_data.atomic import (
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    remove_stale_temporaries,
)
from ragar_data.errors import VideoError


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_bytes_json_parquet_and_torch_round_trip(tmp_path):
    import torch

    atomic_write_bytes(tmp_path / "a" / "data.bin", b"first")
    atomic_write_bytes(tmp_path / "a" / "data.bin", b"second")
    atomic_write_json(tmp_path / "doc.json", {"b": 1, "a": [1, 2]}, indent=1, sort_keys=True)
    atomic_write_parquet(tmp_path / "t.parquet", pa.table({"x": [1, 2, 3]}), compression="zstd")
    atomic_torch_save(tmp_path / "w.pt", {"w": torch.arange(3)})
    assert (tmp_path / "a" / "data.bin").read_bytes() == b"second"
    assert (tmp_path / "doc.json").read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=1) + "\n"
    assert pq.read_table(tmp_path / "t.parquet")["x"].to_pylist() == [1, 2, 3]
    assert torch.load(tmp_path / "w.pt", weights_only=True)["w"].tolist() == [0, 1, 2]
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "a") == []


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "shared.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.bin").stat().st_mode & 0o777 == 0o644


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    import torch

    target = tmp_path / "checkpoint.pt"
    atomic_torch_save(target, {"step": 1})
    with pytest.raises(Exception):
        atomic_torch_save(target, {"step": 2, "unpicklable": lambda: None})
    with pytest.raises(RuntimeError, match="half"):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half a checkpoint")
            raise RuntimeError("half written")
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert leftovers(tmp_path) == []


def test_a_writer_that_creates_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="created nothing"):
        with atomic_path(tmp_path / "never.bin"):
            pass
    assert not (tmp_path / "never.bin").exists()


def test_synth_video_writer_leaves_no_temporary_on_failure(tmp_path):
    from ragar_data.synth.video import write_video

    frames = [np.zeros((32, 48, 3), np.uint8), np.zeros((30, 48, 3), np.uint8)]  # the second has the wrong shape
    with pytest.raises(VideoError, match="shape"):
        write_video(tmp_path / "clip.mp4", frames, 10, 48, 32, codec="mpeg4")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_replaces_a_folder_and_a_failed_folder_is_removed(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "config.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    with pytest.raises(OSError):
        with atomic_path(target) as temporary:
            temporary.mkdir()
            (temporary / "weights.bin").write_bytes(b"partial")
            raise OSError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    assert leftovers(tmp_path) == []


def test_writers_keep_the_extension_for_format_sniffing_writers(tmp_path):
    with atomic_path(tmp_path / "strip.png") as temporary:
        assert temporary.suffix == ".png" and temporary.parent == tmp_path
        temporary.write_bytes(b"png")
    assert (tmp_path / "strip.png").read_bytes() == b"png"


def test_stale_temporaries_of_one_target_are_removed(tmp_path):
    target = tmp_path / "000.mp4"
    stale = [tmp_path / ".000.mp4.1234.tmp", tmp_path / ".000.mp4.ab12cd.tmp.mp4"]
    for path in stale:
        path.write_bytes(b"killed midway")
    (tmp_path / ".000.mp4.dir.tmp").mkdir()
    keep = [tmp_path / "000.mp4", tmp_path / ".018.mp4.1234.tmp", tmp_path / "notes.tmp"]
    for path in keep:
        path.write_bytes(b"keep")
    remove_stale_temporaries(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
