"""The paper's Table 5 on a generated dataset: classification baseline, CLIP-GAR align stage, align + fusion,
and the majority-class floor, evaluated on the held-out (test) subjects.

    python benchmarks/table5_synthetic.py DATASET [--config short_cpu] [--out runs/table5] [--set KEY=VALUE ...]
        [--parallel] [--threads N] [--fusion-variant "LABEL:KEY=VALUE[,KEY=VALUE]" ...]

DATASET holds shards (e.g. `ragar-data synth` + `ragar-data extract`); its partition.json is used, or the
official-proportion split is made. Each model trains with the same short config and resumes if rerun.
``--parallel`` trains the classification baseline in a second process while CLIP-GAR trains (two cores).
``--fusion-variant`` adds a row: a fusion stage trained from the same align checkpoint with other settings
(e.g. ``"plain BCE:model.bce_weighting=plain"``), in ``<out>/variants/<n>/``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ragar_data.attributes import default_schema
from ragar_data.metrics import majority_class_scores
from ragar_data.training.config import load_config
from ragar_data.training.data import resolve_partition, side_keys, silhouette_dataset
from ragar_data.training.evaluate import evaluate_checkpoint, evaluation_report
from ragar_data.training.stages import train_classification, train_clipgar

COLUMNS = ("F1", "Precision", "Recall", "Acc", "mA")


def majority_floor(dataset_dir: Path, partition, config, schema) -> dict:
    train = silhouette_dataset(dataset_dir, side_keys(dataset_dir, partition, "train", config.data.quality_ok_only), config, train=True)
    test = silhouette_dataset(dataset_dir, side_keys(dataset_dir, partition, "test", config.data.quality_ok_only), config, train=False)
    known_train = train.one_hot[(train.labels >= 0).all(1)]
    scores = majority_class_scores(known_train, len(test), schema)
    return evaluation_report(scores, test.one_hot, test.labels, test.keys(), "sigmoid", schema,
                             "majority class (floor)")


def _train_classification_timed(config, threads: int):
    torch.set_num_threads(threads)
    started = time.perf_counter()
    result = train_classification(config)
    return result.checkpoint, time.perf_counter() - started


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, _, overrides = text.partition(":")
    if not label.strip() or "=" not in overrides:
        raise SystemExit(f"--fusion-variant {text!r}: expected LABEL:KEY=VALUE[,KEY=VALUE]")
    return label.strip(), [o.strip() for o in overrides.split(",") if o.strip()]


def train_fusion_variant(config_name: str, base_overrides: list[str], out: Path, index: int,
                         overrides: list[str]):
    """Fusion only, from ``<out>/align/final.pt``, with extra overrides, in ``<out>/variants/<index>/``."""
    run_dir = out / "variants" / str(index)
    (run_dir / "align").mkdir(parents=True, exist_ok=True)
    link = run_dir / "align" / "final.pt"
    if not link.exists():
        os.symlink((out / "align" / "final.pt").resolve(), link)
    config = load_config(config_name, [*base_overrides, f"train.output_dir={run_dir}", *overrides])
    return train_clipgar(config, stages=("fusion",))["fusion"].checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--config", default="short_cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/table5"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--parallel", action="store_true",
                        help="train the classification baseline in a second process beside CLIP-GAR")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per training process")
    parser.add_argument("--fusion-variant", dest="variants", action="append", default=[],
                        help='extra fusion row "LABEL:KEY=VALUE[,KEY=VALUE]" from the same align checkpoint')
    arguments = parser.parse_args()
    variants = [parse_variant(v) for v in arguments.variants]
    threads = arguments.threads or max(1, (os.cpu_count() or 2) // (2 if arguments.parallel else 1))
    torch.set_num_threads(threads)

    schema = default_schema()
    base_overrides = [f"data.dataset={arguments.dataset}", *arguments.overrides]
    config = load_config(arguments.config, [*base_overrides, f"train.output_dir={arguments.out}"])
    partition = resolve_partition(arguments.dataset, config.data.split)
    for note in partition.notes:
        print(note)
    print(f"partition: {len(partition.train)} training / {len(partition.test)} test subjects ({partition.protocol})")

    timings = {}
    wall = time.perf_counter()
    pending = None
    if arguments.parallel:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        pending = pool.submit(_train_classification_timed, config, threads)
    else:
        classification_checkpoint, timings["classification"] = _train_classification_timed(config, threads)
    started = time.perf_counter()
    clipgar = train_clipgar(config)
    timings["clipgar"] = time.perf_counter() - started
    started = time.perf_counter()
    variant_checkpoints = [train_fusion_variant(arguments.config, base_overrides, arguments.out, i, overrides)
                           for i, (_, overrides) in enumerate(variants)]
    timings["variants"] = time.perf_counter() - started
    if pending is not None:
        classification_checkpoint, timings["classification"] = pending.result()
        pool.shutdown()
    timings["training wall"] = time.perf_counter() - wall

    rows = {"Majority class (floor)": majority_floor(arguments.dataset, partition, config, schema)}
    evaluated = [("Classification", classification_checkpoint),
                 ("CLIP-GAR align stage", clipgar["align"].checkpoint),
                 ("CLIP-GAR align + fusion", clipgar["fusion"].checkpoint)]
    evaluated += [(f"CLIP-GAR align + fusion ({label})", checkpoint)
                  for (label, _), checkpoint in zip(variants, variant_checkpoints)]
    for label, checkpoint in evaluated:
        report, _ = evaluate_checkpoint(checkpoint, arguments.dataset, config.data.split,
                                        checkpoint.parent / "evaluation")
        rows[label] = report

    lines = [f"Table 5 on {arguments.dataset} ({len(partition.test)} test subjects, "
             f"{rows['Classification']['num_sequences']} test sequences; config {arguments.config})", "",
             "| Method | " + " | ".join(COLUMNS) + " | mean balanced acc. |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    for label, report in rows.items():
        balanced = np.mean([m["balanced_accuracy"] for m in report["per_attribute"].values()])
        lines.append(f"| {label} | " + " | ".join(f"{report['headline'][c]:.2f}" for c in COLUMNS)
                     + f" | {balanced:.2f} |")
    lines += ["", f"training time (s, this run; a resumed run counts only what it trained): "
                  + ", ".join(f"{name} {seconds:.0f}" for name, seconds in timings.items())
              + f"; {threads} torch thread(s) per process" + (", classification in parallel" if pending else "")]
    text = "\n".join(lines)
    print(text)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "table5.md").write_text(text + "\n")
    (arguments.out / "table5.json").write_text(json.dumps(
        {label: {"headline": r["headline"], "per_attribute": r["per_attribute"]} for label, r in rows.items()},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
