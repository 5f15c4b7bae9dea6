"""End-to-end extraction on a tiny synthetic set: shards, qa, bad inputs, resume after SIGKILL, Ray engine."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ragar_data.pipelines.config import apply_overrides, load_preset
from ragar_data.pipelines.run_state import OutputFolderError
from ragar_data.pipelines.runner import RunOptions, extract
from ragar_data.shards import ShardDataset, read_index

QUIET = dict(log=lambda line: None)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """2 subjects x 2 conditions x 2 lateral views, 2 s of 320x180, with a second walker."""
    from ragar_data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, SynthConfig.small(distractors=1, views=(90, 270), seconds=2.0, combinations=(0,)), progress=False)
    return root


@pytest.fixture(scope="module")
def baseline(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    summary = extract(out, load_preset(), videos=synth / "videos", annotations=synth / "annotations.csv",
                      options=RunOptions(progress=False, keep_masks=True), **QUIET)
    return out, summary


def shard_bytes(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.parquet"))}


def test_extract_writes_labelled_shards(synth, baseline):
    out, summary = baseline
    assert summary.sequences == summary.processed == 8 and summary.failed == 0
    dataset = ShardDataset(out)
    assert len(dataset) == 8 and read_index(out)["sequences"] == 8
    from ragar_data.annotations import read_annotations

    labels = read_annotations(synth / "annotations.csv")
    record = dataset.read_record("002-c0-nm-01-090")
    assert np.array_equal(record["labels"], labels[("002", 0)])
    assert record["silhouettes"].shape[1:] == (64, 64) and record["num_silhouettes"] >= 20
    assert record["keypoints_2d"] is None and record["boxes"].shape == (record["num_frames"], 4)
    assert record["pipeline_hash"] == summary.config_hash and record["image_width"] == 320
    # one background plate per camera (4 sequences each), kept in the run state for reruns and resumes
    plates = sorted(p.name for p in (out / "extract" / summary.config_hash / "backgrounds").glob("*.npz"))
    assert plates == ["090.npz", "270.npz"]


def test_qa_on_tiny_set(synth, baseline):
    from ragar_data.qa import run_qa

    out, _ = baseline
    report = run_qa(out, synth)
    s = report.summary
    assert s["sequences"] == 8
    # measured on this set with the default preset (per-camera background plates, merged passer-by cut from
    # the subject box): IoU 0.84 (was 0.76), recall 1.00, subject found 8/8, 0 switches. At 320x180 the
    # silhouettes are ~80 px tall and boundary pixels weigh heavily; the ISSUE's 0.90 is measured at 640x360 on
    # benchmarks/extract_quality.py (0.916 over 120 sequences, frontal and back views included).
    assert s["subject_found"] == 8 and s["identity_switches"] == 0
    assert s["mean_silhouette_iou"] > 0.8 and s["subject_track_recall"] > 0.95
    assert json.loads((out / "extract" / "qa.json").read_text())["summary"]["sequences"] == 8


def test_viz_draws_overlays(synth, baseline, tmp_path):
    import cv2

    from ragar_data.pipelines.viz import write_visualisation

    out, _ = baseline
    png = write_visualisation(out, "001-c0-nm-01-090", synth / "videos", tmp_path / "strip.png", frames=4, height=90)
    strip = cv2.imread(str(png))
    assert strip.shape == (90, 4 * 160, 3)
    green = (strip[..., 1] > 200) & (strip[..., 0] < 80) & (strip[..., 2] < 80)  # the subject's box colour
    assert green.sum() > 50
    clip = write_visualisation(out, "001-c0-nm-01-090", synth / "videos", tmp_path / "clip.mp4")
    assert clip.stat().st_size > 1000


def test_rerun_skips_and_force_redoes(synth, baseline, tmp_path):
    out, _ = baseline
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    again = extract(copy, load_preset(), videos=synth / "videos", annotations=synth / "annotations.csv",
                    options=RunOptions(progress=False, keep_masks=True), **QUIET)
    assert again.processed == 0 and again.reused == 8
    assert shard_bytes(copy) == shard_bytes(out)
    changed = apply_overrides(load_preset(), ["quality.min_valid_frames=25"])
    with pytest.raises(OutputFolderError, match="another config"):  # another config is another dataset
        extract(copy, changed, videos=synth / "videos", options=RunOptions(progress=False), **QUIET)
    assert shard_bytes(copy) == shard_bytes(out)
    redo = extract(copy, changed, videos=synth / "videos", annotations=synth / "annotations.csv",
                   options=RunOptions(progress=False, overwrite=True), **QUIET)
    assert redo.processed == 8 and redo.config_hash != again.config_hash  # a new config hash redoes everything


def _bad_inputs(synth: Path, root: Path) -> Path:
    videos = root / "videos"
    shutil.copytree(synth / "videos" / "001" / "c0", videos / "001" / "c0")
    (videos / "002" / "c0" / "nm-01").mkdir(parents=True)
    good = (videos / "001" / "c0" / "nm-01" / "090.mp4").read_bytes()
    (videos / "002" / "c0" / "nm-01" / "000.mp4").write_bytes(good[: len(good) // 3][:64] + os.urandom(4000))
    (videos / "002" / "c0" / "nm-01" / "036.mp4").write_bytes(b"")
    (videos / "002" / "c0" / "nm-01" / "072.mp4").mkdir()  # a folder named like a video: unreadable
    return videos


def test_bad_inputs_go_to_failures_log(synth, tmp_path):
    videos = _bad_inputs(synth, tmp_path)
    out = tmp_path / "out"
    summary = extract(out, load_preset(), videos=videos, options=RunOptions(progress=False), **QUIET)
    failures = [json.loads(line) for line in (out / "extract" / "failures.jsonl").read_text().splitlines()]
    failed = {f["sequence"]: f for f in failures}
    assert set(failed) == {"002-c0-nm-01-000", "002-c0-nm-01-036"}
    # the folder named like a video is not a sequence: listed with the reason and counted, not failed
    assert len(summary.skipped_inputs) == 1 and "072.mp4: a folder where" in summary.skipped_inputs[0]
    assert all(f["stage"] == "decode" and f["error"] for f in failures)
    assert summary.processed == 4 and len(ShardDataset(out)) == 4

    # wrong resolution, and a manifest row pointing to a missing file
    manifest = tmp_path / "manifest.csv"
    rows = ["video,subject,combination,condition,view,start_frame,end_frame",
            f"{videos}/001/c0/nm-01/090.mp4,001,0,nm-01,90,5,25",
            "missing/recording.mp4,003,0,nm-01,0,,",
            f"{videos}/002/c0/nm-01/072.mp4,004,0,nm-01,0,,"]
    manifest.write_text("\n".join(rows) + "\n")
    config = apply_overrides(load_preset(), ["decode.expect_resolution=1920x1080"])
    out2 = tmp_path / "out2"
    summary = extract(out2, config, manifest=manifest, options=RunOptions(progress=False), **QUIET)
    failures = {json.loads(l)["sequence"]: json.loads(l)["error"]
                for l in (out2 / "extract" / "failures.jsonl").read_text().splitlines()}
    assert "expected 1920x1080" in failures["001-c0-nm-01-090"]
    assert "no such file" in failures["003-c0-nm-01-000"] and "004-c0-nm-01-000" in failures
    summary = extract(out2, load_preset(), manifest=manifest, options=RunOptions(progress=False, overwrite=True),
                      **QUIET)
    record = ShardDataset(out2).read_record("001-c0-nm-01-090")
    assert summary.processed == 1 and record["frame_index"].min() >= 5 and record["frame_index"].max() < 25


def _run_and_kill(command: list[str], target: Path, parts_done: int, delay: float, timeout: float = 300) -> bool:
    """Start an extraction, SIGKILL it `delay` s after `parts_done` sequences are finished; True if it was killed.

    The moment is tied to the run's own progress, not to wall-clock time, so it lands mid-run on fast and slow
    machines alike (parts_done=0: once the run has started, i.e. during the background plates or the first
    sequence)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started_marker = target / "extract" / "run.json"
    deadline = time.monotonic() + timeout

    def reached() -> bool:
        if parts_done == 0:
            return started_marker.is_file()
        return len(list((target / "extract").glob("*/parts/*.parquet"))) >= parts_done
    while process.poll() is None and not reached() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return killed


