"""Benchmark data: silhouette masks of a walking figure drawn with cv2 (torso, head, swinging arms and legs).

Only for benchmarks; tests build their own masks. `ragar_data.synth` ground truth can replace these where
the generator is available (see --ground-truth in the benchmark scripts).
"""
from __future__ import annotations

import cv2
import numpy as np


def walker_masks(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, height, width) uint8 0/255: a figure about 60-80 % of the image tall walking across it."""
    masks = np.zeros((frames, height, width), np.uint8)
    person = height * rng.uniform(0.6, 0.8)
    start, speed = width * rng.uniform(0.2, 0.4), width * rng.uniform(0.002, 0.005)
    top = height * rng.uniform(0.05, 0.15)
    thickness = max(2, int(person * 0.07))
    for t in range(frames):
        swing = np.sin(2 * np.pi * t / 30.0)
        cx = start + speed * t
        hip = (int(cx), int(top + 0.53 * person))
        shoulder = (int(cx), int(top + 0.2 * person))
        canvas = masks[t]
        cv2.ellipse(canvas, (int(cx), int(top + 0.07 * person)), (int(0.06 * person), int(0.07 * person)), 0, 0,
                    360, 255, -1)
        cv2.ellipse(canvas, (int(cx), int(top + 0.36 * person)), (int(0.09 * person), int(0.19 * person)), 0, 0,
                    360, 255, -1)
        for side in (-1, 1):
            foot = (int(cx + side * swing * 0.18 * person), int(top + person))
            hand = (int(cx - side * swing * 0.15 * person), int(top + 0.55 * person))
            cv2.line(canvas, hip, foot, 255, thickness)
            cv2.line(canvas, shoulder, hand, 255, max(2, thickness * 2 // 3))
    return masks


def ground_truth_masks(folder: str, limit: int) -> list[np.ndarray]:
    """Masks of up to `limit` synthetic ground-truth sequences under `folder` (ragar-data synth output)."""
    from pathlib import Path

    from ragar_data.synth.ground_truth import load_ground_truth

    paths = sorted(Path(folder).rglob("*.npz"))[:limit]
    if not paths:
        raise SystemExit(f"{folder}: no ground-truth .npz files")
    return [load_ground_truth(p)["masks"].astype(np.uint8) * 255 for p in paths]
