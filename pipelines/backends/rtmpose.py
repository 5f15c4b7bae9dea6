"""RTMPose 2D pose backend on the official ONNX exports (mmdeploy `end2end.onnx` from the RTMPose `onnx_sdk`
zips) through onnxruntime. Top-down, as mmpose 1.x: box -> centre/scale with 1.25 padding and the input aspect,
plain affine crop, RGB normalisation, SimCC decoding (argmax / 2, score = min of the two maxima), inverse affine.

ONNX contract (checked when the model loads): input `input` (N, 3, H, W) float32 RGB normalised with mean
(123.675, 116.28, 103.53) / std (58.395, 57.12, 57.375); outputs `simcc_x` (N, K, W * 2), `simcc_y` (N, K, H * 2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ragar_data import weights as registry
from ragar_data.errors import ConfigError, ModelUnavailable
from ragar_data.pipelines.backends import keypoints as kp
from ragar_data.pipelines.backends.runtime import batches, check_boxes, check_frames, onnx_session, run_onnx

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")


class RTMPoseEstimator:
    """Pose2D backend: `estimate(frames (B, H, W, 3) RGB, boxes (B, 4)) -> (B, 17, 3)` x, y in source pixels and
    the SimCC score (a raw logit, not a probability)."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 32, padding: float = 1.25,
                 split_ratio: float = 2.0, threads: int | None = None, **options):
        if options:
            raise ConfigError(f"RTMPoseEstimator: unknown options {sorted(options)}")
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "rtmpose-m", task="pose2d")
        self.name = spec.name if spec else path.name
        self.path = path
        self.batch_size = batch_size
        self.padding = padding
        self.split_ratio = split_ratio
        self.session = onnx_session(path, device, threads)
        self.input_size = self._check_contract()

    def _check_contract(self) -> tuple[int, int]:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in inputs or not set(OUTPUT_NAMES) <= set(outputs):
            raise ModelUnavailable(f"{self.path}: expected input `{INPUT_NAME}` and outputs {OUTPUT_NAMES} (the "
                                   f"mmdeploy RTMPose export), found inputs {list(inputs)} outputs {outputs}")
        shape = inputs[INPUT_NAME].shape
        if len(shape) != 4 or not all(isinstance(s, int) for s in shape[2:]):
            raise ModelUnavailable(f"{self.path}: input `{INPUT_NAME}` must be (N, 3, H, W) with fixed H, W, "
                                   f"found {shape}")
        return int(shape[3]), int(shape[2])  # (width, height), mmpose order

    def preprocess(self, frames: np.ndarray, boxes: np.ndarray):
        centers, scales = kp.boxes_to_center_scale(boxes, self.input_size, self.padding)
        matrices = kp.warp_matrices(centers, scales, self.input_size, udp=False)
        crops = kp.crop_boxes(frames, matrices, self.input_size)
        tensor = ((crops.astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(tensor), centers, scales

    def raw_outputs(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        simcc_x, simcc_y = run_onnx(self.session, list(OUTPUT_NAMES), INPUT_NAME, tensor)
        return simcc_x, simcc_y

    def estimate(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        boxes = check_boxes(boxes, len(frames))
        result = np.zeros((len(frames), 17, 3), dtype=np.float32)
        for part in batches(len(frames), self.batch_size):
            tensor, centers, scales = self.preprocess(frames[part], boxes[part])
            simcc_x, simcc_y = self.raw_outputs(tensor)
            locations, scores = kp.decode_simcc(simcc_x, simcc_y, self.split_ratio)
            # As mmpose: every location goes through the inverse affine, the invalid ones (-1, score <= 0) too;
            # moving them to the image origin would drag any square around the keypoints to the corner.
            points = kp.input_to_image(locations, centers, scales, self.input_size)
            result[part, :, :2] = points[:, :17]
            result[part, :, 2] = scores[:, :17]
        return result
