"""Extraction throughput on 1920x1080 clips, side by side in one run:

1. decode only: PyAV threaded decode to rgb24 arrays, nothing else (the floor set for the pipeline), and to
   yuv420p arrays (the decoder's own planes, which the default preset keeps: the lowest floor);
2. the default pipeline (`ragar-data extract`, default preset, one worker): decode thread + detection at reduced
   resolution + ByteTrack + person verification (when BlazePose's files are present, as after the README's
   setup) + silhouettes refined in the subject's box (at half resolution for a 1080p walker) + normalisation +
   shard writing; also timed without person verification (`verify.backend=null`, the preset on a machine
   without BlazePose's files) and with the refinement at full resolution (`segment.options.work_height=0`),
   in steady state: the per-camera background plates are estimated once per camera (timed on their own) and
   reused, as in a run over a camera's many sequences (RA-GAR: 12,792 per camera) or a resumed run;
3. a naive frame-by-frame implementation of the same method: unthreaded decode, every frame classified at full
   resolution with float numpy (no reduced-resolution detection, no candidate-only shadow test), morphology and
   components at full resolution, no overlap of decode and compute (on the first two clips: it is slow).

Each figure is the best of `--rounds` alternating rounds (the machine may be shared), with the CPU time per frame;
every round is also printed on its own line, decode-only and the pipeline side by side with their ratios
(a shared machine's speed drifts between runs).
16 clips by default: the first clip's decoding overlaps nothing, which a long run amortises.

    python benchmarks/extract_throughput.py [--subjects 4] [--seconds 2] [--rounds 3] [--data DIR] [--json FILE]

`--json FILE` also writes every round's frames/s and the best rounds' CPU ms per frame (benchmarks/performance.py
reads it).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from ragar_data.identity import scan_raw_videos
from ragar_data.pipelines.config import apply_overrides, load_preset
from ragar_data.pipelines.decode import PyAVDecoder
from ragar_data.pipelines.runner import RunOptions, extract


def make_clips(root: Path, subjects: int, seconds: float) -> Path:
    """Two cameras (a frontal and a lateral view) with 2 walks per subject each: >= 4 sequences per camera, so
    the run uses per-camera background plates as on real data."""
    from ragar_data.synth import SynthConfig, generate

    config = SynthConfig(subjects=subjects, views=(0, 90), combinations=(0,), conditions=("nm-01", "bg-01"),
                         seconds=seconds, distractors=1)
    generate(root, config, progress=False)
    return root / "videos"


def decode_only(paths: list[Path], frame_format: str) -> tuple[int, float, float]:
    """(frames, wall seconds, CPU seconds) of decoding `paths` with PyAV's default threading."""
    started, cpu, frames = time.perf_counter(), time.process_time(), 0
    for path in paths:
        _, iterator = PyAVDecoder(frame_format=frame_format).open(path)
        for _ in iterator:
            frames += 1
    return frames, time.perf_counter() - started, time.process_time() - cpu


FULL_RESOLUTION = ["segment.options.work_height=0"]  # the subject refined at full resolution, as before
NO_VERIFICATION = ["verify.backend=null"]  # the default preset where BlazePose's files are missing
PIPELINES = {"pipeline": [], "no_verify": NO_VERIFICATION, "full": FULL_RESOLUTION}  # name -> overrides


def timed_extract(videos: Path, out: Path, plates_from: Path | None = None,
                  overrides: list[str] = ()) -> tuple[object, float, float]:
    """(summary, wall seconds, CPU seconds) of one extraction; plates copied in from an earlier run first (the
    default preset's: overrides here leave the detector, so its plates, unchanged)."""
    config = apply_overrides(load_preset(), list(overrides))
    if plates_from is not None:
        source = Path("extract") / load_preset().hash() / "backgrounds"
        shutil.copytree(plates_from / source, out / "extract" / config.hash() / "backgrounds")
    started, cpu = time.perf_counter(), time.process_time()
    summary = extract(out, config, videos=videos, options=RunOptions(progress=False), log=lambda line: None)
    return summary, time.perf_counter() - started, time.process_time() - cpu


def verification_line() -> str:
    """Whether the default preset verifies people here (BlazePose's files present)."""
    from ragar_data.pipelines.verify import active_verification

    return ("person verification on" if active_verification(load_preset()).verify.backend
            else "person verification off: BlazePose's files are missing")


