"""Build a backend from a registry name and run it once on generated input (`ragar-data models check`, the
benchmark). The extraction stages do not use this: they map preset backend names to classes themselves."""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import numpy as np

from ragar_data import weights as registry

# registry `backend` -> backend class (dotted path, imported only when used)
BACKEND_CLASSES = {
    "yolo": "ragar_data.pipelines.backends.yolo:YoloDetector",
    "humanseg": "ragar_data.pipelines.backends.humanseg:HumanSegOnnx",
    "humanseg-paddle": "ragar_data.pipelines.backends.humanseg:HumanSegPaddle",
    "rtmpose": "ragar_data.pipelines.backends.rtmpose:RTMPoseEstimator",
    "vitpose": "ragar_data.pipelines.backends.vitpose:ViTPoseEstimator",
    "motionbert": "ragar_data.pipelines.backends.motionbert:MotionBertLifter",
    "clip": "ragar_data.models.text_encoders:ClipTextEncoder",
    "blazepose": "ragar_data.pipelines.backends.blazepose:BlazePoseEstimator",
    "selfie": "ragar_data.pipelines.backends.selfie:SelfieSegmenter",
}


def backend_class(spec: registry.ModelSpec):
    module_name, _, class_name = BACKEND_CLASSES[spec.backend].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_backend(name: str, models_dir: Path | None = None, device: str = "cpu", **options):
    """The backend object for registry model `name` (raises ModelUnavailable when it cannot load here)."""
    spec = registry.get_spec(name)
    return backend_class(spec)(models_dir=registry.resolve_models_dir(models_dir), device=device, model=name,
                               **options)


def sample_input(frames_count: int = 4, height: int = 270, width: int = 480, seed: int = 0):
    """Generated frames (smooth noise with a bright upright figure) and the figure's box per frame."""
    from ragar_data.pipelines.backends.random_models import random_frames

    frames = random_frames(frames_count, height, width, seed)
    x1, x2, y1, y2 = int(width * 0.42), int(width * 0.58), int(height * 0.15), int(height * 0.9)
    frames[:, y1:y2, x1:x2] = (frames[:, y1:y2, x1:x2] // 2 + 110).astype(np.uint8)
    boxes = np.tile(np.array([[x1, y1, x2, y2]], np.float32), (frames_count, 1))
    return frames, boxes


def run_once(backend, task: str, frames: np.ndarray, boxes: np.ndarray) -> tuple[str, float]:
    """Run one batch through a backend of `task`; returns a shape summary and the seconds it took."""
    start = time.perf_counter()
    if hasattr(backend, "self_check"):  # a registry entry with several model files checks each of them
        summary = backend.self_check(frames, boxes)
    elif task == "detector":
        detections = backend.detect(frames)
        summary = f"{len(detections)} frames, boxes per frame {[len(d) for d in detections]}"
    elif task == "segmenter":
        masks = backend.segment(frames, boxes)
        summary = f"masks {masks.shape} {masks.dtype}, person fraction in box {masks.mean():.3f}"
    elif task == "pose2d":
        keypoints = backend.estimate(frames, boxes)
        summary = f"keypoints {keypoints.shape} {keypoints.dtype}, mean score {keypoints[..., 2].mean():.3f}"
    elif task == "text":
        from ragar_data.attributes import default_schema

        features = backend.encode(default_schema().sentences())
        summary = f"features of the 45 class sentences {tuple(features.shape)}, L2-normalised"
    else:
        height, width = frames.shape[1:3]
        track = np.zeros((len(frames), 17, 3), np.float32)
        generator = np.random.default_rng(0)
        track[..., 0] = generator.uniform(boxes[:, :1], boxes[:, 2:3], size=(len(frames), 17))
        track[..., 1] = generator.uniform(boxes[:, 1:2], boxes[:, 3:4], size=(len(frames), 17))
        track[..., 2] = 0.9
        poses = backend.lift(track, (width, height))
        summary = f"poses {poses.shape} {poses.dtype}, range [{poses.min():.3f}, {poses.max():.3f}]"
    return summary, time.perf_counter() - start


def check_models(models_dir: Path | None = None, device: str = "cpu", names=None):
    """Yield (name, status, detail) for each registry model (or `names`): `missing`, `error` or `ok` with the
    output summary and timing of one batch of generated input (the first call includes warm-up)."""
    models_dir = registry.resolve_models_dir(models_dir)
    specs = registry.load_registry()
    frames, boxes = sample_input()
    for name in names or specs:
        spec = registry.get_spec(name, specs)
        if not spec.is_present(models_dir):
            yield name, "missing", f"{spec.path(models_dir)} ({spec.how_to_get_text()})"
            continue
        try:
            backend = load_backend(name, models_dir, device)
            summary, seconds = run_once(backend, spec.task, frames, boxes)
        except Exception as error:  # reported per model so one broken file does not hide the others
            yield name, "error", f"{type(error).__name__}: {error}"
            continue
        yield name, "ok", f"{summary}; {seconds * 1000:.0f} ms for {len(frames)} frames on {device}"
