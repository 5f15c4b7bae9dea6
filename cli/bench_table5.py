"""`ragar-data benchmark table5`: the paper's Table 5 (visual encoders and training stages) on a dataset.

Rows, in the paper's order: CLIP RN50's image encoder zero-shot and fine-tuned (`ragar_data.models.clip_visual`),
the classification baseline, the CLIP-GAR align stage, align + fusion; then the majority-class floor (ours, not
the paper's). Every model trains on the training subjects of the dataset's partition with one config
(``--config``, default table5_cpu) and is evaluated on the test subjects by
`ragar_data.training.evaluate.evaluate_checkpoint`; the CLIP rows add the paper's fine-tuning lr 5e-5 and
``--clip-set`` overrides. Without CLIP weights the CLIP rows are skipped with a line saying how to get them.

Layout of ``--out``: ``rows/<row>.json`` (a finished row is not run again), ``train/`` (the runs and their
``evaluation`` reports), ``table5.{md,json,png}`` and ``table5-covariates.md`` (F1 and mA per condition, view
and real/simulated combination). The rows shared with Table 6 (`ragar_data.cli.bench_table6`) use
`evaluated_row` and `covariate_markdown` from here.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from ragar_data.cli.common import dataset_option, resolve_dataset

COLUMNS = ("F1", "Precision", "Recall", "Acc", "mA")
ZERO_SHOT, FINE_TUNED = "CLIP RN50 zero-shot", "CLIP RN50 fine-tuned"
CLASSIFICATION, ALIGN, FUSION, FLOOR = ("Classification", "CLIP-GAR align", "CLIP-GAR align + fusion",
                                        "Majority class (floor)")
CLIP_FINE_TUNE_LR = 5e-5  # the paper's learning rate for fine-tuning CLIP's visual encoder
# The paper's values (RA-GAR test set; /work/shared/REFERENCE.md): the rows it prints in the text.
PAPER = {
    ZERO_SHOT: {"F1": 33.97, "mA": 50.08},
    ALIGN: {"F1": 73.04, "mA": 62.57},
    FUSION: {"F1": 76.00, "Precision": 77.40, "Recall": 74.74, "Acc": 84.31, "mA": 65.57},
}


def report_row(report: dict, started: float, checkpoint: Path | None = None) -> dict:
    """A table row from an evaluation report: the headline columns by name, the per-covariate breakdown
    ({"condition=nm": {column: value, "sequences": n}}), the test sequence count and the seconds it took."""
    breakdown = {f"{group}={value}": {c: m[c] for c in (*COLUMNS, "sequences") if c in m}
                 for group, values in report["per_covariate"].items() for value, m in values.items()}
    row = {"metrics": {c: report["headline"][c] for c in COLUMNS}, "breakdown": breakdown,
           "test_sequences": report["num_sequences"], "seconds": round(time.perf_counter() - started, 1)}
    if checkpoint is not None:
        row["checkpoint"] = str(checkpoint)
    return row


def evaluated_row(train, config) -> dict:
    """Train (``train()`` returns the final checkpoint; it resumes its own run) and evaluate on the test side."""
    from ragar_data.training.evaluate import evaluate_checkpoint

    started = time.perf_counter()
    checkpoint = Path(train())
    report, _ = evaluate_checkpoint(checkpoint, config.data.dataset, config.data.split,
                                    checkpoint.parent / "evaluation", progress=False)
    return report_row(report, started, checkpoint)


def floor_row(config) -> dict:
    """The majority-class predictor: each attribute's most frequent training class for every test sequence."""
    from ragar_data.attributes import default_schema
    from ragar_data.metrics import majority_class_scores
    from ragar_data.training.data import resolve_partition, side_keys, silhouette_dataset
    from ragar_data.training.evaluate import evaluation_report

    started, schema, dataset = time.perf_counter(), default_schema(), config.data.dataset
    partition = resolve_partition(dataset, config.data.split)
    sides = {side: silhouette_dataset(dataset, side_keys(dataset, partition, side, config.data.quality_ok_only),
                                      config, train=side == "train") for side in ("train", "test")}
    train, test = sides["train"], sides["test"]
    scores = majority_class_scores(train.one_hot[(train.labels >= 0).all(1)], len(test), schema)
    report = evaluation_report(scores, test.one_hot, test.labels, test.keys(), "sigmoid", schema, FLOOR)
    return report_row(report, started)


