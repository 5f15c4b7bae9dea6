"""Milliseconds per call of the mediapipe .tflite models on CPU: the bare LiteRT call (batch 1, and per item in
a batch of 8 where the model takes batches) and each backend on 1920x1080 frames, pre- and post-processing
included. Medians of `--repeats` calls after one warm-up.

    python benchmarks/blazepose_speed.py --models-dir DIR [--threads 2] [--repeats 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ragar_data import weights
from ragar_data.pipelines.backends.blazepose import BlazePoseEstimator, BlazePoseLifter, BlazePoseSegmenter
from ragar_data.pipelines.backends.blazepose_detect import BlazePoseDetector
from ragar_data.pipelines.backends.litert import LiteRTModel
from ragar_data.pipelines.backends.selfie import SelfieSegmenter


def median_ms(call, repeats: int, items: int = 1) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    directory = weights.resolve_models_dir(args.models_dir)
    for name in ("blazepose", "selfie-segmentation"):
        weights.download_model(weights.get_spec(name), directory, progress=False)
    files = {"pose_detection": (directory / "blazepose" / "pose_detection.tflite", False),
             "pose_landmark_full": (directory / "blazepose" / "pose_landmark_full.tflite", True),
             "selfie_segmentation": (directory / "selfie-segmentation" / "selfie_segmentation.tflite", True)}
    generator = np.random.default_rng(0)
    print(f"bare LiteRT calls, {args.threads} threads (ms per item)")
    for name, (path, batchable) in files.items():
        single = LiteRTModel(path, args.threads, batched=False)
        tensor = generator.random((8, *single.input_shape), dtype=np.float32)
        line = f"  {name:22s} batch 1: {median_ms(lambda: single.run(tensor[:1]), args.repeats):6.1f}"
        if batchable:
            batched = LiteRTModel(path, args.threads, batched=True, batch_size=8)
            line += f"   batch 8: {median_ms(lambda: batched.run(tensor), args.repeats, 8):6.1f}"
        print(line)
    frames = generator.integers(0, 255, (4, 1080, 1920, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[800, 200, 1100, 950]], np.float32), (4, 1))
    options = dict(models_dir=directory, threads=args.threads)
    backends = {
        "detector (full frame)": (BlazePoseDetector(**options).detect, (frames,)),
        "detector (in boxes)": (BlazePoseDetector(**options).detect_in_boxes, (frames, boxes)),
        "pose2d (landmarks)": (BlazePoseEstimator(**options).estimate, (frames, boxes)),
        "segmenter (landmarks)": (BlazePoseSegmenter(**options).segment, (frames, boxes)),
        "lifter (landmarks)": (BlazePoseLifter(**options).lift_frames, (frames, boxes)),
        "selfie segmenter": (SelfieSegmenter(**options).segment, (frames, boxes)),
    }
    print(f"backends on 1920x1080 frames, {args.threads} threads (ms per frame, all steps)")
    for name, (call, inputs) in backends.items():
        print(f"  {name:22s} {median_ms(lambda: call(*inputs), max(3, args.repeats // 4), len(frames)):6.1f}")


if __name__ == "__main__":
    main()
