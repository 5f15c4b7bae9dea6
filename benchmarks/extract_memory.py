"""Peak memory (RSS) of `ragar-data extract` (default preset, one worker) on one 1920x1080 clip of 10, 30 and 60 s
(and 180 s with --long), and how much it grows per frame.

A synthetic 10 s clip (one walker and a passer-by, 30 fps) is generated once; the longer clips repeat its frames
(re-encoded, so the walker jumps back to the start every 10 s: memory depends on the frame count, not on the
content; the subject track is one walk of about 100 frames whatever the length). Each extraction runs in its own
process, which reports its peak resident set size (`getrusage(RUSAGE_SELF).ru_maxrss`, threads included) and its
wall time. The growth is the slope of peak RSS over frames between the shortest and the longest clip.
--verify off runs without person verification (`verify.backend=null`), both runs each clip both ways; person
verification runs only when BlazePose's files are present (`ragar-data models download blazepose`).

    python benchmarks/extract_memory.py [--seconds 10,30,60] [--long] [--verify on|off|both] [--data DIR]
                                        [--set section.field=value ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from ragar_data.pipelines.config import apply_overrides, load_preset
from ragar_data.pipelines.runner import RunOptions, extract
started = time.perf_counter()
summary = extract(sys.argv[1], apply_overrides(load_preset(), json.loads(sys.argv[3])), videos=sys.argv[2],
                  options=RunOptions(workers=1, progress=False), log=lambda line: None)
print(json.dumps({"frames": summary.frames, "failed": summary.failed, "seconds": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_clip(root: Path) -> Path:
    """The generated 10 s clip (its videos folder)."""
    from ragar_data.synth import SynthConfig, generate

    config = SynthConfig(subjects=1, views=(90,), combinations=(0,), conditions=("nm-01",), seconds=10.0,
                         distractors=1)
    generate(root, config, progress=False)
    return root / "videos"


def repeated(source: Path, target: Path, times: int) -> Path:
    """`source` (an mp4) played `times` times in a row, re-encoded to `target`, streaming (bounded memory)."""
    import av

    from ragar_data.synth.video import write_video

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps, width, height = int(round(float(stream.average_rate))), stream.width, stream.height

    def frames():
        for _ in range(times):
            with av.open(str(source)) as container:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(format="rgb24")

    target.parent.mkdir(parents=True, exist_ok=True)
    return write_video(target, frames(), fps, width, height)


def measure(videos: Path, out: Path, overrides: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(videos), json.dumps(overrides)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"extract on {videos} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,30,60", help="clip lengths, multiples of 10 s")
    parser.add_argument("--data", type=Path, help="keep the clips here (reused when present)")
    parser.add_argument("--long", action="store_true", help="add a 180 s clip (about 4 min to extract; 175 MB of "
                        "disk for the clip, 2.3 GB while it runs for its reduced copy)")
    parser.add_argument("--verify", choices=("on", "off", "both"), default="on",
                        help="person verification (on: as the preset, when its files are present)")
    parser.add_argument("--set", action="append", default=[], help="preset override section.field=value")
    args = parser.parse_args()
    lengths = [int(s) for s in args.seconds.split(",")] + ([180] if args.long else [])
    if any(length % 10 or length <= 0 for length in lengths):
        raise SystemExit(f"--seconds: multiples of 10 expected, got {args.seconds}")
    modes = {"on": ["on"], "off": ["off"], "both": ["on", "off"]}[args.verify]
    with tempfile.TemporaryDirectory(prefix="extract-memory-") as scratch:
        root = args.data or Path(scratch)
        base = root / "synth" / "videos"
        if not base.is_dir():
            make_clip(root / "synth")
        source = next(base.rglob("*.mp4"))
        relative = source.relative_to(base)
        rows = []
        for length in lengths:
            videos = root / f"clips-{length}s"
            if not (videos / relative).is_file():
                repeated(source, videos / relative, length // 10)
            for mode in modes:
                overrides = args.set + (["verify.backend=null"] if mode == "off" else [])
                result = measure(videos, Path(scratch) / f"run-{length}s-{mode}", overrides)
                rows.append((length, mode, result))
                print(f"{length:>4} s, verify {mode}: {result['frames']} frames, peak RSS {result['peak_rss_mb']:.0f} "
                      f"MB, {result['seconds']:.1f} s ({result['frames'] / result['seconds']:.1f} frames/s), "
                      f"failed {result['failed']}", flush=True)
    print(f"\n{'clip':>6}{'verify':>8}{'frames':>8}{'peak RSS MB':>13}{'frames/s':>10}   "
          "(1920x1080, default preset, 1 worker)")
    for length, mode, result in rows:
        print(f"{length:>4} s{mode:>8}{result['frames']:>8}{result['peak_rss_mb']:>13.0f}"
              f"{result['frames'] / result['seconds']:>10.1f}")
    for mode in modes:
        print(growth_line(mode, [result for _, m, result in rows if m == mode]))


def growth_line(mode: str, results: list[dict]) -> str:
    """Peak RSS growth per frame between the shortest and the longest clip of one verification mode."""
    if len(results) < 2:
        return f"verify {mode}: growth needs two clip lengths"
    short, long = min(results, key=lambda r: r["frames"]), max(results, key=lambda r: r["frames"])
    slope = (long["peak_rss_mb"] - short["peak_rss_mb"]) / max(1, long["frames"] - short["frames"])
    return (f"verify {mode}: peak RSS grows {slope * 1000:.1f} MB per 1000 frames "
            f"({short['frames']} -> {long['frames']} frames)")


if __name__ == "__main__":
    main()
