"""Synthetic generator speed at 1920x1080 on one thread: render only, and render + H.264 encode.

    python benchmarks/synth_speed.py [--seconds 2] [--views 0,90] [--preset ultrafast]

Prints frames/s side by side for the plain scene and the crowded one (second walker + occluding post) and
the ratio to real time (30 fps), by wall clock and by this process's CPU time (the honest "one core" number
on a shared machine, where the wall clock also counts other users' work). The per-view background (ray-cast
once per process, cached) is timed separately.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

from ragar_data.identity import SequenceKey  # noqa: E402
from ragar_data.synth import SynthConfig, stream_sequence, write_video  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--views", default="0,90")
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    views = [int(v) for v in args.views.split(",")]
    print(f"{args.width}x{args.height}, {args.seconds} s sequences, views {views}, x264 preset {args.preset}, "
          "one thread")
    print(f"{'scene':<24}{'clock':<6}{'render fps':>12}{'render+encode fps':>20}{'x real time':>14}")
    for crowded in (False, True):
        config = SynthConfig(subjects=1, seconds=args.seconds, width=args.width, height=args.height,
                             distractors=int(crowded), occlusion=crowded, preset=args.preset, views=tuple(views))
        started = time.perf_counter()
        for view in views:  # warm the per-view background cache
            stream_sequence(config, SequenceKey("001", 0, "nm-01", view))
        if not crowded:
            background_seconds = (time.perf_counter() - started) / len(views)
        frames_rendered = frames_encoded = 0
        render_seconds = {"wall": 0.0, "cpu": 0.0}
        encode_seconds = {"wall": 0.0, "cpu": 0.0}
        with tempfile.TemporaryDirectory() as folder:
            for view in views:
                for condition in ("nm-01", "bg-01", "cl-01"):
                    key = SequenceKey("001", 0, condition, view)
                    wall, cpu = time.perf_counter(), time.process_time()
                    frames, _ = stream_sequence(config, key)
                    frames_rendered += sum(1 for _ in frames)
                    render_seconds["wall"] += time.perf_counter() - wall
                    render_seconds["cpu"] += time.process_time() - cpu
                    wall, cpu = time.perf_counter(), time.process_time()
                    frames, truth = stream_sequence(config, key)
                    write_video(Path(folder) / "v.mp4", frames, config.fps, config.width, config.height,
                                preset=config.preset)
                    frames_encoded += len(truth["frame_index"])
                    encode_seconds["wall"] += time.perf_counter() - wall
                    encode_seconds["cpu"] += time.process_time() - cpu
        name = "second walker + post" if crowded else "one walker"
        for clock in ("wall", "cpu"):
            render_rate = frames_rendered / render_seconds[clock]
            encode_rate = frames_encoded / encode_seconds[clock]
            print(f"{name:<24}{clock:<6}{render_rate:>12.1f}{encode_rate:>20.1f}{encode_rate / 30:>14.2f}")
    print(f"(background ray-cast of a view, once per process and view: {background_seconds:.2f} s wall)")


if __name__ == "__main__":
    main()
