"""Synthetic generator: tree layout, CSV, resumability, ground-truth agreement, determinism, video round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ragar_data.annotations import read_annotations
from ragar_data.attributes import default_schema
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey, scan_raw_videos
from ragar_data.synth import (
    SynthConfig, generate, ground_truth_relpath, load_ground_truth, read_video, render_sequence,
    save_ground_truth, sequence_keys, subject_attributes, write_video,
)
from ragar_data.synth.body import ACTABLE

TINY = dict(subjects=2, combinations=(0, 1), views=(0, 90), conditions=("nm-01", "cl-01"), seconds=0.5,
            width=160, height=90)
# COCO-17 index -> H36M-17 index of the same body point (shoulders, elbows, wrists, hips, knees, ankles)
SHARED_JOINTS = {5: 11, 6: 14, 7: 12, 8: 15, 9: 13, 10: 16, 11: 4, 12: 1, 13: 5, 14: 2, 15: 6, 16: 3}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(**TINY)
    summary = generate(out, config, workers=2, progress=False)
    return out, config, summary


def test_tree_layout_and_annotations(tree):
    out, config, summary = tree
    keys = sequence_keys(config)
    assert summary["rendered"] == len(keys) == 16
    assert [key for key, _ in scan_raw_videos(out / "videos")] == sorted(keys)
    for key in keys:
        assert (out / "ground_truth" / ground_truth_relpath(key)).is_file()
    table = read_annotations(out / "annotations.csv")
    expected = subject_attributes(config)
    assert sorted(table) == sorted(expected) == [("001", 0), ("001", 1), ("002", 0), ("002", 1)]
    for pair, labels in expected.items():
        np.testing.assert_array_equal(table[pair], labels)
    settings = json.loads((out / "synth.json").read_text())
    assert SynthConfig.from_dict(settings["config"]) == config


def test_rerun_skips_finished_and_refuses_other_settings(tree):
    out, config, _ = tree
    video = out / "videos" / sequence_keys(config)[0].raw_video_relpath()
    before = video.stat().st_mtime_ns
    summary = generate(out, config, progress=False)
    assert summary["rendered"] == 0 and summary["skipped"] == 16
    assert video.stat().st_mtime_ns == before
    # a run killed mid-sequence: video written, ground truth not, a temporary file left behind
    key = sequence_keys(config)[3]
    truth_path = out / "ground_truth" / ground_truth_relpath(key)
    expected = load_ground_truth(truth_path)
    truth_path.unlink()
    stale = truth_path.with_name(f".{truth_path.name}.999.tmp")
    stale.write_bytes(b"partial")
    summary = generate(out, config, progress=False)
    assert summary["rendered"] == 1 and not stale.exists()
    np.testing.assert_array_equal(load_ground_truth(truth_path)["masks"], expected["masks"])
    with pytest.raises(RagarDataError, match="seconds"):
        generate(out, SynthConfig(**{**TINY, "seconds": 0.4}), progress=False)


def test_files_match_in_memory_render_from_other_process(tree):
    """Workers (spawned processes) wrote the tree; the same key rendered here gives the same truth."""
    out, config, _ = tree
    key = SequenceKey("002", 1, "cl-01", 90)
    frames, truth = render_sequence(config, key)
    stored = load_ground_truth(out / "ground_truth" / ground_truth_relpath(key))
    for name in ("boxes", "masks", "keypoints_2d", "keypoints_3d", "K", "R", "t", "labels", "illumination"):
        np.testing.assert_array_equal(stored[name], truth[name], err_msg=name)
    decoded = read_video(out / "videos" / key.raw_video_relpath())
    assert decoded.shape == frames.shape


def test_simulated_combinations_keep_the_body():
    config = SynthConfig(subjects=20, combinations=(0, 1, 2))
    labels = subject_attributes(config)
    names = default_schema().names
    actable = [names.index(n) for n in ACTABLE]
    fixed = [i for i in range(len(names)) if i not in actable]
    for subject in config.subject_ids:
        own, first, second = (labels[(subject, c)] for c in (0, 1, 2))
        np.testing.assert_array_equal(own[fixed], first[fixed])
        np.testing.assert_array_equal(own[fixed], second[fixed])
        assert (own != first).sum() >= 3 and (own != second).sum() >= 3
    counts = np.stack(list(labels.values()))
    assert all(len(np.unique(counts[:, i])) >= 2 for i in range(len(names)))


@pytest.mark.parametrize("distractors,crowded", [(0, False), (1, False), (1, True)])
def test_masks_boxes_keypoints_agree(distractors, crowded):
    config = SynthConfig.small(distractors=distractors, occlusion=crowded, seconds=1.0)
    key = SequenceKey("001", 0, "bg-01", 0 if crowded else 90)
    frames, truth = render_sequence(config, key)
    masks, boxes, keypoints = truth["masks"], truth["boxes"], truth["keypoints_2d"]
    T, H, W = masks.shape
    assert frames.shape == (T, H, W, 3) and frames.dtype == np.uint8
    assert masks.any(axis=(1, 2)).mean() > 0.9
    for t in range(T):
        rows, columns = np.nonzero(masks[t].any(axis=1))[0], np.nonzero(masks[t].any(axis=0))[0]
        if rows.size == 0:
            assert np.isnan(boxes[t]).all()
            continue
        np.testing.assert_array_equal(boxes[t], [columns[0], rows[0], columns[-1] + 1, rows[-1] + 1])
        visible = keypoints[t, :, 2] > 0
        x = np.round(keypoints[t, visible, 0]).astype(int)
        y = np.round(keypoints[t, visible, 1]).astype(int)
        assert masks[t, y, x].all()
    in_frame = ((keypoints[..., 0] >= 0) & (keypoints[..., 0] <= W - 1)
                & (keypoints[..., 1] >= 0) & (keypoints[..., 1] <= H - 1))
    if distractors:
        other = truth["distractor_boxes"]
        assert np.isfinite(other).all(axis=1).any()
        assert not (truth["masks"] & truth["distractor_masks"]).any()
        overlap = ((np.minimum(boxes[:, 2], other[:, 2]) > np.maximum(boxes[:, 0], other[:, 0]))
                   & (np.minimum(boxes[:, 3], other[:, 3]) > np.maximum(boxes[:, 1], other[:, 1])))
        assert overlap.any() and not overlap.all(), "the passer-by crosses behind the subject once"
    if crowded:
        assert (keypoints[..., 2][in_frame] == 0).any(), "the post should hide part of the subject"
    else:
        # nothing hides the subject (the passer-by walks behind it): projection and rasterisation agree on
        # every keypoint in the frame
        assert (keypoints[..., 2][in_frame] == 1).all()
    # 3D joints (camera frame) project through K onto the 2D keypoints of the same joints
    for coco, h36m in SHARED_JOINTS.items():
        points = truth["keypoints_3d"][:, h36m] @ truth["K"].T
        np.testing.assert_allclose(points[:, :2] / points[:, 2:], keypoints[:, coco, :2], atol=1e-2)
    assert np.allclose(truth["R"] @ truth["R"].T, np.eye(3), atol=1e-9)
    assert (-truth["R"].T @ truth["t"])[2] == pytest.approx(1.3)
    assert truth["illumination"].shape == (T,) and np.ptp(truth["illumination"]) > 0


def test_same_seed_identical_other_seed_different():
    config = SynthConfig.small(width=160, height=90, distractors=1)
    key = SequenceKey("002", 2, "nm-01", 90)
    frames_a, truth_a = render_sequence(config, key)
    frames_b, truth_b = render_sequence(config, key)
    np.testing.assert_array_equal(frames_a, frames_b)
    assert truth_a.keys() == truth_b.keys()
    for name in truth_a:
        np.testing.assert_array_equal(truth_a[name], truth_b[name], err_msg=name)
    frames_c, truth_c = render_sequence(SynthConfig.small(width=160, height=90, distractors=1, seed=1), key)
    assert (frames_a != frames_c).mean() > 0.1
    assert not np.array_equal(truth_a["masks"], truth_c["masks"])


def test_video_round_trip_within_codec_error(tmp_path):
    config = SynthConfig.small(width=160, height=90)
    frames, _ = render_sequence(config, SequenceKey("001", 0, "cl-01", 90))
    path = write_video(tmp_path / "v.mp4", iter(frames), config.fps, config.width, config.height)
    decoded = read_video(path)
    assert decoded.shape == frames.shape
    error = decoded.astype(np.float64) - frames
    psnr = 10 * np.log10(255.0 ** 2 / np.mean(error ** 2))
    assert np.abs(error).mean() < 6.0 and psnr > 30.0, (np.abs(error).mean(), psnr)
    assert not list(tmp_path.glob(".*tmp*"))


def test_ground_truth_file_round_trip_and_errors(tmp_path):
    config = SynthConfig.small(width=160, height=90, distractors=1)
    _, truth = render_sequence(config, SequenceKey("001", 0, "nm-01", 0))
    path = save_ground_truth(tmp_path / "a" / "000.npz", truth)
    loaded = load_ground_truth(path)
    np.testing.assert_array_equal(loaded["masks"], truth["masks"])
    np.testing.assert_array_equal(loaded["distractor_masks"], truth["distractor_masks"])
    with np.load(path) as archive:
        assert archive["masks"].shape == (truth["masks"].shape[0], 90, 20)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(RagarDataError, match="bad.npz"):
        load_ground_truth(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="lacks"):
        save_ground_truth(tmp_path / "c.npz", {"boxes": truth["boxes"]})


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="conditions"):
        SynthConfig(conditions=("nm-09",))
    with pytest.raises(ValueError, match="even"):
        SynthConfig(width=161)


def test_cli_writes_tree_and_preview(tmp_path):
    from ragar_data.cli.main import cli

    result = CliRunner().invoke(cli, [
        "synth", str(tmp_path / "out"), "--subjects", "1", "--views", "0,90", "--combinations", "0",
        "--conditions", "nm-01,bg-01", "--seconds", "0.3", "--width", "160", "--height", "90",
        "--distractors", "1", "--occlusion", "--quiet", "--preview"])
    assert result.exit_code == 0, result.output
    assert "4 sequences" in result.output
    import cv2

    sheet = cv2.imread(str(tmp_path / "out" / "preview.png"))
    assert sheet.shape == (2 * 180, 2 * 320, 3)
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "x"), "--conditions", "zz-01"])
    assert result.exit_code != 0 and "conditions" in result.output


def test_missing_codec_falls_back_with_a_message(tmp_path, capsys):
    config = SynthConfig.small(width=160, height=90, seconds=0.3)
    frames, _ = render_sequence(config, SequenceKey("001", 0, "nm-01", 0))
    path = write_video(tmp_path / "v.mp4", iter(frames), config.fps, config.width, config.height,
                       codec="no-such-codec")
    assert "no-such-codec" in capsys.readouterr().err
    decoded = read_video(path)
    assert decoded.shape == frames.shape and np.abs(decoded.astype(float) - frames).mean() < 8.0