def naive(paths: list[Path]) -> tuple[int, float]:
    """Frame-by-frame, full resolution, float numpy: what a straightforward implementation does."""
    import av

    from ragar_data.pipelines.track import prepare_ultralytics_offline

    prepare_ultralytics_offline()
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.byte_tracker import BYTETracker

    started, frames = time.perf_counter(), 0
    kernel = np.ones((5, 5), np.uint8)
    for path in paths:
        with av.open(str(path)) as container:  # background: median of frames sampled in a first pass
            video = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        background = np.median(np.stack(video[:: max(1, len(video) // 12)]), axis=0).astype(np.float32)
        del video
        tracker = BYTETracker(SimpleNamespace(track_high_thresh=0.25, track_low_thresh=0.1, new_track_thresh=0.25,
                                              track_buffer=30, match_thresh=0.8, fuse_score=True))
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="rgb24").astype(np.float32)
                gain = np.median(image.sum(-1) / (background.sum(-1) + 1))
                image /= gain
                distance = np.sqrt(((image - background) ** 2).mean(-1))
                ratio = (image * background).sum(-1) / ((background ** 2).sum(-1) + 1e-3)
                chroma = np.linalg.norm(image - ratio[..., None] * background, axis=-1) / np.sqrt(
                    (background ** 2).sum(-1) + 1e-3)
                mask = (distance > 8) & ~((ratio > 0.35) & (ratio < 0.92) & (chroma < 0.05))
                mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
                count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
                rows = [(x, y, x + w, y + h, 0.9, 0) for x, y, w, h, a in stats[1:] if a > 4000]
                tracker.update(Boxes(np.asarray(rows, np.float32).reshape(-1, 6), mask.shape))
                frames += 1
    return frames, time.perf_counter() - started


def prepared_clips(root: Path, subjects: int, seconds: float, frame_format: str) -> tuple[Path, list[Path]]:
    """The benchmark's clips (made under `root` unless its videos/ exists) and their paths, with the page cache
    and the codec warmed by one decode."""
    videos = root / "videos" if (root / "videos").is_dir() else make_clips(root, subjects, seconds)
    paths = [path for _, path in scan_raw_videos(videos)]
    decode_only(paths[:1], frame_format)
    return videos, paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=4, help="subjects; 4 clips each (2 cameras x 2 walks)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, help="keep the generated clips here (reused when present)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        videos, paths = prepared_clips(args.data or scratch / "synth", args.subjects, args.seconds, "rgb24")
        # warm-up: imports and first-call costs; its plates are what the timed runs reuse
        _, warm_seconds, _ = timed_extract(videos, scratch / "warm")
        best = {}  # name -> the fastest round's (frames, wall seconds, CPU seconds)

        def keep_fastest(name, result):
            best[name] = min(best.get(name, result), result, key=lambda r: r[1])

        per_round = []  # each round's {name: frames/s}, measured one after the other
        for round_number in range(args.rounds):
            rates_now = {}
            for frame_format in ("rgb24", "yuv420p"):
                frames, wall, cpu = decode_only(paths, frame_format)
                keep_fastest(frame_format, (frames, wall, cpu))
                rates_now[frame_format] = frames / wall
            for name, overrides in PIPELINES.items():
                out = scratch / f"{name}{round_number}"
                summary, wall, cpu = timed_extract(videos, out, plates_from=scratch / "warm", overrides=overrides)
                keep_fastest(name, (summary.frames, wall, cpu))
                rates_now[name] = summary.frames / wall
                shutil.rmtree(out)
            per_round.append(rates_now)
        naive_frames, naive_seconds = naive(paths[:2])
    rates = {name: frames / wall for name, (frames, wall, _) in best.items()}
    cpu_ms = {name: 1000 * cpu / frames for name, (frames, _, cpu) in best.items()}
    rates["naive"], cpu_ms["naive"] = naive_frames / naive_seconds, float("nan")
    rows = [("decode only, rgb24 (PyAV threaded)", "rgb24"), ("decode only, yuv420p (PyAV threaded)", "yuv420p"),
            ("default pipeline (extract, 1 worker)", "pipeline"),
            ("  the same, no person verification", "no_verify"),
            ("  the same, full-resolution refinement", "full"), ("naive frame-by-frame (full-res numpy)", "naive")]
    print(f"{len(paths)} clips ({best['rgb24'][0]} frames of 1920x1080), 2 cameras; best of {args.rounds} rounds")
    print(f"{'':<40}{'frames/s':>9}{'CPU ms/frame':>14}{'/ rgb24 decode':>16}{'/ yuv420p decode':>18}")
    for label, name in rows:
        print(f"{label:<40}{rates[name]:>9.1f}{cpu_ms[name]:>14.1f}{rates[name] / rates['rgb24']:>16.2f}"
              f"{rates[name] / rates['yuv420p']:>18.2f}")
    print(f"default pipeline / naive: {rates['pipeline'] / rates['naive']:.1f}x")
    print("\neach round, side by side (frames/s; the ratio of each pipeline to decode-only within the round)")
    print(f"{'round':>5}{'rgb24 decode':>14}{'yuv420p decode':>16}" + "".join(
        f"{name:>12}{'/ rgb24':>9}{'/ yuv420p':>11}" for name in PIPELINES))
    for number, rates_now in enumerate(per_round, 1):
        print(f"{number:>5}{rates_now['rgb24']:>14.1f}{rates_now['yuv420p']:>16.1f}" + "".join(
            f"{rates_now[name]:>12.1f}{rates_now[name] / rates_now['rgb24']:>9.2f}"
            f"{rates_now[name] / rates_now['yuv420p']:>11.2f}" for name in PIPELINES))
    print(f"warm-up run (imports, the 2 cameras' plate estimation, {len(paths)} sequences): {warm_seconds:.1f} s")
    print(f"pipeline names: pipeline = default preset ({verification_line()}); no_verify = verify.backend=null; "
          "full = segment.options.work_height=0")
    if args.json:
        args.json.write_text(json.dumps({"rounds": per_round, "cpu_ms_per_frame": cpu_ms,
                                         "frames": best["rgb24"][0], "clips": len(paths),
                                         "verification": verification_line()}, indent=1))


if __name__ == "__main__":
    main()
