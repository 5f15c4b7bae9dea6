"""Silhouette normalisation speed: ragar_data.silhouettes (vectorised) vs plain per-frame loops, one run.

    python benchmarks/normalise_speed.py [--sequences 6] [--frames 60] [--rounds 3] [--json FILE]
                                         [--ground-truth SYNTH_OUT/ground_truth]

Both per-frame loops implement the same algorithm (OpenGait pretreatment rules) one frame at a time: the
first finds the x-centre with a Python loop over columns as upstream's pretreatment.py (`imgs2pickle`) does,
the second with numpy. Every output is checked equal to ours before timing is reported. Masks are in memory
(no PNG reading): 480x270 and 1920x1080 walking-figure masks to 64 x 64, and 1920x1080 to 128 x 128. Each
round times every implementation once; a ratio is taken within a round. `--json FILE` also writes the ratios.
"""
from __future__ import annotations

import argparse
import json
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


def timed(function, sequences):
    start = time.perf_counter()
    results = [function(masks) for masks in sequences]
    return time.perf_counter() - start, results


CASES = ((480, 270, 64), (1920, 1080, 64), (1920, 1080, 128))  # mask width, height, output size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ground-truth", help="use masks of synthetic ground truth under this folder (64 x 64)")
    parser.add_argument("--json", type=Path, help="also write every round's ratios to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    cv2.setNumThreads(1)  # compare algorithms, not thread pools
    rng = np.random.default_rng(0)
    if args.ground_truth:
        cases = {"synthetic ground truth -> 64": (ground_truth_masks(args.ground_truth, args.sequences), 64)}
    else:
        masks = {(w, h): [walker_masks(args.frames, h, w, rng) for _ in range(args.sequences)]
                 for w, h in {(w, h) for w, h, _ in CASES}}
        cases = {f"{w}x{h} -> {size}": (masks[w, h], size) for w, h, size in CASES}
    print(f"{'masks':>24} {'frames':>7} {'ours f/s':>10} {'loop f/s':>10} {'loop+np f/s':>12} "
          f"{'ours/loop by round':>20} {'ours/loop+np by round':>22}")
    report = {}
    for name, (sequences, size) in cases.items():
        frames = sum(len(m) for m in sequences)
        rounds = []
        for _ in range(args.rounds):
            ours_time, ours = timed(lambda m: normalise_sequence(m, size)[0], sequences)
            loop_time, loop = timed(lambda m: per_frame(m, size), sequences)
            numpy_time, numpy_loop = timed(lambda m: per_frame(m, size, python_centre=False), sequences)
            for a, b, c in zip(ours, loop, numpy_loop):
                assert a.tobytes() == b.tobytes() == c.tobytes(), "implementations disagree"
            rounds.append((ours_time, loop_time, numpy_time))
        ours_time, loop_time, numpy_time = (min(r[i] for r in rounds) for i in range(3))
        loop_ratios = [loop / ours for ours, loop, _ in rounds]
        numpy_ratios = [numpy / ours for ours, _, numpy in rounds]
        print(f"{name:>24} {frames:>7} {frames / ours_time:>10.0f} {frames / loop_time:>10.0f} "
              f"{frames / numpy_time:>12.0f} {' '.join(f'{r:.1f}' for r in loop_ratios):>20} "
              f"{' '.join(f'{r:.1f}' for r in numpy_ratios):>22}")
        report[name] = {"ours_per_loop": loop_ratios, "ours_per_numpy_loop": numpy_ratios,
                        "ours_frames_per_s": frames / ours_time}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
