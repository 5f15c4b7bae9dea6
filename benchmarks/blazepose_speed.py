"""Milliseconds per call of the mediapipe .tflite models on CPU: the bare LiteRT call (batch 1, and per item in
a batch of 8 where the model takes batches) and each backend on 1920x1080 frames, pre- and post-processing
included. Medians of `--repeats` calls after one warm-up.

With `--end-to-end`, also frames/s of whole extractions (`extract`, one worker) of the same 1920x1080 synthetic
clips side by side: decode only (PyAV, yuv420p), the default preset without person verification (no model
files), the default preset with it, and the `blazepose` preset. Each extraction runs once to estimate its camera
plates, then is timed reusing them (steady state, as extract_throughput.py); CPU ms per frame beside it.

    python benchmarks/blazepose_speed.py --models-dir DIR [--threads 2] [--repeats 20]
                                         [--end-to-end [--skip-calls]] [--subjects 2] [--seconds 1] [--data DIR]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("--end-to-end", action="store_true", help="also time whole extractions (see above)")
    parser.add_argument("--subjects", type=int, default=2, help="end to end: subjects, 4 clips each")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--data", type=Path, help="end to end: keep the generated clips here (reused)")
    parser.add_argument("--skip-calls", action="store_true", help="with --end-to-end: skip the per-call medians")
    args = parser.parse_args()
    if not args.skip_calls:
        per_call(args)
    if args.end_to_end:
        end_to_end(args)


def per_call(args) -> None:
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


def timed_extract(videos: Path, out: Path, preset: str, models_dir) -> tuple[int, float, float]:
    """(frames, wall s, CPU s) of a run reusing the camera plates of a first, untimed run of the same config."""
    from ragar_data.pipelines.config import load_preset
    from ragar_data.pipelines.runner import RunOptions, extract
    from ragar_data.pipelines.verify import active_verification

    config = active_verification(load_preset(preset), models_dir)
    options = RunOptions(progress=False, models_dir=models_dir)
    extract(out / "warm", config, videos=videos, options=options, log=lambda line: None)
    plates = Path("extract") / config.hash() / "backgrounds"
    shutil.copytree(out / "warm" / plates, out / "timed" / plates)
    started, cpu = time.perf_counter(), time.process_time()
    summary = extract(out / "timed", config, videos=videos, options=options, log=lambda line: None)
    return summary.frames, time.perf_counter() - started, time.process_time() - cpu


def end_to_end(args) -> None:
    from extract_throughput import decode_only, prepared_clips  # the same clips as the throughput benchmark

    directory = weights.resolve_models_dir(args.models_dir)
    weights.download_model(weights.get_spec("blazepose"), directory, progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        videos, paths = prepared_clips(args.data or scratch / "synth", args.subjects, args.seconds, "yuv420p")
        rows = {"decode only (PyAV, yuv420p)": decode_only(paths, "yuv420p")}
        runs = (("default, no person models", "default", scratch / "no-models"),
                ("default, person verification", "default", directory),
                ("blazepose preset", "blazepose", directory))
        for label, preset, models in runs:
            rows[label] = timed_extract(videos, scratch / label.replace(" ", "-").replace(",", ""), preset, models)
    decode_rate = rows["decode only (PyAV, yuv420p)"][0] / rows["decode only (PyAV, yuv420p)"][1]
    print(f"end to end, {len(paths)} clips of 1920x1080 ({rows['blazepose preset'][0]} frames), one worker")
    print(f"{'':<34}{'frames/s':>9}{'CPU ms/frame':>14}{'/ decode':>10}")
    for label, (frames, wall, cpu) in rows.items():
        print(f"{label:<34}{frames / wall:>9.1f}{1000 * cpu / frames:>14.1f}{frames / wall / decode_rate:>10.2f}")


if __name__ == "__main__":
    main()
