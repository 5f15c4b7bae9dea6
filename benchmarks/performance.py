"""Every row of the performance table (loader, bytes per sequence, extraction, normalisation) in one run.

    python benchmarks/performance.py [--rounds 3] [--out DIR]

Runs, one after the other in this one command, `loader_speed.py`, `extract_throughput.py` and
`normalise_speed.py` with `--rounds`, shows their own tables as they finish, and then prints one summary: every
ratio in every round next to its goal, and whether every round meets it. A ratio is always taken within one
round of one benchmark (the two sides measured one right after the other), so a shared machine's drift between
rounds does not enter it. The raw figures stay in DIR (default: a temporary folder) as one JSON file each.

Goals: the training loader (frame cache, the default reader) at >= 3x the batches/s of an OpenGait pickle tree
at 0 and 2 workers on 320 sequences and on 10,240 sequences in 40 shards (warm page cache; the cold page cache
is shown without a goal); the shards >= 6x smaller than the pickles; extraction (default preset, 1920x1080,
steady state) at >= 0.5 of rgb24 decode-only and >= 0.35 of yuv420p decode-only; normalisation faster than
OpenGait's per-frame `imgs2pickle` loop.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADER_ROWS = [("shards, frame cache | 320 seq", "320 seq"),
               ("shards, frame cache | 10240 seq in 40 shards", "10,240 seq in 40 shards")]
EXTRACT_ROWS = [("pipeline", "default"), ("no_verify", "no verification")]


def run(script: str, out: Path, *arguments: str) -> dict:
    """Run one benchmark script (its output shown as it comes) and read the figures it wrote."""
    path = out / f"{Path(script).stem}.json"
    print(f"\n$ python benchmarks/{script} {' '.join(arguments)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *arguments, "--json", str(path)], check=True)
    return json.loads(path.read_text())


WIDTH = 66  # the label column


def row(what: str, ratios: list[float], goal: float | None) -> str:
    """One line: the ratio of every round, the goal, and whether every round meets it."""
    rounds = " ".join(f"{r:.3f}" if r < 1 else f"{r:.2f}" for r in ratios)
    if goal is None:
        return f"{what:<{WIDTH}}{rounds:>22}{'(no goal)':>11}"
    verdict = "yes" if min(ratios) >= goal else "no"
    return f"{what:<{WIDTH}}{rounds:>22}{f'>= {goal:g}':>11}{verdict:>5}"


def loader_rows(figures: dict) -> list[str]:
    lines, baseline = [], figures["baseline"]
    for cache, goal in (("warm", 3.0), ("cold", None)):
        rates = figures["batches_per_s"][cache]
        for name, label in LOADER_ROWS:
            for workers in figures["workers"]:
                ratios = [mine[str(workers)] / theirs[str(workers)]
                          for mine, theirs in zip(rates[name], rates[baseline])]
                lines.append(row(f"loader / pickles, {cache}, {label}, {workers} workers", ratios, goal))
    sizes = figures["bytes_per_sequence"]
    lines.append(row(f"bytes per sequence, pickles / shards ({sizes['pickles']:,.0f} / {sizes['shards']:,.0f})",
                     [sizes["pickles"] / sizes["shards"]], 6.0))
    return lines


def extract_rows(figures: dict) -> list[str]:
    lines = []
    for name, label in EXTRACT_ROWS:
        cpu = figures["cpu_ms_per_frame"][name]
        for decode, goal in (("rgb24", 0.5), ("yuv420p", 0.35)):
            ratios = [r[name] / r[decode] for r in figures["rounds"]]
            lines.append(row(f"extraction / {decode} decode, {label} ({cpu:.1f} CPU ms/frame)", ratios, goal))
    return lines


def normalise_rows(figures: dict) -> list[str]:
    return [row(f"normalisation / imgs2pickle loop, {name}", values["ours_per_loop"], 1.0)
            for name, values in figures.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="keep the JSON figures here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ragar_performance_"))
    out.mkdir(parents=True, exist_ok=True)
    rounds = ["--rounds", str(args.rounds)]
    loader = run("loader_speed.py", out, *rounds)
    extraction = run("extract_throughput.py", out, *rounds)
    normalisation = run("normalise_speed.py", out, *rounds)
    print(f"\nperformance table, {args.rounds} rounds; loader and normalisation: our speed / theirs; extraction: "
          f"frames/s / decode-only frames/s (default preset: {extraction['verification']}; no verification: "
          "verify.backend=null); cold: the files dropped from the page cache before each measurement")
    print(f"{'what':<{WIDTH}}{'ratio in each round':>22}{'goal':>11}{'met':>5}")
    for line in loader_rows(loader) + extract_rows(extraction) + normalise_rows(normalisation):
        print(line)
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
