"""The paper's Table 5 on a generated dataset: classification baseline, CLIP-GAR align stage, align + fusion,
and the majority-class floor, evaluated on the held-out (test) subjects.

    python benchmarks/table5_synthetic.py DATASET [--config short_cpu] [--out runs/table5] [--set KEY=VALUE ...]

DATASET holds shards (e.g. `ragar-data synth` + `ragar-data extract`); its partition.json is used, or the
official-proportion split is made. Each model trains with the same short config and resumes if rerun.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--config", default="short_cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/table5"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    arguments = parser.parse_args()

    schema = default_schema()
    config = load_config(arguments.config, [f"data.dataset={arguments.dataset}",
                                            f"train.output_dir={arguments.out}", *arguments.overrides])
    partition = resolve_partition(arguments.dataset, config.data.split)
    for note in partition.notes:
        print(note)
    print(f"partition: {len(partition.train)} training / {len(partition.test)} test subjects ({partition.protocol})")

    timings = {}
    started = time.perf_counter()
    classification = train_classification(config)
    timings["classification"] = time.perf_counter() - started
    started = time.perf_counter()
    clipgar = train_clipgar(config)
    timings["clipgar"] = time.perf_counter() - started

    rows = {"Majority class (floor)": majority_floor(arguments.dataset, partition, config, schema)}
    for label, checkpoint in (("Classification", classification.checkpoint),
                              ("CLIP-GAR align stage", clipgar["align"].checkpoint),
                              ("CLIP-GAR align + fusion", clipgar["fusion"].checkpoint)):
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
    lines += ["", f"training time: classification {timings['classification']:.0f} s, "
                  f"CLIP-GAR align + fusion {timings['clipgar']:.0f} s"]
    text = "\n".join(lines)
    print(text)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "table5.md").write_text(text + "\n")
    (arguments.out / "table5.json").write_text(json.dumps(
        {label: {"headline": r["headline"], "per_attribute": r["per_attribute"]} for label, r in rows.items()},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
