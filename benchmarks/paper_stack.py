"""Frames per second of each model stage of the paper's stack (YOLO detection, PP-HumanSeg, RTMPose, optionally
ViTPose, MotionBERT) and of the stages run one after the other, on generated clips.

Uses the models in --models-dir; with --random, writes random-init stand-ins (same formats and I/O shapes, but
smaller networks for YOLO/ViTPose/MotionBERT, so their timings are NOT those of the real models) to a temporary
folder first. Segmentation and pose run on the generator's ground-truth boxes, so their cost does not depend on
what a random detector finds. Decoding and tracking are not included (see benchmarks/extract_throughput.py).

    python benchmarks/paper_stack.py --random                          # CPU smoke run
    python benchmarks/paper_stack.py --models-dir ~/models --device cuda --width 1920 --height 1080 --precision fp16
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def generated_clips(count: int, width: int, height: int, seconds: float):
    """Frames and ground-truth boxes of `count` synthetic sequences (falls back to drawn frames without the
    generator)."""
    try:
        from ragar_data.identity import SequenceKey
        from ragar_data.synth.config import SynthConfig
        from ragar_data.synth.sequence import render_sequence
    except ImportError:
        from ragar_data.pipelines.backends.loading import sample_input

        return [sample_input(int(seconds * 30), height, width, seed) for seed in range(count)]
    config = SynthConfig(width=width, height=height, seconds=seconds, fps=30)
    clips = []
    for index in range(count):
        frames, truth = render_sequence(config, SequenceKey(f"{index + 1:03d}", 0, "nm-01", 36 * (index % 10)))
        clips.append((frames, np.asarray(truth["boxes"], np.float32)))
    return clips


def timed(function, repeats: int = 1):
    function()  # warm-up: model compilation, allocator, first-call costs
    start = time.perf_counter()
    for _ in range(repeats):
        result = function()
    return result, (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--random", action="store_true", help="benchmark random-init stand-ins (CPU smoke run)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--detector", default="yolo11m")
    parser.add_argument("--pose", default="rtmpose-m", help="comma-separated 2D pose models, e.g. rtmpose-m,vitpose-b")
    parser.add_argument("--lifter", default="motionbert-ft-h36m")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: library default)")
    args = parser.parse_args()

    import torch

    from ragar_data.pipelines.backends.loading import load_backend

    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = None
    models_dir = args.models_dir
    if args.random:
        from ragar_data.pipelines.backends.random_models import write_random_models

        scratch = tempfile.TemporaryDirectory()
        models_dir = scratch.name
        write_random_models(models_dir, [args.detector, "pp-humanseg-v2", *args.pose.split(","), args.lifter])

    clips = generated_clips(args.clips, args.width, args.height, args.seconds)
    frames = np.concatenate([c[0] for c in clips])
    boxes = np.concatenate([c[1] for c in clips])
    total = len(frames)
    print(f"{args.clips} clips, {total} frames {args.width}x{args.height}, device {args.device}, "
          f"precision {args.precision}, models {'random stand-ins' if args.random else models_dir}")

    half = {"precision": args.precision}
    rows = []
    detector = load_backend(args.detector, models_dir, args.device, **half)
    detections, seconds = timed(lambda: detector.detect(frames))
    rows.append((f"detect  {args.detector}", seconds, f"{sum(len(d) for d in detections)} boxes"))
    segmenter = load_backend("pp-humanseg-v2", models_dir, args.device)
    masks, seconds = timed(lambda: segmenter.segment(frames, boxes))
    rows.append(("segment pp-humanseg-v2 (onnx)", seconds, f"mask fraction {masks.mean():.4f}"))
    keypoints = None
    for name in args.pose.split(","):
        options = half if name.startswith("vitpose") else {}
        estimator = load_backend(name, models_dir, args.device, **options)
        result, seconds = timed(lambda: estimator.estimate(frames, boxes))
        keypoints = result if keypoints is None else keypoints
        rows.append((f"pose2d  {name}", seconds, f"mean score {result[..., 2].mean():.3f}"))
    lifter = load_backend(args.lifter, models_dir, args.device, **half)
    starts = np.cumsum([0] + [len(c[0]) for c in clips])

    def lift_all():
        return [lifter.lift(keypoints[a:b], (args.width, args.height)) for a, b in zip(starts[:-1], starts[1:])]

    _, seconds = timed(lift_all)
    rows.append((f"lift3d  {args.lifter}", seconds, f"{args.clips} sequences"))

    print(f"{'stage':38s} {'seconds':>9s} {'frames/s':>10s}  note")
    for name, seconds, note in rows:
        print(f"{name:38s} {seconds:9.3f} {total / seconds:10.1f}  {note}")
    # Only the first 2D pose model feeds the lifter; the stack runs one of them.
    stack = rows[0][1] + rows[1][1] + rows[2][1] + rows[-1][1]
    print(f"{'stack (sequential, first pose model)':38s} {stack:9.3f} {total / stack:10.1f}")
    if scratch is not None:
        scratch.cleanup()


if __name__ == "__main__":
    main()
