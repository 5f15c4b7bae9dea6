"""3D lift stage: H36M-17 joints from the subject's 2D keypoint sequence.

No built-in backend: MotionBERT needs its checkpoint (`pipelines/backends/motionbert.py`); BlazePose's world
landmarks (`pipelines/backends/blazepose.py`) lift from the frames, not from 2D keypoints (`FrameLifter`).
The stage runs only when 2D keypoints exist; otherwise, or without weights, the runner skips it with one line.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Lifter(Protocol):
    def lift(self, keypoints_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """keypoints_2d (T, 17, 3) COCO-17 x, y, score; image_size (width, height) -> (T, 17, 3) H36M-17."""


class FrameLifter(Protocol):
    """A lifter that reads 3D from the images (BlazePose world landmarks), marked `needs_frames = True`."""

    needs_frames: bool

    def lift_frames(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """frames (B, H, W, 3) RGB uint8, boxes (B, 4) -> (B, 17, 3) H36M-17, root-relative, metres."""


LIFTERS = {
    "motionbert": "ragar_data.pipelines.backends.motionbert:MotionBertLifter",
    "blazepose": "ragar_data.pipelines.backends.blazepose:BlazePoseLifter",
}
