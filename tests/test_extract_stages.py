"""The extraction's group processing and shard assembly, on arrays made here: per-sequence failures, outputs of
batched model stages split back per sequence, progress in frames, detector preparation, and shards assembled
from part tables byte-identical to the record path."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from ragar_data.errors import VideoError
from ragar_data.identity import SequenceKey
from ragar_data.pipelines.config import load_preset
from ragar_data.pipelines.decode import Clip, VideoInfo
from ragar_data.pipelines.detect import BackgroundDetector
from ragar_data.pipelines.runner import assemble_shards, write_part
from ragar_data.pipelines.sources import WorkUnit
from ragar_data.pipelines.processing import build_stages, process_group
from ragar_data.shards import make_record, read_table, table_to_records, write_shard


def moving_block_clip(frames=24, width=160, height=96, seed=0) -> Clip:
    """A textured still background and a dark block walking left to right."""
    rng = np.random.default_rng(seed)
    background = cv2.resize(rng.integers(90, 170, (height // 8, width // 8, 3)).astype(np.uint8), (width, height))
    video = []
    for t in range(frames):
        frame = background.copy()
        x = int(20 + (width - 50) * t / (frames - 1))
        frame[30:80, x:x + 12] = (30, 60, 140)
        video.append(frame)
    video = np.stack(video)
    return Clip(Path(f"clip{seed}.mp4"), VideoInfo(width, height, 25.0), list(video), video.copy(),
                np.arange(frames, dtype=np.int32), 1.0)


def unit(view: int) -> WorkUnit:
    key = SequenceKey("001", 0, "nm-01", view)
    return WorkUnit(key, Path(f"/videos/{view:03d}.mp4"), f"001/c0/nm-01/{view:03d}.mp4")


class FailingDetector(BackgroundDetector):
    """The background detector, failing on one clip."""

    def __init__(self, fail_on: Clip):
        super().__init__(refine_passes=0, camera_plates=False)
        self.fail_on = fail_on

    def detect_sequence(self, clip, plate=None):
        if clip is self.fail_on:
            raise RuntimeError("detector exploded")
        return super().detect_sequence(clip, plate)


class CountingPose:
    """A 2D pose stage that records its batch sizes and returns the box corner as every keypoint."""

    def __init__(self, fail: bool = False):
        self.batches, self.fail = [], fail

    def estimate(self, frames, boxes):
        if self.fail:
            raise ValueError("pose model refused the input")
        self.batches.append(len(frames))
        return np.repeat(np.concatenate([boxes[:, None, :2], np.ones((len(boxes), 1, 1))], axis=2), 17, axis=1)


@pytest.fixture(scope="module")
def stages():
    return build_stages(load_preset())


def run(stages, units, decoded, **changes):
    reports = []
    results = process_group(dataclasses.replace(stages, **changes), units, labels={}, config_hash="test",
                            decoded=decoded, progress=lambda key, frames: reports.append((key, frames)))
    per_key = {}
    for key, frames in reports:
        per_key[key] = per_key.get(key, 0) + frames
    return results, per_key, reports


def test_a_stage_failure_stays_with_its_sequence_and_progress_adds_up(stages):
    clips = [moving_block_clip(seed=s) for s in range(3)]
    units = [unit(v) for v in (0, 36, 72, 108)]
    decoded = [clips[0], VideoError("/videos/036.mp4: decoding failed: broken"), clips[1], clips[2]]
    results, per_key, reports = run(stages, units, decoded, detector=FailingDetector(fail_on=clips[1]))
    assert [r.key for r in results] == [str(u.key) for u in units]
    ok, decode_failed, detect_failed, ok_too = results
    assert ok.error is None and ok_too.error is None and len(ok.record["silhouettes"]) > 10
    assert decode_failed.error == {"sequence": str(units[1].key), "video": "/videos/036.mp4", "stage": "decode",
                                   "error": "VideoError: /videos/036.mp4: decoding failed: broken"}
    assert detect_failed.error["stage"] == "detect" and detect_failed.record is None
    assert detect_failed.error["error"].startswith("RuntimeError: detector exploded | ")
    assert "detect_sequence" in detect_failed.error["error"]  # the frame that raised
    # every decoded sequence reports exactly its frames, in several steps (not only at its end)
    assert per_key == {str(units[0].key): 24, str(units[2].key): 24, str(units[3].key): 24}
    assert sum(1 for key, _ in reports if key == str(units[0].key)) >= 4


def test_batched_model_stage_outputs_go_back_to_their_sequences(stages):
    clips = [moving_block_clip(frames=n, seed=s) for s, n in ((0, 24), (1, 17))]
    units = [unit(0), unit(36)]
    pose = CountingPose()
    results, per_key, _ = run(stages, units, clips, pose2d=pose, batch_size=7)
    assert all(r.error is None for r in results)
    assert max(pose.batches) == 7 and sum(pose.batches) == sum(len(r.record["boxes"]) for r in results)
    for result in results:  # each sequence gets the keypoints of its own boxes, in frame order
        keypoints, boxes = result.record["keypoints_2d"], result.record["boxes"]
        assert keypoints.shape == (len(boxes), 17, 3)
        np.testing.assert_allclose(keypoints[:, 0, :2], boxes[:, :2], atol=1e-4)
    assert per_key == {str(units[0].key): 24, str(units[1].key): 17}


def test_a_model_stage_error_fails_the_sequences_it_ran_on(stages):
    results, _, _ = run(stages, [unit(0), unit(36)], [moving_block_clip(seed=0), moving_block_clip(seed=1)],
                        pose2d=CountingPose(fail=True))
    assert [r.error["stage"] for r in results] == ["pose2d", "pose2d"]
    assert results[0].error["error"] == "ValueError: pose model refused the input"


def test_detector_preparation_is_a_method_of_the_detector(synth_videos, stages, tmp_path):
    from ragar_data.pipelines.sources import scan_tree

    class FrameDetector:
        def detect(self, frames):
            return [np.zeros((0, 5), np.float32) for _ in frames]

    units = scan_tree(synth_videos).units
    frame_stages = dataclasses.replace(stages, detector=FrameDetector())
    assert not frame_stages.sequence_detector and frame_stages.prepare_detector(units, tmp_path) == {}
    no_plates = dataclasses.replace(stages, detector=BackgroundDetector(camera_plates=False))
    assert no_plates.sequence_detector and no_plates.prepare_detector(units, tmp_path) == {}
    assert not (tmp_path / "backgrounds").exists()


def test_camera_plate_pass_is_announced(synth_videos, stages, tmp_path):
    from ragar_data.pipelines.sources import scan_tree

    lines = []
    plates = stages.prepare_detector(scan_tree(synth_videos).units, tmp_path, log=lines.append)
    assert sorted(plates) == [0, 90]
    # "..., leaving out the people the person detector finds..." when the person model files are present
    assert lines[0].startswith("estimating camera plates from 8 sequences of 2 camera(s)")
    lines.clear()
    stages.prepare_detector(scan_tree(synth_videos).units, tmp_path, log=lines.append)  # stored: no pass
    assert lines == []


@pytest.fixture(scope="module")
def synth_videos(tmp_path_factory):
    from ragar_data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, SynthConfig.small(subjects=2, seconds=0.5, width=160, height=90, combinations=(0,),
                                     conditions=("nm-01", "bg-01")), progress=False)
    return root / "videos"


def _records(count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for number in range(count):
        frames = 3 + number % 4
        key = SequenceKey(f"{number // 3 + 1:03d}", number % 3, "nm-01", 36 * (number % 10))
        records.append(make_record(
            key, source=f"{key}.mp4", image_width=320, image_height=180, fps=25.0,
            labels=rng.integers(-1, 2, 15).astype(np.int8), frame_index=np.arange(frames, dtype=np.int32),
            boxes=rng.random((frames, 4)).astype(np.float32), track_id=number if number % 2 else None,
            silhouettes=(rng.random((frames, 64, 64)) > 0.5).astype(np.uint8) * 255,
            silhouette_frame_index=np.arange(frames, dtype=np.int32),
            keypoints_2d=rng.random((frames, 17, 3)).astype(np.float32) if number % 3 else None,
            keypoints_2d_model="rtmpose-m" if number % 3 else None, illumination=0.5,
            quality_ok=bool(number % 2), quality_reasons=[] if number % 2 else ["too few frames"],
            pipeline_hash="abc"))
    return records


def test_shards_from_part_tables_are_the_bytes_of_the_record_path(tmp_path):
    records = _records(7)
    parts = []
    for record in records:
        parts.append(tmp_path / "parts" / f"{record['key']}.parquet")
        write_part(parts[-1], record, identity={"video": {"size": 1}, "labels": None})
    names = assemble_shards(tmp_path / "tables", parts, rows_per_shard=3)
    assert names == [f"shards/part-{n:05d}.parquet" for n in range(3)]
    # the previous path: every part decoded into a record and the records encoded again
    decoded = [table_to_records(read_table(p))[0] for p in sorted(parts, key=lambda p: p.stem)]
    for number, start in enumerate(range(0, 7, 3)):
        info = write_shard(tmp_path / "records", f"part-{number:05d}", decoded[start:start + 3])
        assert (tmp_path / "tables" / info.file).read_bytes() == (tmp_path / "records" / info.file).read_bytes()
    assert read_table(tmp_path / "tables" / names[0]).schema.metadata.keys() == {
        b"ragar_data.shard_schema_version"}  # the parts' source identity stays out of the shards


def test_a_clip_without_its_frames_gives_the_record_of_one_with_them(stages, tmp_path):
    """A long clip keeps no full-resolution frames (over the decode's budget) and its reduced copy is in a file:
    the detector's masks go to files too, the segmenter reads the frames again and the extraction releases the
    reduced copy after detection; the record and the masks are the same."""
    from ragar_data.pipelines.frame_store import FrameFile

    kept = moving_block_clip(seed=3)
    video = list(kept.frames)
    small = FrameFile(kept.small.shape[1:], np.uint8, folder=tmp_path)
    for image in kept.small:
        small.append(image)
    not_kept = dataclasses.replace(kept, frames=None, small=small, reader=lambda: iter(enumerate(video)))
    [expected] = process_group(stages, [unit(0)], labels={}, config_hash="test", decoded=[kept], keep_masks=True)
    [result] = process_group(stages, [unit(0)], labels={}, config_hash="test", decoded=[not_kept], keep_masks=True)
    assert expected.error is None and result.error is None and len(expected.record["silhouettes"]) > 10
    assert not_kept.small is None and kept.small is not None  # released after detection, only without frames
    for column in ("silhouettes", "boxes", "frame_index", "illumination", "silhouette_frame_index"):
        np.testing.assert_array_equal(np.asarray(result.record[column]), np.asarray(expected.record[column]))
    assert result.masks == expected.masks


def test_nothing_is_decoded_ahead_beside_a_long_clip(monkeypatch, stages):
    from ragar_data.pipelines import processing

    order, decoded_when_processed = [], {}

    def decode(stages, unit):
        order.append(unit.key.view)
        clip = moving_block_clip(frames=4)
        return dataclasses.replace(clip, frames=None) if unit.key.view == 90 else clip  # 90: over the budget

    def process(stages, units, decoded=None, **kwargs):
        decoded_when_processed[units[0].key.view] = list(order)
        return []

    monkeypatch.setattr(processing, "_decode", decode)
    monkeypatch.setattr(processing, "process_group", process)
    list(processing.iter_groups(stages, [[unit(view)] for view in (0, 90, 180, 270)]))
    assert order == [0, 90, 180, 270]
    assert decoded_when_processed[90] == [0, 90]  # the long clip is computed with nothing decoded beside it
    assert decoded_when_processed[180][:3] == [0, 90, 180]


def test_front_stages_ahead_in_the_prefetch_thread_give_the_same_results(monkeypatch, stages):
    """iter_groups detects and tracks the next group in its prefetch thread while the current one is computed:
    the records, the failures and the progress are those of process_group doing every stage itself."""
    import threading

    from ragar_data.pipelines import processing

    clips = {0: moving_block_clip(seed=0), 36: moving_block_clip(seed=1), 72: moving_block_clip(seed=2)}
    clips[108] = VideoError("/videos/108.mp4: decoding failed: broken")
    detector = BackgroundDetector(refine_passes=0, camera_plates=False)
    detector_threads = []
    original = detector.detect_sequence

    def detect_sequence(clip, plate=None):
        detector_threads.append(threading.current_thread().name)
        if clip.path == clips[72].path:
            raise RuntimeError("detector exploded")
        return original(clip, plate)

    def decode(stages, unit):
        clip = clips[unit.key.view]
        if isinstance(clip, Exception):
            raise clip
        return dataclasses.replace(clip, frames=list(clip.frames), small=clip.small.copy())

    detector.detect_sequence = detect_sequence
    here = dataclasses.replace(stages, detector=detector)
    groups = [[unit(0), unit(36)], [unit(72)], [unit(108)]]
    expected = [run(here, units, [decode(here, u) if not isinstance(clips[u.key.view], Exception)
                                  else clips[u.key.view] for u in units])[0] for units in groups]
    detector_threads.clear()
    monkeypatch.setattr(processing, "_decode", decode)
    reports = []
    got = list(processing.iter_groups(here, groups, labels={}, config_hash="test",
                                      progress=lambda key, frames: reports.append((key, frames))))
    assert detector_threads and all(name.startswith("prefetch") for name in detector_threads)
    assert [[r.key for r in group] for group in got] == [[r.key for r in group] for group in expected]
    for group_got, group_expected in zip(got, expected):
        for result, wanted in zip(group_got, group_expected):
            assert (result.error or {}).get("stage") == (wanted.error or {}).get("stage")
            if wanted.record is not None:
                for column in ("silhouettes", "boxes", "frame_index", "silhouette_frame_index"):
                    np.testing.assert_array_equal(np.asarray(result.record[column]),
                                                  np.asarray(wanted.record[column]))
                assert result.tracks == wanted.tracks
    assert got[1][0].error["stage"] == "detect" and got[2][0].error["stage"] == "decode"
    per_key = {}
    for key, frames in reports:
        per_key[key] = per_key.get(key, 0) + frames
    assert per_key == {str(unit(view).key): 24 for view in (0, 36, 72)}  # a decoded sequence: all its frames
