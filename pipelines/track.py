"""Track stage: per-frame boxes -> tracks with stable ids, through ultralytics' ByteTrack (not a rewrite).

Owns: feeding ByteTrack and collecting its output as flat arrays. Each tracked row keeps the *detection* box
ByteTrack matched (ultralytics returns its index), not the Kalman-smoothed one, so silhouettes are cut from what
was seen. Does not own: which track is the subject (`subject`).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import numpy as np


@dataclass
class Tracks:
    """All tracks of a clip as flat rows: frame position in the clip, track id, detection box, score."""

    frame: np.ndarray  # (M,) int32
    track_id: np.ndarray  # (M,) int32
    boxes: np.ndarray  # (M, 4) float32
    scores: np.ndarray  # (M,) float32
    num_frames: int

    def ids(self) -> list[int]:
        return sorted(set(self.track_id.tolist()))

    def of(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame positions, boxes) of one track, in frame order."""
        rows = np.flatnonzero(self.track_id == track_id)
        rows = rows[np.argsort(self.frame[rows], kind="stable")]
        return self.frame[rows], self.boxes[rows]


class Tracker(Protocol):
    def track(self, boxes: list[np.ndarray], image_size: tuple[int, int]) -> Tracks:
        """boxes: one (N, 5) array per frame; image_size (width, height)."""


def prepare_ultralytics_offline(config_dir: str | os.PathLike | None = None) -> None:
    """Set ultralytics' environment switches before the first `import ultralytics` in the process: no network,
    no pip installs, settings file in our cache (importing it otherwise does DNS look-ups and writes to the
    user's config folder). YOLO_AUTOINSTALL and YOLO_CONFIG_DIR are read at import, YOLO_OFFLINE at each check."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if "YOLO_CONFIG_DIR" not in os.environ:
        folder = Path(config_dir) if config_dir else Path.home() / ".cache" / "ragar-data" / "ultralytics"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(folder)
    if "ultralytics" in sys.modules:
        # too late for the import-time switches; the offline switch still applies
        import ultralytics.utils as ultralytics_utils

        ultralytics_utils.AUTOINSTALL = False


class ByteTrackTracker:
    """ultralytics `BYTETracker`, one instance per sequence (ids start at 1 in every sequence, >= 8.4.175)."""

    def __init__(self, *, track_high_thresh=0.25, track_low_thresh=0.1, new_track_thresh=0.25, track_buffer=30,
                 match_thresh=0.8, fuse_score=True, split_merged=False, split_coverage=0.6):
        self.split_merged, self.split_coverage = split_merged, split_coverage
        self.args = SimpleNamespace(
            tracker_type="bytetrack", track_high_thresh=track_high_thresh, track_low_thresh=track_low_thresh,
            new_track_thresh=new_track_thresh, track_buffer=track_buffer, match_thresh=match_thresh,
            fuse_score=fuse_score,
        )

    def track(self, boxes: list[np.ndarray], image_size: tuple[int, int]) -> Tracks:
        prepare_ultralytics_offline()
        from ultralytics.engine.results import Boxes
        from ultralytics.trackers.byte_tracker import BYTETracker

        tracker = BYTETracker(self.args)
        width, height = image_size
        frames, ids, out_boxes, scores = [], [], [], []
        for position, detections in enumerate(boxes):
            detections = np.asarray(detections, np.float32).reshape(-1, 5)
            if self.split_merged:
                detections = split_merged_detections(detections, predicted_boxes(tracker), self.split_coverage)
            rows = np.concatenate([detections, np.zeros((len(detections), 1), np.float32)], axis=1)  # class 0
            output = tracker.update(Boxes(rows, (height, width)))
            if len(output) == 0:
                continue
            index = output[:, 7].astype(int)
            frames.append(np.full(len(output), position, np.int32))
            ids.append(output[:, 4].astype(np.int32))
            out_boxes.append(detections[index, :4])
            scores.append(detections[index, 4])
        if not frames:
            empty = np.zeros(0, np.int32)
            return Tracks(empty, empty.copy(), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), len(boxes))
        return Tracks(np.concatenate(frames), np.concatenate(ids), np.concatenate(out_boxes).astype(np.float32),
                      np.concatenate(scores).astype(np.float32), len(boxes))


def predicted_boxes(tracker) -> np.ndarray:
    """(K, 4) next-frame boxes of the tracker's confirmed tracks, from their Kalman mean [x, y, a, h, vx, vy, va,
    vh] (centre, aspect, height and their velocities) advanced by one step."""
    boxes = []
    for track in tracker.tracked_stracks:
        if not track.is_activated or track.mean is None:
            continue
        x, y, aspect, height, vx, vy, va, vh = (float(v) for v in track.mean[:8])
        height, aspect = max(height + vh, 1.0), max(aspect + va, 1e-3)
        width = aspect * height
        boxes.append((x + vx - width / 2, y + vy - height / 2, x + vx + width / 2, y + vy + height / 2))
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def split_merged_detections(detections: np.ndarray, predicted: np.ndarray, coverage: float) -> np.ndarray:
    """Replace a detection that contains two or more tracked people by their predicted boxes.

    Background subtraction returns one blob when two walkers overlap in the image; without this, ByteTrack
    gives the blob to one track, loses the other, and identities can swap when they separate. A predicted box
    counts as contained when at least `coverage` of its area lies inside the detection; the replacements are
    clipped to the detection and keep its score."""
    if len(predicted) < 2 or len(detections) == 0:
        return detections
    rows = []
    for detection in detections:
        x1 = np.maximum(predicted[:, 0], detection[0])
        y1 = np.maximum(predicted[:, 1], detection[1])
        x2 = np.minimum(predicted[:, 2], detection[2])
        y2 = np.minimum(predicted[:, 3], detection[3])
        inside = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1])
        contained = np.flatnonzero(inside >= coverage * np.maximum(area, 1e-6))
        if len(contained) < 2:
            rows.append(detection)
            continue
        for index in contained:
            rows.append((x1[index], y1[index], x2[index], y2[index], detection[4]))
    return np.asarray(rows, np.float32).reshape(-1, 5)


TRACKERS = {"bytetrack": ByteTrackTracker}
