"""Extract with hostile and careless inputs: every case checks the outcome and that nothing was lost.

Folders holding another dataset, typo'd options, videos replaced at the same path, changed labels, a second
run on the same folder, a read-only folder, and SIGKILL of a run with worker processes."""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ragar_data.cli.main import cli
from ragar_data.pipelines.config import apply_overrides, load_preset
from ragar_data.pipelines.run_state import OutputFolderError
from ragar_data.pipelines.runner import RunOptions, extract
from ragar_data.shards import ShardDataset, update_index, write_shard

QUIET = dict(log=lambda line: None)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """2 subjects x 2 conditions x 2 views, half a second of 160x90."""
    from ragar_data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, SynthConfig.small(seconds=0.5, width=160, height=90, combinations=(0,)), progress=False)
    return root


@pytest.fixture(scope="module")
def extracted(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("extracted") / "dataset"
    extract(out, load_preset(), videos=synth / "videos", options=RunOptions(progress=False), **QUIET)
    return out


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (run state excepted) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "extract" not in p.relative_to(folder).parts}


def run_cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["extract", *map(str, args), "--no-progress"])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def copy_of(extracted: Path, tmp_path: Path) -> Path:
    target = tmp_path / "dataset"
    shutil.copytree(extracted, target)
    return target


def test_folder_with_an_imported_dataset_is_refused_even_with_overwrite(synth, tmp_path):
    from ragar_data.identity import SequenceKey
    from ragar_data.shards import make_record

    out = tmp_path / "imported"
    record = make_record(SequenceKey("007", 0, "nm-01", 0), source="007/nm-01/000", image_width=64,
                         image_height=64, labels=np.full(15, -1, np.int8), frame_index=np.arange(3, dtype=np.int32),
                         boxes=np.zeros((3, 4), np.float32), silhouettes=np.zeros((3, 64, 64), np.uint8),
                         silhouette_frame_index=np.arange(3, dtype=np.int32), pipeline_hash="opengait")
    update_index(out, [write_shard(out, "opengait-00000", [record])])
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, output = run_cli("--videos", synth / "videos", "-o", out, *extra)
        assert code == 1 and "did not write" in output and "Traceback" not in output
    assert snapshot(out) == before and not (out / "extract").exists()


def test_another_source_is_refused_and_overwrite_replaces_only_what_extract_wrote(synth, extracted, tmp_path):
    out = copy_of(extracted, tmp_path)
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    shutil.copytree(synth / "videos", other)
    for a, b in (("001", "002"), ("002", "001")):  # the same keys, other videos: walkers swapped
        shutil.copyfile(synth / "videos" / a / "c0" / "nm-01" / "000.mp4", other / b / "c0" / "nm-01" / "000.mp4")
    before = snapshot(out)
    code, output = run_cli("--videos", other, "-o", out)
    assert code == 1 and "another source" in output and "--overwrite" in output
    assert snapshot(out) == before
    summary = extract(out, load_preset(), videos=other, options=RunOptions(progress=False, overwrite=True), **QUIET)
    assert summary.processed == 2 and summary.reused == 6  # the swapped videos are redone, not reused by key
    assert (out / "notes.txt").read_text() == "mine"
    source = ShardDataset(out).read_record("001-c0-nm-01-000")
    assert source["num_frames"] > 0 and summary.redone == 2


def test_a_typo_in_an_option_loses_nothing(synth, extracted, tmp_path):
    out = copy_of(extracted, tmp_path)
    before = snapshot(out)
    code, output = run_cli("--videos", synth / "videos", "-o", out, "--expect-resolution", "480by270")
    assert code == 1 and "Traceback" not in output
    code, output = run_cli("--videos", synth / "videos", "-o", out, "--set", "quality.min_valid_frames=3")
    assert code == 1 and "another config" in output
    assert snapshot(out) == before


def test_a_run_that_wrote_no_rows_does_not_block_the_corrected_command(synth, tmp_path):
    out = tmp_path / "dataset"
    code, _ = run_cli("--videos", synth / "videos", "-o", out, "--expect-resolution", "1920x1080")
    assert code == 3 and not list((out / "shards").glob("*.parquet"))  # every sequence failed: nothing to keep
    code, output = run_cli("--videos", synth / "videos", "-o", out)
    assert code == 0 and len(ShardDataset(out)) == 8, output


def test_a_forced_redo_that_fails_keeps_the_earlier_rows(synth, extracted, tmp_path, monkeypatch):
    from ragar_data.errors import VideoError
    from ragar_data.pipelines import processing as stages

    out = copy_of(extracted, tmp_path)
    before = snapshot(out)

    def broken_decoder(*args):
        raise VideoError("decoder unavailable for a moment")

    monkeypatch.setattr(stages, "_decode", broken_decoder)
    summary = extract(out, load_preset(), videos=synth / "videos", options=RunOptions(progress=False, force=True),
                      **QUIET)
    assert summary.failed == 8 and summary.processed == 0
    assert snapshot(out) == before  # same shards, same index


