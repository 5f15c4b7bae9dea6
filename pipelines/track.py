"""Track stage: per-frame boxes -> tracks with stable ids, through ultralytics' ByteTrack (not a rewrite).

Owns: feeding ByteTrack and collecting its output as flat arrays. Each tracked row keeps the *detection* box
ByteTrack matched (ultralytics returns its index), not the Kalman-smoothed one, so silhouettes are cut from what
was seen. Does not own: which track is the subject (`select`).
"""
from __future__ import annotations

import os
import tempfile
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


def quiet_ultralytics() -> None:
    """Environment ultralytics reads at import: no network, no pip installs, settings file in a temp folder
    (otherwise importing it does DNS look-ups and writes to the user's config folder)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "ragar-data-ultralytics"))


class ByteTrackTracker:
    """ultralytics `BYTETracker`, one instance per sequence (ids start at 1 in every sequence, >= 8.4.175)."""

    def __init__(self, *, track_high_thresh=0.25, track_low_thresh=0.1, new_track_thresh=0.25, track_buffer=30,
                 match_thresh=0.8, fuse_score=True):
        self.args = SimpleNamespace(
            tracker_type="bytetrack", track_high_thresh=track_high_thresh, track_low_thresh=track_low_thresh,
            new_track_thresh=new_track_thresh, track_buffer=track_buffer, match_thresh=match_thresh,
            fuse_score=fuse_score,
        )

    def track(self, boxes: list[np.ndarray], image_size: tuple[int, int]) -> Tracks:
        quiet_ultralytics()
        from ultralytics.engine.results import Boxes
        from ultralytics.trackers.byte_tracker import BYTETracker

        tracker = BYTETracker(self.args)
        width, height = image_size
        frames, ids, out_boxes, scores = [], [], [], []
        for position, detections in enumerate(boxes):
            detections = np.asarray(detections, np.float32).reshape(-1, 5)
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


TRACKERS = {"bytetrack": ByteTrackTracker}
