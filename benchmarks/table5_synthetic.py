"""The paper's Table 5 on a generated dataset: a thin wrapper over `ragar-data benchmark table5`
(`ragar_data.cli.bench_table5`), kept for the commands recorded with earlier measurements.

    python benchmarks/table5_synthetic.py DATASET [--config table5_cpu] [--out runs/table5] [--set KEY=VALUE ...]

Runs the same rows as the command (CLIP RN50 zero-shot and fine-tuned when the weights are there, classification,
CLIP-GAR align, align + fusion, the majority-class floor), resuming per row. The former ``--parallel`` and
``--fusion-variant`` options are gone: rows run one after the other; a variant is a second run with ``--set``
into another ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ragar_data.cli.bench_table5 import run_table5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--config", default="table5_cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/table5"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    arguments = parser.parse_args()
    run_table5(arguments.dataset, arguments.out, arguments.config, arguments.overrides)


if __name__ == "__main__":
    main()
