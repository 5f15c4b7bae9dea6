"""MediaPipe selfie segmentation (`selfie_segmentation.tflite` from the mediapipe 0.10.14 wheel, the general
256x256 model) as a silhouette backend, on a crop around the subject's box.

As mediapipe's selfie_segmentation_cpu.pbtxt: the image stretched to 256x256 (no aspect kept), RGB in [0, 1];
the output is already a person probability (`activation: NONE`), resized back to the crop. The crop is the box
grown by `padding` around its centre (the same windows as the PP-HumanSeg backend); outside it is background.
The model was trained on selfies and video calls: it is the fast option, the BlazePose landmark model's mask
(`blazepose` segmenter) is made for whole bodies.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ragar_data.errors import InputError
from ragar_data import weights as registry
from ragar_data.pipelines.backends.humanseg import crop_windows
from ragar_data.pipelines.backends.litert import LiteRTModel
from ragar_data.pipelines.backends.runtime import check_boxes, check_frames
from ragar_data.subject_masks import full_masks

SELFIE_INPUT = 256


class SelfieSegmenter:
    """Segmenter backend: `segment(frames (B, H, W, 3) RGB uint8, boxes (B, 4)) -> (B, H, W) bool`, and
    `segment_windows` (the same masks, each in its crop window only)."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 8, padding: float = 1.2, threshold: float = 0.5,
                 threads: int | None = None, **options):
        if options:
            raise InputError(f"SelfieSegmenter: unknown options {sorted(options)}")
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "selfie-segmentation", task="segmenter")
        self.name = spec.name if spec else path.name
        self.path = path
        self.model = LiteRTModel(path, threads, batched=True, batch_size=batch_size)
        self.padding = padding
        self.threshold = threshold

    def probabilities(self, frames: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(B, 256, 256) person probabilities of each window, stretched to the model input."""
        crops = np.stack([cv2.resize(frame[y1:y2, x1:x2], (SELFIE_INPUT, SELFIE_INPUT), interpolation=cv2.INTER_LINEAR)
                          for frame, (x1, y1, x2, y2) in zip(frames, windows)])
        return self.model.run(crops.astype(np.float32) / 255.0)[0][..., 0]

    def segment(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        return full_masks(self.segment_windows(frames, boxes), (frames.shape[2], frames.shape[1]))

    def segment_windows(self, frames: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """Per frame (x0, y0, mask of its crop window): `segment` without the full-frame masks."""
        frames = check_frames(frames)
        boxes = check_boxes(boxes, len(frames))
        if len(frames) == 0:
            return []
        windows = crop_windows(boxes, (frames.shape[2], frames.shape[1]), self.padding)
        out = []
        for probability, (x1, y1, x2, y2) in zip(self.probabilities(frames, windows), windows):
            resized = cv2.resize(probability, (int(x2 - x1), int(y2 - y1)), interpolation=cv2.INTER_LINEAR)
            out.append((int(x1), int(y1), resized > self.threshold))
        return out
