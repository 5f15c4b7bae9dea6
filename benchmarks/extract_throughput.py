"""Extraction throughput on 1920x1080 clips, side by side in one run:

1. decode only: PyAV threaded decode to rgb24 arrays, nothing else (the floor no pipeline can beat);
2. the default pipeline (`ragar-data extract`, default preset, one worker): decode thread + detection at reduced
   resolution + ByteTrack + full-resolution silhouettes in the subject's box + normalisation + shard writing;
3. a naive frame-by-frame implementation of the same method: unthreaded decode, every frame classified at full
   resolution with float numpy (no reduced-resolution detection, no candidate-only shadow test), morphology and
   components at full resolution, no overlap of decode and compute.

    python benchmarks/extract_throughput.py [--clips 2] [--seconds 2] [--data DIR]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from ragar_data.identity import scan_raw_videos
from ragar_data.pipelines.config import load_preset
from ragar_data.pipelines.decode import PyAVDecoder
from ragar_data.pipelines.runner import RunOptions, extract


def make_clips(root: Path, clips: int, seconds: float) -> Path:
    from ragar_data.synth import SynthConfig, generate

    views = tuple([90, 270, 108, 252, 72, 288][:clips])
    config = SynthConfig(subjects=1, views=views, combinations=(0,), conditions=("nm-01",), seconds=seconds,
                         distractors=1)
    generate(root, config, progress=False)
    return root / "videos"


def decode_only(paths: list[Path]) -> tuple[int, float]:
    started, frames = time.perf_counter(), 0
    for path in paths:
        _, iterator = PyAVDecoder().open(path)
        for _ in iterator:
            frames += 1
    return frames, time.perf_counter() - started


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--data", type=Path, help="keep the generated clips here (reused when present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or Path(scratch) / "synth"
        videos = root / "videos" if (root / "videos").is_dir() else make_clips(root, args.clips, args.seconds)
        paths = [path for _, path in scan_raw_videos(videos)]
        decode_only(paths[:1])  # warm the page cache and the codec
        frames, decode_seconds = decode_only(paths)
        extract(Path(scratch) / "warm", load_preset(), videos=videos,
                options=RunOptions(progress=False), log=lambda line: None)  # imports, first-call costs
        started = time.perf_counter()
        summary = extract(Path(scratch) / "run", load_preset(), videos=videos, options=RunOptions(progress=False),
                          log=lambda line: None)
        pipeline_seconds = time.perf_counter() - started
        naive_frames, naive_seconds = naive(paths)
    decode_fps, pipeline_fps, naive_fps = (frames / decode_seconds, summary.frames / pipeline_seconds,
                                           naive_frames / naive_seconds)
    print(f"{len(paths)} clips, {frames} frames of 1920x1080")
    print(f"{'decode only (PyAV threaded, rgb24)':<44}{decode_fps:8.1f} frames/s   1.00")
    print(f"{'default pipeline (extract, 1 worker)':<44}{pipeline_fps:8.1f} frames/s   {pipeline_fps / decode_fps:.2f}")
    print(f"{'naive frame-by-frame (full-res numpy)':<44}{naive_fps:8.1f} frames/s   {naive_fps / decode_fps:.2f}")
    print(f"default pipeline / naive: {pipeline_fps / naive_fps:.1f}x")


if __name__ == "__main__":
    main()
