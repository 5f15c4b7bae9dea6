"""QA metrics on cases computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from ragar_data.qa import box_iou, identity_switches, nmpjpe, sequence_qa, summarise
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
