"""BlazePose landmarks (`pose_landmark_full.tflite` from the mediapipe 0.10.14 wheel) on a person's region of
interest, and three stage backends that share one run of it: 2D pose (COCO-17 for the shard), a person mask
(segmenter) and metric 3D pose (H36M-17 lifter from the world landmarks).

Decoding as mediapipe's graphs (pose_landmark_by_roi_cpu.pbtxt, tensors_to_pose_landmarks_and_segmentation.pbtxt):
- input: the ROI (square, possibly rotated; `blazepose_detect`) warped to 256x256, RGB in [0, 1];
- outputs: 39 landmarks x (x, y, z, visibility, presence) in input pixels (the first 33 are the body points,
  33-34 auxiliary ROI points), the pose flag (a probability, thresholded at 0.5 upstream), segmentation logits
  256x256, 64x64x39 heatmaps, 39 x 3 world landmarks (metres, origin mid-hip);
- visibility and presence are logits: upstream applies a sigmoid (`visibility_activation: SIGMOID`), so do we;
- x, y refined from the heatmaps (RefineLandmarksFromHeatmapCalculator, kernel 7): where the largest sigmoid
  in the 7x7 window around a landmark is >= 0.5, its position becomes the sigmoid-weighted mean of the window;
- landmarks projected back through the ROI; world landmarks rotated by the ROI's rotation only
  (WorldLandmarkProjectionCalculator); mask = sigmoid of the logits warped back to the frame.

Scores of `keypoints_2d`: sigmoid(visibility) of each landmark, the probability that it is visible (not
occluded) as mediapipe reports it; every score of a frame whose pose flag is below 0.5 (no person in the ROI,
where upstream drops the frame) is 0. Does not own the detector or ROI geometry (`blazepose_detect`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ragar_data.errors import InputError, RagarDataError
from ragar_data import weights as registry
from ragar_data.pipelines.backends.blazepose_detect import (BlazePoseDetector, crop_rois, crop_to_image,
                                                            pixel_index_matrices, roi_matrices, rois_from_boxes,
                                                            sigmoid)
from ragar_data.pipelines.backends.litert import LiteRTModel
from ragar_data.pipelines.backends.runtime import check_boxes, check_frames
from ragar_data.subject_masks import full_masks

LANDMARK_INPUT = 256
NUM_LANDMARKS = 39
BODY_LANDMARKS = 33
HEATMAP_KERNEL = 7
MIN_REFINE_CONFIDENCE = 0.5
PRESENCE_THRESHOLD = 0.5

BLAZEPOSE_KEYPOINTS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
# COCO-17 joint i is BlazePose landmark BLAZEPOSE_TO_COCO[i] (same anatomical point, names as above).
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


# ----------------------------------------------------------------------------------------------- decoding
def refine_from_heatmaps(points: np.ndarray, heatmaps: np.ndarray, kernel: int = HEATMAP_KERNEL,
                         min_confidence: float = MIN_REFINE_CONFIDENCE) -> np.ndarray:
    """(B, K, 2) landmarks normalised to the crop, (B, h, w, K) heatmap logits -> refined (B, K, 2): the
    sigmoid-weighted mean of the kernel window (clipped at the map's edge) around each landmark's cell, where
    the window's largest sigmoid reaches `min_confidence`; landmarks outside the map stay as they are."""
    batch, height, width, joints = heatmaps.shape
    cols = (points[..., 0] * width).astype(np.int64)  # truncation toward zero, as upstream's float -> int
    rows = (points[..., 1] * height).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    offsets = np.arange(kernel) - (kernel - 1) // 2
    window_cols = cols[..., None] + offsets  # (B, K, k)
    window_rows = rows[..., None] + offsets
    valid = ((window_rows[..., :, None] >= 0) & (window_rows[..., :, None] < height) &
             (window_cols[..., None, :] >= 0) & (window_cols[..., None, :] < width))  # (B, K, k, k)
    b = np.arange(batch)[:, None, None, None]
    k = np.arange(joints)[None, :, None, None]
    values = heatmaps[b, window_rows.clip(0, height - 1)[..., :, None], window_cols.clip(0, width - 1)[..., None, :], k]
    confidence = np.where(valid, sigmoid(values.astype(np.float64)), 0.0)
    total = confidence.sum(axis=(2, 3))
    safe = np.where(total > 0, total, 1.0)
    refined_x = (confidence * window_cols[..., None, :]).sum(axis=(2, 3)) / safe / width
    refined_y = (confidence * window_rows[..., :, None]).sum(axis=(2, 3)) / safe / height
    refine = inside & (confidence.max(axis=(2, 3)) >= min_confidence) & (total > 0)
    result = points.astype(np.float64).copy()
    result[..., 0] = np.where(refine, refined_x, result[..., 0])
    result[..., 1] = np.where(refine, refined_y, result[..., 1])
    return result


def rotate_world(world: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(B, K, 3) world landmarks of the ROI -> the image's orientation: x, y rotated by each ROI's rotation."""
    cos, sin = np.cos(rotations)[:, None], np.sin(rotations)[:, None]
    result = np.asarray(world, np.float64).copy()
    result[..., 0] = cos * world[..., 0] - sin * world[..., 1]
    result[..., 1] = sin * world[..., 0] + cos * world[..., 1]
    return result


def blazepose_to_coco(landmarks: np.ndarray) -> np.ndarray:
    """(..., 33, C) BlazePose landmarks -> (..., 17, C) COCO-17 (the same points, reindexed)."""
    return np.asarray(landmarks)[..., BLAZEPOSE_TO_COCO, :]


def world_to_h36m(world: np.ndarray) -> np.ndarray:
    """(..., 33, 3) world landmarks (metres) -> (..., 17, 3) H36M-17, root-relative: the COCO subset combined as
    MotionBERT's coco2h36m (root = mid-hip, neck = mid-shoulder, belly = their midpoint, head = mid-eyes),
    then the root subtracted (mediapipe's origin is already the hips' centre, up to the model's error)."""
    from ragar_data.pipelines.backends.keypoints import coco_to_h36m

    h36m = coco_to_h36m(blazepose_to_coco(world))
    return h36m - h36m[..., :1, :]


@dataclass
class LandmarkResult:
    """One landmark-model run per frame: landmarks (B, 33, 5) x, y (image pixels), z (ROI pixels, relative
    depth), visibility, presence (probabilities); world (B, 33, 3) metres in the image's orientation;
    pose_flag (B,); the ROIs (B, 4) and the person probability inside them (B, 256, 256)."""

    landmarks: np.ndarray
    world: np.ndarray
    pose_flag: np.ndarray
    rois: np.ndarray
    mask_logits: np.ndarray

    def keypoints_2d(self) -> np.ndarray:
        """(B, 17, 3) COCO-17 x, y, score (sigmoid visibility, 0 on frames without a pose)."""
        coco = blazepose_to_coco(self.landmarks)
        scores = np.where(self.pose_flag[:, None] >= PRESENCE_THRESHOLD, coco[..., 3], 0.0)
        return np.concatenate([coco[..., :2], scores[..., None]], axis=-1).astype(np.float32)

    def masks(self, image_size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
        """(B, H, W) bool person masks in the frame: the ROI's probabilities warped back (bilinear)."""
        return full_masks(self.mask_windows(image_size, threshold), image_size)

    def mask_windows(self, image_size: tuple[int, int], threshold: float = 0.5) -> list[tuple[int, int, np.ndarray]]:
        """Per ROI (x0, y0, mask of the ROI's bounding rectangle in the frame), the only pixels `masks` can set."""
        width, height = image_size
        corners = crop_to_image(np.tile([[0, 0], [LANDMARK_INPUT, 0], [0, LANDMARK_INPUT],
                                         [LANDMARK_INPUT, LANDMARK_INPUT]], (len(self.rois), 1, 1)).astype(np.float64),
                                self.rois, LANDMARK_INPUT)
        matrices = pixel_index_matrices(roi_matrices(self.rois, LANDMARK_INPUT))
        windows = []
        for index, (matrix, logits) in enumerate(zip(matrices, self.mask_logits)):
            x0, y0 = np.clip(np.floor(corners[index].min(axis=0)).astype(int), 0, [width, height])
            x1, y1 = np.clip(np.ceil(corners[index].max(axis=0)).astype(int) + 1, 0, [width, height])
            if x1 <= x0 or y1 <= y0:
                windows.append((0, 0, np.zeros((0, 0), bool)))
                continue
            shifted = matrix.copy()
            shifted[:, 2] -= (x0, y0)
            probability = sigmoid(logits.astype(np.float32))
            windows.append((int(x0), int(y0), cv2.warpAffine(probability, shifted, (int(x1 - x0), int(y1 - y0)),
                                                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                                             borderValue=0) > threshold))
        return windows


def decode_landmarks(outputs: list[np.ndarray], rois: np.ndarray) -> LandmarkResult:
    """The model's five outputs for a batch of ROIs -> a `LandmarkResult` (see the module docstring)."""
    raw, flag, segmentation, heatmaps, world = outputs
    raw = raw.reshape(len(rois), NUM_LANDMARKS, 5).astype(np.float64)
    normalised = refine_from_heatmaps(raw[..., :2] / LANDMARK_INPUT, heatmaps)
    points = crop_to_image(normalised * LANDMARK_INPUT, rois, LANDMARK_INPUT)
    landmarks = np.concatenate([points, raw[..., 2:3], sigmoid(raw[..., 3:5])], axis=-1)[:, :BODY_LANDMARKS]
    world = rotate_world(world.reshape(len(rois), NUM_LANDMARKS, 3)[:, :BODY_LANDMARKS], rois[:, 3])
    return LandmarkResult(landmarks.astype(np.float32), world.astype(np.float32), flag.reshape(-1).astype(np.float32),
                          np.asarray(rois, np.float64), segmentation[..., 0])


# ----------------------------------------------------------------------------------------------- backends
class BlazePoseLandmarker:
    """Runs pose_landmark_full on ROIs: `run(frames, rois) -> LandmarkResult`; `run_boxes` frames the ROI as an
    upright square around each box (long side x 1.25, as the detector's ROI of an upright person)."""

    def __init__(self, *, models_dir: Path | None = None, model: str | None = None, weights: str | None = None,
                 batch_size: int = 1, threads: int | None = None, roi_scale: float = 1.25):
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "blazepose")
        self.name = spec.name if spec else path.name
        self.path = path / "pose_landmark_full.tflite" if path.is_dir() else path
        # Batching is exact on this model but measured no faster on 2 CPU threads: one ROI per call by default.
        self.model = LiteRTModel(self.path, threads, batched=True, batch_size=batch_size)
        self.roi_scale = roi_scale

    def run(self, frames: np.ndarray, rois: np.ndarray) -> LandmarkResult:
        frames = check_frames(frames)
        rois = np.asarray(rois, np.float64).reshape(len(frames), 4)
        if len(frames) == 0:
            empty = np.zeros((0, BODY_LANDMARKS, 5), np.float32)
            return LandmarkResult(empty, empty[..., :3], np.zeros(0, np.float32), rois,
                                  np.zeros((0, LANDMARK_INPUT, LANDMARK_INPUT), np.float32))
        crops = crop_rois(frames, rois, LANDMARK_INPUT)
        return decode_landmarks(self.model.run(crops.astype(np.float32) / 255.0), rois)

    def run_boxes(self, frames: np.ndarray, boxes: np.ndarray) -> LandmarkResult:
        boxes = check_boxes(boxes, len(frames))
        return self.run(frames, rois_from_boxes(boxes, self.roi_scale))


class _UsesLandmarker:
    def __init__(self, models_dir, model, weights, options, kind):
        allowed = {"batch_size", "threads", "roi_scale"}
        unknown = set(options) - allowed
        if unknown:
            raise InputError(f"{kind}: unknown options {sorted(unknown)}")
        self.landmarker = BlazePoseLandmarker(models_dir=models_dir, model=model, weights=weights,
                                              **{k: v for k, v in options.items() if k in allowed})
        self.name = self.landmarker.name


class BlazePoseEstimator(_UsesLandmarker):
    """Pose2D backend: `estimate(frames (B, H, W, 3) RGB, boxes (B, 4)) -> (B, 17, 3)` COCO-17 x, y in pixels
    and sigmoid(visibility) as score; `estimate_full` keeps all 33 landmarks (`LandmarkResult`)."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, **options):
        super().__init__(models_dir, model, weights, options, "BlazePoseEstimator")

    def estimate_full(self, frames: np.ndarray, boxes: np.ndarray) -> LandmarkResult:
        return self.landmarker.run_boxes(frames, boxes)

    def estimate(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.estimate_full(frames, boxes).keypoints_2d()

    def self_check(self, frames: np.ndarray, boxes: np.ndarray) -> str:
        """`models check`: run both files of the entry (detector on the frames, landmarks on the boxes)."""
        from ragar_data.pipelines.backends.blazepose_detect import BlazePoseDetector

        detector = BlazePoseDetector(weights=str(self.landmarker.path.parent))
        people = detector.detect_people(frames)
        result = self.estimate_full(frames, boxes)
        return (f"detector: people per frame {[len(p.boxes) for p in people]}; landmarks {result.landmarks.shape}, "
                f"pose flag {np.round(result.pose_flag, 2).tolist()}, world {result.world.shape}")


class BlazePoseSegmenter(_UsesLandmarker):
    """Segmenter backend: `segment(frames, boxes) -> (B, H, W) bool`, the landmark model's person mask
    (probability > `threshold`) on the box's ROI; outside the ROI is background."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, threshold: float = 0.5, **options):
        super().__init__(models_dir, model, weights, options, "BlazePoseSegmenter")
        self.threshold = threshold

    def segment(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        result = self.landmarker.run_boxes(frames, boxes)
        return result.masks((frames.shape[2], frames.shape[1]), self.threshold)

    def segment_windows(self, frames: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """Per frame (x0, y0, mask of the ROI's bounding rectangle): `segment` without the full-frame masks."""
        frames = check_frames(frames)
        result = self.landmarker.run_boxes(frames, boxes)
        return result.mask_windows((frames.shape[2], frames.shape[1]), self.threshold)


class BlazePoseLifter(_UsesLandmarker):
    """3D backend beside MotionBERT: H36M-17 root-relative joints in metres (x right, y down, z away from the
    camera, as mediapipe's world landmarks rotated into the image) from the frames themselves:
    `lift_frames(frames, boxes) -> (B, 17, 3)`. It cannot lift from 2D keypoints alone, so `lift()` (the
    keypoint-only interface) refuses with a clear error."""

    needs_frames = True

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, **options):
        super().__init__(models_dir, model, weights, options, "BlazePoseLifter")

    def lift_frames(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return world_to_h36m(self.landmarker.run_boxes(frames, boxes).world).astype(np.float32)

    def lift(self, keypoints_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        raise RagarDataError("the blazepose lifter reads 3D from the frames (lift_frames(frames, boxes)), not from "
                             "2D keypoints; this preset's lift3d stage only passes keypoints")


class BlazePoseVerifier(BlazePoseDetector):
    """Verify backend (pipelines/verify.py): the person detector (`BlazePoseDetector`) plus the landmark model on
    given boxes (`landmarks_in_boxes(frames, boxes) -> LandmarkResult`, the ROI framed as `BlazePoseLandmarker`
    does), which the per-frame whole-person check of the subject's frames reads."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, **options):
        super().__init__(models_dir=models_dir, device=device, model=model, weights=weights, **options)
        self.landmarker = BlazePoseLandmarker(models_dir=models_dir, model=model, weights=weights)

    @property
    def window_scales(self) -> dict[str, float]:
        """The side of each model's square window over a box's long side (`detect_in_boxes`,
        `landmarks_in_boxes`): verification converts only those pixels of a frame to RGB."""
        return {"detect": self.box_padding, "landmarks": self.landmarker.roi_scale}

    def landmarks_in_boxes(self, frames: np.ndarray, boxes: np.ndarray) -> LandmarkResult:
        return self.landmarker.run_boxes(frames, boxes)
