"""ultralytics YOLO person detector from a local `.pt` or `.onnx` file, kept off the network.

ultralytics reaches out on its own: at import (DNS look-ups, a settings file in the user config folder), when a
weights file is missing (it downloads one by that name, even with YOLO_OFFLINE=1) and when a requirement is
missing (pip install). So: `pipelines.track.prepare_ultralytics_offline()` sets YOLO_OFFLINE=1, YOLO_AUTOINSTALL=False and
YOLO_CONFIG_DIR before ultralytics is imported, and the weights path is checked before `YOLO()` sees it.
Its boxes feed the same ByteTrack as the default preset (the tracking stage, not this module).

A `.pt` is a pickle of the whole model, which ultralytics loads with `torch.load(weights_only=False)` unless
its restricted loading is on (`ULTRALYTICS_SAFE_LOAD`: weights_only=True plus its own model classes only);
this module turns it on, so a `.pt` carrying anything else is refused and runs nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ragar_data import weights as registry
from ragar_data.errors import ConfigError, ModelUnavailable
from ragar_data.pipelines.backends.runtime import batches, check_frames
from ragar_data.pipelines.track import prepare_ultralytics_offline
from ragar_data.safe_load import UnsafePickleError

PERSON_CLASS = 0  # COCO class index of `person` in the official YOLO weights
SUFFIXES = (".pt", ".onnx")


def letterbox_resized(frame: np.ndarray, imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """(image for ultralytics, (2,) x and y factors back to the frame): a frame larger than the letterbox
    resized to the size ultralytics' letterbox would give it (its rounding, bilinear), and then turned BGR
    (ultralytics reads numpy images in cv2's order; the pipeline's are RGB): the network sees the same pixels,
    and the flip copies a 640 x 360 image instead of a 1920 x 1080 frame. A smaller frame is only flipped."""
    import cv2

    height, width = frame.shape[:2]
    ratio = min(imgsz / height, imgsz / width)
    size = max(round(width * ratio), 1), max(round(height * ratio), 1)  # ultralytics LetterBox.get_params
    if ratio >= 1 or size == (width, height):
        return np.ascontiguousarray(frame[..., ::-1]), np.ones(2)
    resized = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[..., ::-1]), np.array([width / size[0], height / size[1]])


class YoloDetector:
    """Detector backend: `detect(frames (B, H, W, 3) uint8 RGB) -> [ (N, 5) float32 x1, y1, x2, y2, score ]`,
    person class only, batched over frames. Options: `model` (registry name, default yolo11m) or `weights`
    (a .pt/.onnx path), `imgsz` (letterbox size, 640 as trained), `conf`, `iou` (NMS), `precision`
    (fp16 on CUDA)."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 16, imgsz: int = 640, conf: float = 0.25,
                 iou: float = 0.7, precision: str = "fp32", **options):
        if options:
            raise ConfigError(f"YoloDetector: unknown options {sorted(options)}")
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "yolo11m", task="detector")
        if path.suffix not in SUFFIXES or not path.is_file():
            raise ModelUnavailable(f"{path}: YOLO weights must be an existing {' or '.join(SUFFIXES)} file")
        prepare_ultralytics_offline()
        import ultralytics.nn.tasks as ultralytics_tasks
        from ultralytics import YOLO

        ultralytics_tasks.SAFE_LOAD = True  # read at each load (the env switch is read only at import)

        self.name = spec.name if spec else path.stem
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self.imgsz = imgsz
        self.conf = conf
        self.iou = iou
        self.half = precision == "fp16" and device.startswith("cuda")
        try:
            self.model = YOLO(str(path), task="detect")
        except TypeError as error:  # ultralytics' restricted loader refusing a global
            raise UnsafePickleError(f"{path}: not loaded: {error}") from None

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        frames = check_frames(frames)
        detections: list[np.ndarray] = []
        for part in batches(len(frames), self.batch_size):
            images, scales = zip(*(letterbox_resized(frame, self.imgsz) for frame in frames[part]))
            # `half` only when asked: ultralytics 8.4 warns about the argument whenever it is passed.
            precision = {"half": True} if self.half else {}
            results = self.model.predict(list(images), imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                         classes=[PERSON_CLASS], device=self.device, verbose=False, **precision)
            for result, scale in zip(results, scales):
                boxes = result.boxes
                rows = np.concatenate([boxes.xyxy.cpu().numpy() * np.tile(scale, 2),
                                       boxes.conf.cpu().numpy()[:, None]], axis=1)
                detections.append(rows.astype(np.float32).reshape(-1, 5))
        return detections

    def raw_output(self, frames: np.ndarray) -> np.ndarray:
        """The network's raw prediction tensor (before NMS) on frames resized to imgsz x imgsz, for checks
        that the loaded weights respond to the input (random weights rarely pass the score threshold)."""
        import cv2
        import torch

        frames = check_frames(frames)
        resized = np.stack([cv2.resize(f, (self.imgsz, self.imgsz), interpolation=cv2.INTER_LINEAR) for f in frames])
        tensor = torch.from_numpy(resized[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255.0
        network = self.model.model
        if not isinstance(network, torch.nn.Module):
            raise ModelUnavailable(f"{self.path}: raw_output needs a .pt model (this one runs through "
                                   f"{type(network).__name__})")
        network = network.float().eval()
        with torch.inference_mode():
            output = network(tensor.to(next(network.parameters()).device))
        output = output[0] if isinstance(output, (list, tuple)) else output
        return output.float().cpu().numpy()
