"""BlazePose person detector (`pose_detection.tflite` from the mediapipe 0.10.14 wheel) and the rotated region
of interest (ROI) the landmark model runs on.

Every number follows mediapipe's own graphs (mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt,
pose_landmark/pose_detection_to_roi.pbtxt):
- input: the image fitted into 224x224 keeping its aspect (zero border), RGB scaled to [-1, 1];
- SSD anchors (SsdAnchorsCalculator): 5 layers, strides 8, 16, 32, 32, 32, aspect ratio 1.0 plus the default
  interpolated scale (2 anchors per layer and cell), offset 0.5, fixed anchor size (w = h = 1): 28x28x2 +
  14x14x2 + 7x7x6 = 2254 anchors, row by row, x fastest;
- decoding (TensorsToDetectionsCalculator): 12 values per anchor in x, y order (`reverse_output_order`): box
  centre, width, height, then 4 keypoints, each divided by 224 and added to the anchor centre (sizes scaled
  by the anchor size); score = sigmoid(clip(logit, +-100)), kept from 0.2;
- weighted NMS (NonMaxSuppressionCalculator, WEIGHTED, IoU 0.3): the best box absorbs every box overlapping
  it by more than 0.3, its location and keypoints become their score-weighted mean, its score stays its own;
- ROI (AlignmentPointsRectsCalculator + RectTransformationCalculator): centre = keypoint 0 (mid-hip), side =
  2 x distance to keypoint 1 (the full-body scale point) x 1.25, square, rotation = 90 deg - angle of the
  vector keypoint 0 -> 1 (y up), so an upright person has rotation 0.
The detection's own box is the face; `detect` reports instead the square around the full-body circle
(centre keypoint 0, radius to keypoint 1), which is what a person box means to the tracker.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ragar_data.errors import InputError
from ragar_data import weights as registry
from ragar_data.pipelines.backends.litert import LiteRTModel
from ragar_data.pipelines.backends.runtime import check_boxes, check_frames

DETECTOR_INPUT = 224
STRIDES = (8, 16, 32, 32, 32)
NUM_ANCHORS = 2254
MIN_SCORE = 0.2
NMS_IOU = 0.3
ROI_SCALE = 1.25
SCORE_CLIP = 100.0


# ------------------------------------------------------------------------------------------------ anchors
def ssd_anchors(input_size: int = DETECTOR_INPUT, strides=STRIDES, anchors_per_layer: int = 2,
                offset: float = 0.5) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] as SsdAnchorsCalculator with fixed anchor size: consecutive layers of
    the same stride share one grid with `anchors_per_layer` anchors per layer in each cell (one per aspect
    ratio plus the interpolated scale)."""
    centres = []
    layer = 0
    while layer < len(strides):
        same = 1
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        cells = int(np.ceil(input_size / strides[layer]))
        ys, xs = np.meshgrid((np.arange(cells) + offset) / cells, (np.arange(cells) + offset) / cells,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, same * anchors_per_layer, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


# ----------------------------------------------------------------------------------------------- decoding
def sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # no overflow warning for large negative logits

    return expit(x)


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                      input_size: int = DETECTOR_INPUT):
    """One image's (N, 12) regressions and (N,) or (N, 1) logits -> boxes (N, 4) x1, y1, x2, y2 and
    keypoints (N, 4, 2), both normalised to the input square, and scores (N,) (sigmoid of the clipped logit)."""
    raw = np.asarray(raw_boxes, np.float64).reshape(len(anchors), -1)
    centres = anchors[:, :2].astype(np.float64)
    box_centre = raw[:, 0:2] / input_size + centres
    size = raw[:, 2:4] / input_size
    boxes = np.concatenate([box_centre - size / 2, box_centre + size / 2], axis=1)
    keypoints = raw[:, 4:12].reshape(-1, 4, 2) / input_size + centres[:, None, :]
    scores = sigmoid(np.clip(np.asarray(raw_scores, np.float64).reshape(-1), -SCORE_CLIP, SCORE_CLIP))
    return boxes, keypoints, scores


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1, y1, x2, y2 box with (N, 4) boxes (0 where they do not overlap)."""
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(high - low, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU,
                 min_score: float = MIN_SCORE):
    """mediapipe's WEIGHTED non-maximum suppression over the detections scoring at least `min_score`:
    returns boxes (M, 4), keypoints (M, K, 2), scores (M,), best first."""
    keep = np.flatnonzero(scores >= min_score)
    order = keep[np.argsort(-scores[keep], kind="stable")]
    out_boxes, out_keypoints, out_scores = [], [], []
    while len(order):
        best = order[0]
        overlapping = box_iou(boxes[best], boxes[order]) > iou_threshold
        overlapping[0] = True
        members = order[overlapping]
        weights = scores[members][:, None]
        out_boxes.append((boxes[members] * weights).sum(0) / weights.sum())
        out_keypoints.append((keypoints[members] * weights[:, :, None]).sum(0) / weights.sum())
        out_scores.append(scores[best])
        order = order[~overlapping]
    count = len(out_scores)
    return (np.asarray(out_boxes, np.float64).reshape(count, 4),
            np.asarray(out_keypoints, np.float64).reshape(count, keypoints.shape[1], 2),
            np.asarray(out_scores, np.float64).reshape(count))


def rois_from_keypoints(keypoints: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """(N, >=2, 2) pixel keypoints (0 = mid-hip, 1 = full-body scale point) -> (N, 4) ROIs centre x, centre y,
    side (pixels) and rotation (radians, mediapipe's sign: positive turns the crop clockwise on screen)."""
    keypoints = np.asarray(keypoints, np.float64)
    centre, scale_point = keypoints[:, 0], keypoints[:, 1]
    vector = scale_point - centre
    side = 2.0 * np.hypot(vector[:, 0], vector[:, 1]) * scale
    rotation = np.pi / 2 - np.arctan2(-vector[:, 1], vector[:, 0])
    rotation = rotation - 2 * np.pi * np.floor((rotation + np.pi) / (2 * np.pi))  # NormalizeRadians
    return np.stack([centre[:, 0], centre[:, 1], side, rotation], axis=1)


def rois_from_boxes(boxes: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """Upright square ROIs around person boxes (centre, long side x `scale`), for a box from a tracker: the same
    framing as the detector's ROI of an upright person whose box spans its full-body circle."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
    return np.stack([centre[:, 0], centre[:, 1], np.maximum(side, 1.0), np.zeros(len(boxes))], axis=1)


def roi_matrices(rois: np.ndarray, output_size: int) -> np.ndarray:
    """(N, 2, 3) affine maps from crop coordinates to image coordinates for each ROI: crop point (u, v) ->
    centre + R(rotation) . ((u, v) / size - 0.5) x side (mediapipe's rotated sub-rectangle). Both in
    continuous coordinates, as mediapipe's normalised ones: pixel i spans [i, i + 1), its centre is i + 0.5."""
    rois = np.asarray(rois, np.float64)
    cos, sin = np.cos(rois[:, 3]), np.sin(rois[:, 3])
    step = rois[:, 2] / output_size
    matrices = np.zeros((len(rois), 2, 3))
    matrices[:, 0, 0], matrices[:, 0, 1] = cos * step, -sin * step
    matrices[:, 1, 0], matrices[:, 1, 1] = sin * step, cos * step
    half = output_size / 2
    matrices[:, 0, 2] = rois[:, 0] - (matrices[:, 0, 0] * half + matrices[:, 0, 1] * half)
    matrices[:, 1, 2] = rois[:, 1] - (matrices[:, 1, 0] * half + matrices[:, 1, 1] * half)
    return matrices


def pixel_index_matrices(matrices: np.ndarray) -> np.ndarray:
    """Continuous-coordinate affines -> the same maps between pixel indices (what cv2 warps take):
    index = M (index' + 0.5) - 0.5."""
    shifted = np.array(matrices, np.float64)
    shifted[:, :, 2] += shifted[:, :, :2].sum(axis=2) * 0.5 - 0.5
    return shifted


def crop_rois(frames: np.ndarray, rois: np.ndarray, output_size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of each frame's ROI (bilinear, zero border)."""
    matrices = pixel_index_matrices(roi_matrices(rois, output_size))
    crops = np.empty((len(frames), output_size, output_size, 3), np.uint8)
    for index, (frame, matrix) in enumerate(zip(frames, matrices)):
        crops[index] = cv2.warpAffine(frame, matrix, (output_size, output_size), flags=cv2.INTER_LINEAR |
                                      cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crops


def crop_to_image(points: np.ndarray, rois: np.ndarray, output_size: int) -> np.ndarray:
    """(N, K, 2) crop pixels -> image pixels through each ROI's matrix."""
    matrices = roi_matrices(rois, output_size)
    return np.einsum("nij,nkj->nki", matrices[:, :, :2], points) + matrices[:, None, :, 2]


# ----------------------------------------------------------------------------------------------- backend
@dataclass
class PersonDetections:
    """One frame's people: body boxes (N, 5) x1, y1, x2, y2, score; the 4 detector keypoints (N, 4, 2) in
    pixels (mid-hip, full-body scale point, mid-shoulder, upper-body scale point); ROIs (N, 4)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    rois: np.ndarray


class BlazePoseDetector:
    """Detector backend: `detect(frames (B, H, W, 3) RGB uint8) -> [(N, 5) x1, y1, x2, y2, score]`, the square
    around each person's full-body circle; `detect_people` also returns keypoints and landmark ROIs, and
    `detect_in_boxes` looks for people inside given boxes (grown by `box_padding`) instead of the whole frame."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, min_score: float = MIN_SCORE, iou: float = NMS_IOU,
                 box_padding: float = 1.5, threads: int | None = None, **options):
        if options:
            raise InputError(f"BlazePoseDetector: unknown options {sorted(options)}")
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "blazepose")
        self.name = spec.name if spec else path.name
        self.path = path / "pose_detection.tflite" if path.is_dir() else path
        self.model = LiteRTModel(self.path, threads, batched=False)  # the graph fixes the batch at 1
        self.anchors = ssd_anchors()
        self.min_score = min_score
        self.iou = iou
        self.box_padding = box_padding

    def detect_windows(self, frames: np.ndarray, windows: np.ndarray) -> list[PersonDetections]:
        """People in square windows (N, 4) centre x, centre y, side, 0 of each frame (zero border outside)."""
        crops = crop_rois(frames, windows, DETECTOR_INPUT)
        raw_boxes, raw_scores = self.model.run(crops.astype(np.float32) / 127.5 - 1.0)
        results = []
        for index, window in enumerate(windows):
            boxes, keypoints, scores = decode_detections(raw_boxes[index], raw_scores[index], self.anchors)
            _, keypoints, scores = weighted_nms(boxes, keypoints, scores, self.iou, self.min_score)
            points = crop_to_image(keypoints.reshape(1, -1, 2) * DETECTOR_INPUT, window[None], DETECTOR_INPUT)
            points = points.reshape(-1, 4, 2)
            rois = rois_from_keypoints(points)
            radius = rois[:, 2:3] / (2 * ROI_SCALE)
            body = np.concatenate([points[:, 0] - radius, points[:, 0] + radius, scores[:, None]], axis=1)
            results.append(PersonDetections(body.astype(np.float32), points.astype(np.float32), rois))
        return results

    def detect_people(self, frames: np.ndarray) -> list[PersonDetections]:
        frames = check_frames(frames)
        height, width = frames.shape[1:3]
        windows = np.tile([[width / 2, height / 2, max(width, height), 0.0]], (len(frames), 1))
        return self.detect_windows(frames, windows)

    def detect_in_boxes(self, frames: np.ndarray, boxes: np.ndarray) -> list[PersonDetections]:
        frames = check_frames(frames)
        boxes = check_boxes(boxes, len(frames))
        return self.detect_windows(frames, rois_from_boxes(boxes, self.box_padding))

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        return [people.boxes for people in self.detect_people(frames)]