def covariate_markdown(title: str, results: dict) -> str:
    from ragar_data.paper_tables import breakdown_markdown

    breakdown = {row: result["breakdown"] for row, result in results.items() if "breakdown" in result}
    parts = [f"### {title}: per covariate", ""]
    for column in ("F1", "mA"):
        parts += [f"{column}:", "", breakdown_markdown(breakdown, column)]
    return "\n".join(parts)


def load_table_config(config_name: str, dataset: Path, out: Path, overrides, run: str = "train"):
    from ragar_data.training.config import load_config

    return load_config(config_name, [f"data.dataset={dataset}", *overrides, f"train.output_dir={out / run}"])


def run_table5(dataset: Path, out: Path, config_name: str, overrides=(), clip_overrides=(),
               clip_weights: Path | None = None, log=print) -> dict:
    """Every row of Table 5 that can run (CLIP rows need ``clip_weights``); writes the table; returns the rows."""
    from ragar_data.models.text_encoders import DEFAULT_CLIP_WEIGHTS
    from ragar_data.paper_tables import PaperTable
    from ragar_data.training.stages import train_classification, train_clip_visual, train_clipgar

    config = load_table_config(config_name, dataset, out, overrides)
    clip_config = load_table_config(config_name, dataset, out, [*overrides, f"optim.lr={CLIP_FINE_TUNE_LR}",
                                                                *clip_overrides])
    table = PaperTable("table5", "Table 5: visual encoders and training stages", COLUMNS, PAPER, out)
    weights = Path(clip_weights).expanduser() if clip_weights else DEFAULT_CLIP_WEIGHTS
    results, skipped = {}, {}
    clip_rows = {ZERO_SHOT: False, FINE_TUNED: True}
    for row, fine_tune in clip_rows.items():
        if table.finished(row) is None and not weights.is_file():
            skipped[row] = (f"no CLIP weights at {weights}: get them with `ragar-data models download clip-rn50` "
                            "(or pass --clip-weights PATH)")
            log(f"table5: {row}: skipped, {skipped[row]}")
            continue
        results[row] = table.run_row(row, lambda ft=fine_tune: evaluated_row(
            lambda: train_clip_visual(clip_config, weights, ft).checkpoint, clip_config), log)
    trainers = {CLASSIFICATION: lambda: train_classification(config).checkpoint,
                ALIGN: lambda: train_clipgar(config, stages=("align",))["align"].checkpoint,
                FUSION: lambda: train_clipgar(config, stages=("fusion",))["fusion"].checkpoint}
    for row, train in trainers.items():
        results[row] = table.run_row(row, lambda train=train: evaluated_row(train, config), log)
    results[FLOOR] = table.run_row(FLOOR, lambda: floor_row(config), log)
    write_table(table, results, {"config": config_name, "overrides": list(overrides),
                                 "clip_overrides": list(clip_overrides), "skipped": skipped}, log)
    return results


def write_table(table, results: dict, extra: dict, log) -> None:
    """The table's md/json/PNG plus ``<name>-covariates.md`` in its folder, both printed."""
    from ragar_data.atomic import atomic_write_text

    paths = table.write(results, extra)
    covariates = covariate_markdown(table.title, results)
    covariates_path = table.out_dir / f"{table.name}-covariates.md"
    atomic_write_text(covariates_path, covariates)
    log(table.markdown(results))
    log(covariates)
    log(f"written: {', '.join(str(p) for p in paths.values())}, {covariates_path}")


@click.command("table5")
@dataset_option
@click.option("--config", "config_name", default="table5_cpu", show_default=True,
              help="Training config of every row (a name in ragar_data/training/configs or a YAML path).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/table5"),
              show_default=True, help="Output folder; a rerun resumes it row by row.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override for every row.")
@click.option("--clip-set", "clip_overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override for the CLIP rows only (after lr 5e-5), e.g. train.batch_size=8.")
@click.option("--clip-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CLIP RN50 weights [default: the file `ragar-data models download clip-rn50` writes].")
def table5(dataset, config_name, out, overrides, clip_overrides, clip_weights):
    """Table 5: CLIP RN50 zero-shot and fine-tuned, classification, CLIP-GAR align, align + fusion."""
    run_table5(resolve_dataset(dataset), out, config_name, overrides, clip_overrides, clip_weights)
