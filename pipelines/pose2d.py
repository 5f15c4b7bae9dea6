"""2D pose stage: COCO-17 keypoints of the subject, top-down from its boxes.

No built-in backend: every 2D pose model needs weights (RTMPose, ViTPose, BlazePose; `pipelines/backends/`).
When the preset names none, or its weights are missing, the runner skips this stage with one line and
`keypoints_2d` stays null.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class PoseEstimator(Protocol):
    def estimate(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """frames (B, H, W, 3) RGB uint8, boxes (B, 4) x1, y1, x2, y2 -> (B, 17, 3) x, y (pixels), score."""


POSE_ESTIMATORS = {
    "rtmpose": "ragar_data.pipelines.backends.rtmpose:RTMPoseEstimator",
    "vitpose": "ragar_data.pipelines.backends.vitpose:ViTPoseEstimator",
    "blazepose": "ragar_data.pipelines.backends.blazepose:BlazePoseEstimator",
}