@pytest.mark.slow
def test_sigkill_and_resume_give_identical_shards(synth, baseline, tmp_path):
    out, _ = baseline
    target = tmp_path / "killed"
    command = [sys.executable, "-m", "ragar_data.cli.main", "extract", "--videos", str(synth / "videos"),
               "--out", str(target), "--annotations", str(synth / "annotations.csv"), "--keep-masks",
               "--no-progress"]
    rng = random.Random(0)
    # three kills at random moments: while starting up, then after 3 and after 6 of the 8 sequences
    kills = [_run_and_kill(command, target, parts_done, rng.uniform(0.0, 0.15)) for parts_done in (0, 3, 6)]
    assert kills[:2] == [True, True], kills
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert shard_bytes(target) == shard_bytes(out)
    assert not list((target / "extract").rglob("*.tmp"))


@pytest.mark.slow
def test_ray_engine_matches_local(synth, baseline, tmp_path):
    pytest.importorskip("ray")
    out, _ = baseline
    summary = extract(tmp_path / "ray", load_preset(), videos=synth / "videos",
                      annotations=synth / "annotations.csv",
                      options=RunOptions(progress=False, engine="ray", workers=2, keep_masks=True), **QUIET)
    assert summary.processed == 8
    assert shard_bytes(tmp_path / "ray") == shard_bytes(out)