def test_a_shard_extract_did_not_write_is_never_removed(synth, extracted, tmp_path):
    out = copy_of(extracted, tmp_path)
    stranger = out / "shards" / "opengait-00000.parquet"
    shutil.copyfile(out / "shards" / "part-00000.parquet", stranger)
    before = snapshot(out)
    changed = apply_overrides(load_preset(), ["quality.min_valid_frames=3"])
    for config, overwrite in ((load_preset(), False), (changed, True)):  # a rerun, and a replacement
        with pytest.raises(OutputFolderError, match="opengait-00000.parquet"):
            extract(out, config, videos=synth / "videos", options=RunOptions(progress=False, overwrite=overwrite),
                    **QUIET)
    assert snapshot(out) == before


def test_a_video_replaced_at_the_same_path_is_redone_and_said(synth, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(synth / "videos", videos)
    out = tmp_path / "dataset"
    extract(out, load_preset(), videos=videos, options=RunOptions(progress=False), **QUIET)
    first = ShardDataset(out).read_record("001-c0-bg-01-090")
    shutil.copyfile(videos / "002" / "c0" / "bg-01" / "000.mp4", videos / "001" / "c0" / "bg-01" / "090.mp4")
    lines = []
    summary = extract(out, load_preset(), videos=videos, options=RunOptions(progress=False), log=lines.append)
    assert summary.processed == 1 and summary.reused == 7 and summary.redone == 1
    assert any("001-c0-bg-01-090" in line and "video changed" in line for line in lines)
    again = ShardDataset(out).read_record("001-c0-bg-01-090")
    assert not np.array_equal(again["boxes"], first["boxes"])


def test_changed_labels_redo_the_sequences_they_label(synth, tmp_path):
    out = tmp_path / "dataset"
    extract(out, load_preset(), videos=synth / "videos", annotations=synth / "annotations.csv",
            options=RunOptions(progress=False), **QUIET)
    before = ShardDataset(out).read_record("001-c0-nm-01-000")["labels"]
    lines = (synth / "annotations.csv").read_text().splitlines()
    row = lines[1].split(",")
    assert row[:2] == ["001", "0"]
    row[2] = {"male": "female", "female": "male"}[row[2]]  # the gender of subject 001
    edited = tmp_path / "annotations.csv"
    edited.write_text("\n".join([lines[0], ",".join(row)] + lines[2:]) + "\n")
    summary = extract(out, load_preset(), videos=synth / "videos", annotations=edited,
                      options=RunOptions(progress=False), **QUIET)
    assert summary.processed == 4 and summary.reused == 4  # the four sequences of subject 001
    after = ShardDataset(out).read_record("001-c0-nm-01-000")["labels"]
    assert after[0] != before[0] and np.array_equal(after[1:], before[1:])


def test_a_second_run_on_the_same_folder_is_refused(synth, extracted, tmp_path):
    out = copy_of(extracted, tmp_path)
    before = snapshot(out)
    with open(out / "extract" / "lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, output = run_cli("--videos", synth / "videos", "-o", out)
    assert code == 1 and "another extract run is writing this folder" in output and str(out) in output
    assert snapshot(out) == before


def test_read_only_output_folder_is_a_clear_error(synth, tmp_path):
    out = tmp_path / "dataset"
    out.mkdir()
    out.chmod(0o555)
    command = [sys.executable, "-m", "ragar_data.cli.main", "extract", "--videos", str(synth / "videos"),
               "-o", str(out), "--no-progress"]
    if os.geteuid() == 0:  # root writes into 0555 folders: mount the folder read-only in a namespace of its own
        if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
            pytest.skip("running as root without user namespaces: no read-only folder to test with")
        command = ["unshare", "-rm", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
                   'exec "$@"', str(out), *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "cannot write" in result.stderr and str(out) in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def _cmdline(pid: int) -> bytes:
    """The process's command line; empty once it has ended (a short-lived helper process can end meanwhile)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def test_workers_end_when_the_run_is_killed(synth, tmp_path):
    command = [sys.executable, "-m", "ragar_data.cli.main", "extract", "--videos", str(synth / "videos"),
               "-o", str(tmp_path / "dataset"), "--workers", "2", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 120, []
    parts = tmp_path / "dataset" / "extract"
    while time.monotonic() < deadline and process.poll() is None:  # once the workers are at work
        workers = [pid for pid in _children(process.pid) if b"spawn_main" in _cmdline(pid)]
        if len(workers) >= 2 and any(parts.glob("*/parts/*.parquet")):
            break
        time.sleep(0.02)
    assert len(workers) >= 2, "the run ended before its workers were seen"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.05)
    alive = [pid for pid in workers if _running(pid)]
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert alive == []
