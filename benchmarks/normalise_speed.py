"""Silhouette normalisation speed: ragar_data.silhouettes (vectorised) vs plain per-frame loops, one run.

    python benchmarks/normalise_speed.py [--sequences 6] [--frames 60] [--ground-truth SYNTH_OUT/ground_truth]

Both per-frame loops implement the same algorithm (OpenGait pretreatment rules) one frame at a time: the
first finds the x-centre with a Python loop over columns as upstream's pretreatment.py does, the second with
numpy. Every output is checked equal to ours before timing is reported.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from walker_masks import ground_truth_masks, walker_masks  # noqa: E402

from ragar_data.silhouettes import normalise_sequence  # noqa: E402


def per_frame(masks: np.ndarray, size: int = 64, python_centre: bool = True) -> np.ndarray:
    half, out = size // 2, []
    for image in masks:
        if image.sum() <= 10000:
            continue
        rows = np.flatnonzero(image.sum(axis=1))
        crop = image[rows[0]:rows[-1] + 1]
        resized = cv2.resize(crop, (int(size * (crop.shape[1] / crop.shape[0])), size), interpolation=cv2.INTER_CUBIC)
        cumulative, total = resized.sum(axis=0).cumsum(), resized.sum()
        if python_centre:
            centre = next((c for c, running in enumerate(cumulative) if running > total / 2), None)
        else:
            over = cumulative > total / 2
            centre = int(over.argmax()) if over.any() else None
        if not centre:
            continue
        padded = np.pad(resized, ((0, 0), (half, half)))
        out.append(padded[:, centre:centre + size])
    return np.asarray(out, np.uint8).reshape(-1, size, size)


def timed(function, sequences, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        results = [function(masks) for masks in sequences]
        best = min(best, time.perf_counter() - start)
    return best, results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ground-truth", help="use masks of synthetic ground truth under this folder")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    cv2.setNumThreads(1)  # compare algorithms, not thread pools
    rng = np.random.default_rng(0)
    if args.ground_truth:
        cases = {"synthetic ground truth": ground_truth_masks(args.ground_truth, args.sequences)}
    else:
        cases = {f"{w}x{h}": [walker_masks(args.frames, h, w, rng) for _ in range(args.sequences)]
                 for w, h in ((320, 180), (1920, 1080))}
    print(f"{'masks':>24} {'frames':>7} {'ours f/s':>10} {'loop f/s':>10} {'loop+np f/s':>12} "
          f"{'ours/loop':>10} {'ours/loop+np':>13}")
    for name, sequences in cases.items():
        frames = sum(len(m) for m in sequences)
        ours_time, ours = timed(lambda m: normalise_sequence(m)[0], sequences, args.repeats)
        loop_time, loop = timed(per_frame, sequences, args.repeats)
        numpy_time, numpy_loop = timed(lambda m: per_frame(m, python_centre=False), sequences, args.repeats)
        for a, b, c in zip(ours, loop, numpy_loop):
            assert a.tobytes() == b.tobytes() == c.tobytes(), "implementations disagree"
        print(f"{name:>24} {frames:>7} {frames / ours_time:>10.0f} {frames / loop_time:>10.0f} "
              f"{frames / numpy_time:>12.0f} {loop_time / ours_time:>10.2f} {numpy_time / ours_time:>13.2f}")


if __name__ == "__main__":
    main()
