"""Extraction quality of a preset on a synthetic set with illumination drift, cast shadows and a crossing second
walker: `ragar-data synth` -> `extract --keep-masks` -> `qa`, with the summary (PCK and PA-MPJPE too when the preset
has pose stages) and a per-view breakdown.

    python benchmarks/extract_quality.py [--subjects 4] [--views 0,36,...] [--width 640 --height 360]
                                         [--combinations 0] [--seconds 3] [--preset default] [--workers 2] [--data DIR]

`--combinations 0,1,2` adds each subject's two simulated attribute combinations (other clothes, some of them
close in colour to the background: the hard case for colour-distance silhouettes); a per-combination line is
printed when there is more than one.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ragar_data.identity import SequenceKey
from ragar_data.pipelines.config import apply_overrides, load_preset
from ragar_data.pipelines.runner import RunOptions, extract
from ragar_data.qa import run_qa
from ragar_data.synth import SynthConfig, generate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--views", default="0,36,72,108,144,180,216,252,288,324")
    parser.add_argument("--conditions", default="nm-01,bg-01,cl-01")
    parser.add_argument("--combinations", default="0", help="attribute combinations (0 = real, 1-2 = simulated)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, help="keep the synthetic set and the run here (a set there is reused)")
    parser.add_argument("--worst", type=int, default=5, help="list this many sequences with the lowest IoU")
    parser.add_argument("--set", action="append", default=[], help="preset override section.field=value")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or Path(scratch)
        config = SynthConfig(subjects=args.subjects, views=tuple(int(v) for v in args.views.split(",")),
                             combinations=tuple(int(c) for c in args.combinations.split(",")),
                             conditions=tuple(args.conditions.split(",")), seconds=args.seconds,
                             width=args.width, height=args.height, distractors=1)
        started = time.perf_counter()
        if not (root / "synth" / "synth.json").is_file():  # --data: a set generated before is reused
            generate(root / "synth", config, workers=args.workers, progress=False)
            print(f"synth: {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        shutil.rmtree(root / "run", ignore_errors=True)  # measure a fresh run (a kept run would be reused)
        preset = apply_overrides(load_preset(args.preset), args.set)
        summary = extract(root / "run", preset, videos=root / "synth" / "videos",
                          options=RunOptions(workers=args.workers, keep_masks=True, progress=False),
                          log=lambda line: None)
        print("\n".join(summary.lines()))
        print(f"extract: {time.perf_counter() - started:.0f} s")
        report = run_qa(root / "run", root / "synth")
    s = report.summary
    print(f"\n{s['sequences']} sequences ({args.subjects} subjects, {args.width}x{args.height}, {args.seconds} s, "
          f"second walker crossing, illumination drift, shadows), preset {args.preset}")
    print(f"mean silhouette IoU       {s['mean_silhouette_iou']:.3f}   (frame-weighted "
          f"{s['frame_weighted_silhouette_iou']:.3f}, min {s['min_silhouette_iou']:.3f})")
    if s.get("mean_silhouette_iou_64") is not None:
        print(f"normalised 64x64 IoU      {s['mean_silhouette_iou_64']:.3f}   (OpenGait's normalisation of both)")
    print(f"subject-track recall      {s['subject_track_recall']:.3f}")
    print(f"subject found             {s['subject_found']}/{s['sequences']}")
    print(f"identity switches         {s['identity_switches']}")
    print(f"segmenter                 {report.stages['segment']}")
    pck = (s.get("keypoints_2d_pck") or {}).get("all")
    if pck:
        print(f"2D keypoints ({report.stages['pose2d']}): PCK@0.05 {pck['0.05']:.3f}, PCK@0.1 {pck['0.1']:.3f}")
    if s.get("keypoints_3d_pa_mpjpe_mm") is not None:
        print(f"3D keypoints ({report.stages['lift3d']}): PA-MPJPE {s['keypoints_3d_pa_mpjpe_mm']:.1f} mm")
    by_view = defaultdict(list)
    for row in report.sequences:
        by_view[SequenceKey.parse(row.key).view].append(row)
    print(f"\n{'view':>5}{'IoU':>8}{'recall':>8}{'found':>8}{'switches':>10}")
    for view in sorted(by_view):
        rows = by_view[view]
        print(f"{view:>5}{np.mean([r.silhouette_iou for r in rows]):8.3f}{np.mean([r.recall for r in rows]):8.3f}"
              f"{sum(r.found for r in rows):>5}/{len(rows):<2}{sum(r.identity_switches for r in rows):>10}")
    by_combination = defaultdict(list)
    for row in report.sequences:
        by_combination[SequenceKey.parse(row.key).combination].append(row)
    if len(by_combination) > 1:
        print(f"\n{'comb':>5}{'IoU':>8}{'min':>8}{'found':>8}{'switches':>10}")
        for combination in sorted(by_combination):
            rows = by_combination[combination]
            ious = [r.silhouette_iou or 0.0 for r in rows]
            print(f"{combination:>5}{np.mean(ious):8.3f}{min(ious):8.3f}{sum(r.found for r in rows):>5}/{len(rows):<2}"
                  f"{sum(r.identity_switches for r in rows):>10}")
    worst = sorted(report.sequences, key=lambda r: (r.silhouette_iou or 0.0, -r.identity_switches))[:args.worst]
    if worst:
        print("\nworst sequences: " + ", ".join(f"{r.key} IoU {r.silhouette_iou or 0:.2f} switches "
                                                f"{r.identity_switches}" for r in worst))


if __name__ == "__main__":
    main()
