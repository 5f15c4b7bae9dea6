"""QA metrics on cases computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from ragar_data.qa import box_iou, identity_switches, nmpjpe, pa_mpjpe, sequence_qa, summarise
from ragar_data.subject_masks import SubjectMasks


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [np.nan] * 4])
    assert box_iou(a, b)[0] == pytest.approx([50 / 150, 0.0, 0.0])


def test_identity_switches_count_changes_of_the_matched_track():
    truth_frames = np.arange(6)
    truth_boxes = np.tile([10.0, 10, 20, 40], (6, 1))
    # track 1 follows frames 0-2, track 2 takes over at 3-4 (switch), track 1 again at 5 (switch); frame 1 also
    # has a far-away track 3 that must not match
    frames = np.array([0, 1, 1, 2, 3, 4, 5])
    ids = np.array([1, 1, 3, 1, 2, 2, 1])
    boxes = np.array([[10, 10, 20, 40]] * 2 + [[100, 100, 110, 130]] + [[10, 10, 20, 40]] * 4, float)
    assert identity_switches(truth_boxes, truth_frames, frames, ids, boxes) == 2
    assert identity_switches(truth_boxes, truth_frames, frames[:4], ids[:4], boxes[:4]) == 0


def test_nmpjpe_ignores_scale_and_root_offset():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(4, 17, 3))
    predicted = 0.01 * (truth - truth[:, :1]) + 5.0  # other units, other root position
    assert nmpjpe(predicted, truth) == pytest.approx(0.0, abs=1e-9)
    assert nmpjpe(predicted + rng.normal(scale=0.01, size=predicted.shape), truth) > 0.1


def test_sequence_qa_iou_recall_and_missing_frames():
    height, width = 20, 30
    truth_masks = np.zeros((4, height, width), bool)
    truth_masks[0:3, 5:15, 10:20] = True  # frame 3: subject not visible (not counted)
    truth = {"frame_index": np.arange(4), "masks": truth_masks,
             "boxes": np.tile([10.0, 5, 20, 15], (4, 1)), "keypoints_2d": np.zeros((4, 17, 3)),
             "keypoints_3d": np.zeros((4, 17, 3))}
    extracted = np.zeros((2, height, width), bool)
    extracted[0, 5:15, 10:20] = True  # exact
    extracted[1, 5:15, 15:20] = True  # half
    masks = SubjectMasks.from_full(extracted)
    record = {"frame_index": np.array([0, 1]), "boxes": np.array([[10.0, 5, 20, 15], [15, 5, 20, 15]]),
              "keypoints_2d": None, "keypoints_3d": None, "quality_ok": True}
    row = sequence_qa("001-c0-nm-01-090", record, truth, None, masks)
    assert row.frames == 3
    assert row.silhouette_iou == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # frame 2 was not extracted: IoU 0
    assert row.recall == pytest.approx(2 / 3)  # frame 1's box IoU is exactly 0.5 (counts), frame 2 is missing
    # normalised 64x64: the half-width blob is centred by normalisation and covers half the square's columns
    assert row.silhouette_iou_64 == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    summary = summarise([row])
    assert summary["subject_found"] == 1 and summary["mean_silhouette_iou"] == pytest.approx(0.5)
    assert summary["mean_silhouette_iou_64"] == pytest.approx(0.5)


def _truth_pose(frames: int = 2, height: float = 100.0) -> dict:
    """Ground truth of one sequence with a 50 x `height` px box and 17 visible joints spread inside it."""
    rng = np.random.default_rng(1)
    keypoints = np.concatenate([rng.uniform(0, 50, (frames, 17, 2)), np.ones((frames, 17, 1))], axis=-1)
    keypoints[:, 15:, 2] = 0  # ankles hidden: never counted
    masks = np.ones((frames, 4, 4), bool)
    return {"frame_index": np.arange(frames), "masks": masks, "boxes": np.tile([0.0, 0, 50, height], (frames, 1)),
            "keypoints_2d": keypoints, "keypoints_3d": rng.normal(size=(frames, 17, 3))}


def _record(truth: dict, keypoints_2d=None, keypoints_3d=None) -> dict:
    return {"frame_index": truth["frame_index"], "boxes": truth["boxes"], "keypoints_2d": keypoints_2d,
            "keypoints_3d": keypoints_3d, "quality_ok": True}


def test_pck_of_perturbed_ground_truth():
    truth = _truth_pose()
    predicted = truth["keypoints_2d"].copy()
    predicted[:, 5:10, 0] += 7.0  # 0.07 box heights: out at 0.05, in at 0.1
    predicted[:, 10:15, 1] -= 20.0  # 0.2: out at both
    predicted[:, 15:, :2] += 500.0  # hidden in the truth: not counted
    predicted[:, :, 2] = 0.0  # the predicted score does not matter
    row = sequence_qa("001-c0-nm-01-090", _record(truth, predicted), truth, None, None)
    assert row.pck() == pytest.approx([5 / 15, 10 / 15])
    assert row.keypoints_2d_visible == [2] * 15 + [0, 0]
    # a second view where every visible joint is exact
    exact = sequence_qa("001-c0-nm-01-000", _record(truth, truth["keypoints_2d"]), truth, None, None)
    pck = summarise([row, exact])["keypoints_2d_pck"]
    assert pck["all"] == pytest.approx({"0.05": 20 / 30, "0.1": 25 / 30})
    assert pck["per_view"]["090"] == pytest.approx({"0.05": 5 / 15, "0.1": 10 / 15})
    assert pck["per_view"]["000"] == {"0.05": 1.0, "0.1": 1.0}
    assert pck["per_joint"]["nose"] == {"0.05": 1.0, "0.1": 1.0}
    assert pck["per_joint"]["left_elbow"] == {"0.05": 0.5, "0.1": 1.0}  # COCO joint 7: 7 px off in view 090
    assert pck["per_joint"]["right_hip"] == {"0.05": 0.5, "0.1": 0.5}  # joint 12: 20 px off in view 090
    assert pck["per_joint"]["left_ankle"] == {"0.05": None, "0.1": None}


def test_pa_mpjpe_is_zero_under_a_similarity_and_known_otherwise():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(3, 17, 3))
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))  # a proper rotation
    assert pa_mpjpe(0.3 * truth @ rotation + [1.0, -2.0, 5.0], truth) == pytest.approx(np.zeros(3), abs=1e-9)
    # a perturbation E with zero mean and orthogonal to the centred truth X keeps the rotation at identity,
    # the scale at |X|^2 / (|X|^2 + |E|^2), and leaves the residual (s - 1) X + s E
    centred = truth - truth.mean(axis=1, keepdims=True)
    expected = []
    perturbed = []
    for frame in centred:
        basis = np.linalg.qr(np.concatenate([np.ones((17, 1)), frame], axis=1))[0]  # span of 1 and X's columns
        noise = rng.normal(scale=0.2, size=(17, 3))
        noise -= basis @ (basis.T @ noise)
        scale = (frame ** 2).sum() / ((frame ** 2).sum() + (noise ** 2).sum())
        expected.append(np.linalg.norm((scale - 1) * frame + scale * noise, axis=-1).mean())
        perturbed.append(frame + noise)
    assert pa_mpjpe(np.asarray(perturbed) @ rotation.T * 2.0, truth) == pytest.approx(expected, rel=1e-9)
    # a mirror image is not a rotation: it keeps an error
    assert (pa_mpjpe(truth * [-1.0, 1.0, 1.0], truth) > 0.1).all()


def test_sequence_qa_reports_pa_mpjpe_in_millimetres():
    truth = _truth_pose()
    root_relative = truth["keypoints_3d"] - truth["keypoints_3d"][:, :1]  # as lifters give it
    predicted = root_relative.copy()
    predicted[:, 3] += [0.0, 0.0, 0.017]  # one joint 17 mm off (truth in metres)
    row = sequence_qa("001-c0-nm-01-090", _record(truth, None, predicted), truth, None, None)
    # the alignment spreads the error over the joints; its squared sum is at most the unaligned one, so the
    # mean error is at most the root mean square 17 / sqrt(17) mm
    assert 0.5 < row.keypoints_3d_pa_mpjpe_mm <= 17.0 / np.sqrt(17) + 1e-9
    exact = sequence_qa("001-c0-nm-01-000", _record(truth, None, 0.5 * root_relative), truth, None, None)
    assert exact.keypoints_3d_pa_mpjpe_mm == pytest.approx(0.0, abs=1e-6)
    summary = summarise([row, exact])
    assert summary["keypoints_3d_pa_mpjpe_mm_per_view"] == pytest.approx(
        {"000": 0.0, "090": row.keypoints_3d_pa_mpjpe_mm}, abs=1e-6)


def test_table_shows_pck_and_pose_columns_only_when_pose_stages_ran():
    from ragar_data.qa import QAReport, format_table

    truth = _truth_pose()
    predicted = truth["keypoints_2d"].copy()
    predicted[:, 5:10, 0] += 7.0
    posed = [sequence_qa("001-c0-nm-01-090", _record(truth, predicted), truth, None, None)]
    stages = {"preset": "x", "segment": "foreground", "pose2d": "blazepose", "lift3d": None}
    lines = format_table(QAReport("run", "truth", posed, summarise(posed), stages))
    assert "PCK.05" in lines[0]
    assert any(line.split() == ["all", "0.667", "1.000"] for line in lines)  # 10 of 15 visible joints within 5 px
    assert any(line.split() == ["left_elbow", "0.000", "1.000"] for line in lines)
    plain = [sequence_qa("001-c0-nm-01-090", _record(truth), truth, None, None)]
    lines = format_table(QAReport("run", "truth", plain, summarise(plain), {**stages, "pose2d": None}))
    assert "PCK" not in "\n".join(lines)
