"""`ragar-data benchmark table3`: the paper's Table 3, the twelve gait recognition models as attribute recognisers.

Each model trains with the shared trainer (the library call behind `ragar-data train MODEL`) on the training
side of the dataset's partition, is evaluated on the test side (`ragar_data.training.evaluate`), and becomes one
row of the table; a majority-class floor row is added. Rows resume (`ragar_data.paper_tables`): a finished model
is read back, an interrupted one resumes from its ``last.pt``. Pose models on a dataset without keypoints_2d are
skipped with the reason. Owns the model list, the per-model runs and the table's notes; does not own training,
evaluation or the table files.

Run layout: ``<out>/models/<model>/classification/{last,final}.pt`` and ``.../evaluation.{json,md,png}``;
``<out>/rows/*.json``; ``<out>/table3.{md,json,png}``.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

COLUMNS = ("F1", "Precision", "Recall", "Acc", "mA")
# registry name -> the paper's row name, in the paper's order (silhouette models, then pose models)
MODELS = {
    "gaitset": "GaitSet", "gaitpart": "GaitPart", "gaitgl": "GaitGL", "gaitbase": "GaitBase",
    "deepgaitv2_2d": "DeepGaitV2-2D", "deepgaitv2_p3d": "DeepGaitV2-P3D", "deepgaitv2_3d": "DeepGaitV2-3D",
    "garnet": "GAR-Net", "gaitgraph": "GaitGraph", "gaitgraph2": "GaitGraph2", "gaittr": "GaitTR",
    "gpgait": "GPGait",
}
FLOOR = "Majority class (floor)"
# The paper's Table 3 rows known to us (/work/shared/REFERENCE.md): F1 / Precision / Recall / Acc / mA.
PAPER = {
    "GAR-Net": (73.15, 72.65, 74.18, 84.87, 62.18),
    "DeepGaitV2-3D": (71.48, 76.81, 67.44, 85.16, 62.09),
    "GaitGraph": (61.78, 77.03, 52.34, 82.24, 56.16),
}
DEFAULT_CONFIG = "table3_cpu"
# Per-model settings of a packaged config, applied after the config file and before --set (the config's leading
# comment says why each one is there). `--set MODEL:KEY=VALUE` adds to or overrides them for one model.
MODEL_SETTINGS: dict[str, dict[str, list[str]]] = {
    "table3_cpu": {
        # channels [16, 32, 64] (upstream [32, 64, 128]): at the shared 0.125 ([4, 8, 16]) GaitGL reached F1 50.8
        # (floor 47.8) and GAR-Net, with 23k parameters, stayed at the floor; measured on 96 generated subjects
        "gaitgl": ["model.width=0.5"],
        "garnet": ["model.width=0.5"],
        # the two ResGCN models learn slowly from raw keypoints: after 300 iterations both were at the floor
        # (GaitGraph F1 43.4, GaitGraph2 49.8; floor 47.8). They are cheap, so they train longer, GaitGraph at the
        # paper's batch 32 and 30 frames (3,000 iterations at batch 8 and 12 frames reached only F1 51.0)
        "gaitgraph": ["train.classification_iterations=1500", "train.batch_size=32", "data.frames=30"],
        "gaitgraph2": ["train.classification_iterations=1500"],
    },
}


def parse_models(text: str | None) -> list[str]:
    """``"gaitset,gaitgraph"`` -> registry names, checked; None -> all twelve."""
    if not text:
        return list(MODELS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; expected some of {', '.join(MODELS)}",
                                 param_hint="--models")
    return names


def has_keypoints(dataset_dir) -> bool:
    """Does any sequence of the dataset have keypoints_2d (a pose preset or imported poses)?"""
    from ragar_data.shards import ShardDataset

    models = ShardDataset(dataset_dir).table(["keypoints_2d_model"])["keypoints_2d_model"].to_pylist()
    return any(model is not None for model in models)


def split_overrides(overrides) -> tuple[list[str], dict[str, list[str]]]:
    """``--set`` values -> (those for every model, {model: its own}): ``KEY=VALUE`` or ``MODEL:KEY=VALUE``."""
    shared, per_model = [], {}
    for item in overrides:
        key, equals, value = item.partition("=")
        if ":" not in key:
            shared.append(item)
            continue
        model, key = key.split(":", 1)
        if model not in MODELS:
            raise click.BadParameter(f"{item!r}: unknown model {model!r}; expected one of {', '.join(MODELS)}",
                                     param_hint="--set")
        per_model.setdefault(model, []).append(f"{key}{equals}{value}")
    return shared, per_model


def model_settings(models: list[str], config_name: str, overrides) -> dict[str, list[str]]:
    """{model: the overrides it trains with}: the config's per-model settings, the shared --set values, then the
    model's own --set values (later ones win)."""
    shared, per_model = split_overrides(overrides)
    packaged = MODEL_SETTINGS.get(str(config_name), {})
    return {name: [*packaged.get(name, []), *shared, *per_model.get(name, [])] for name in models}


def model_config(name: str, dataset, config_name: str, settings: list[str], out: Path):
    from ragar_data.training.config import load_config

    return load_config(config_name, [f"model.name={name}", f"data.dataset={dataset}",
                                     f"train.output_dir={out / 'models' / name}", *settings])


def headline_row(report: dict, seconds: dict, **notes) -> dict:
    """A table row from an evaluation report: the headline columns and the per-covariate breakdown."""
    breakdown = {f"{group}={value}": {c: metrics[c] for c in (*COLUMNS, "sequences") if c in metrics}
                 for group, values in report["per_covariate"].items() for value, metrics in values.items()}
    return {"metrics": {c: float(report["headline"][c]) for c in COLUMNS}, "breakdown": breakdown,
            "test_sequences": report["num_sequences"], "seconds": seconds, **notes}


def train_and_evaluate(name: str, config, dataset) -> dict:
    """Train one registered model (resuming its last.pt) and evaluate its final checkpoint on the test side."""
    from ragar_data.attributes import default_schema
    from ragar_data.models.deepgaitv2 import parameter_count
    from ragar_data.training.build import build_classifier
    from ragar_data.training.evaluate import evaluate_checkpoint
    from ragar_data.training.stages import train_classification

    started = time.perf_counter()
    result = train_classification(config, resume=True, progress=False)
    trained = time.perf_counter() - started
    report, _ = evaluate_checkpoint(result.checkpoint, dataset, config.data.split,
                                    result.checkpoint.parent / "evaluation", progress=False)
    evaluated = time.perf_counter() - started - trained
    model = build_classifier(config, default_schema())
    return headline_row(report, {"train": round(trained, 1), "evaluate": round(evaluated, 1)},
                        model=name, input=model.input_field, parameters=parameter_count(model),
                        iterations=config.train.classification_iterations, checkpoint=str(result.checkpoint))


def majority_floor(dataset, config) -> dict:
    """The floor: every test sequence gets each attribute's most frequent training class (the sequences with
    silhouettes, as the silhouette models see them)."""
    from ragar_data.attributes import default_schema
    from ragar_data.metrics import majority_class_scores
    from ragar_data.training.data import resolve_partition, side_keys, silhouette_dataset
    from ragar_data.training.evaluate import evaluation_report

    schema = default_schema()
    partition = resolve_partition(dataset, config.data.split)
    sides = {side: silhouette_dataset(dataset, side_keys(dataset, partition, side, config.data.quality_ok_only),
                                      config, train=False) for side in ("train", "test")}
    train, test = sides["train"], sides["test"]
    scores = majority_class_scores(train.one_hot[(train.labels >= 0).all(1)], len(test), schema)
    report = evaluation_report(scores, test.one_hot, test.labels, test.keys(), "sigmoid", schema, FLOOR)
    return headline_row(report, {"train": 0.0, "evaluate": 0.0}, model="majority class", parameters=0)


def breakdown_sections(results: dict) -> str:
    from ragar_data.paper_tables import breakdown_markdown

    breakdown = {row: result["breakdown"] for row, result in results.items() if result.get("breakdown")}
    return "".join(f"\n#### {column} by covariate (condition group, view, real vs simulated combination)\n\n"
                   + breakdown_markdown(breakdown, column) for column in ("F1", "mA"))


def timing_lines(results: dict) -> str:
    lines = ["| Method | input | parameters | iterations | train s | evaluate s |", "|---|---|---|---|---|---|"]
    for row, result in results.items():
        seconds = result.get("seconds", {})
        lines.append(f"| {row} | {result.get('input', '—')} | {result.get('parameters', 0):,} | "
                     f"{result.get('iterations', '—')} | {seconds.get('train', 0):.0f} | "
                     f"{seconds.get('evaluate', 0):.0f} |")
    return "\n".join(lines) + "\n"


def run_table3(dataset, models: list[str], config_name: str, overrides, out: Path, log=click.echo) -> dict:
    """Every row (resumed or computed), then the table files; returns {"paths", "results", "skipped"}."""
    from ragar_data.paper_tables import PaperTable
    from ragar_data.training.config import load_config

    table = PaperTable("table3", f"Table 3 on {dataset} (config {config_name})", COLUMNS,
                       {row: dict(zip(COLUMNS, values)) for row, values in PAPER.items()}, out)
    shared, _ = split_overrides(overrides)
    settings = model_settings(models, config_name, overrides)
    base = load_config(config_name, [f"data.dataset={dataset}", *shared])
    results = {FLOOR: table.run_row(FLOOR, lambda: majority_floor(dataset, base), log)}
    keypoints, skipped = None, {}
    for name in models:
        config = model_config(name, dataset, config_name, settings[name], out)
        if _input_of(name) == "keypoints_2d":
            keypoints = has_keypoints(dataset) if keypoints is None else keypoints
            if not keypoints:
                skipped[MODELS[name]] = (f"{dataset} has no keypoints_2d (extracted without a pose preset); "
                                         "for generated data run `ragar-data import synth-pose` first")
                log(f"table3: {MODELS[name]}: skipped: {skipped[MODELS[name]]}")
                continue
        if table.finished(MODELS[name]) is None:
            log(f"table3: {MODELS[name]}: training {config.train.classification_iterations} iterations")
        results[MODELS[name]] = table.run_row(MODELS[name], lambda: train_and_evaluate(name, config, dataset), log)
    notes = "\n".join([*(f"- {MODELS[n]}: trained with {', '.join(s)}" for n, s in settings.items() if s),
                       *(f"- {row}: skipped: {reason}" for row, reason in skipped.items())])
    paths = table.write(results, {"dataset": str(dataset), "config": config_name, "overrides": list(overrides),
                                  "model_settings": {n: s for n, s in settings.items() if s}, "skipped": skipped},
                        more_markdown="\n" + timing_lines(results) + breakdown_sections(results) + (f"\n{notes}\n" if notes else ""))
    return {"paths": paths, "results": results, "skipped": skipped, "markdown": paths["md"].read_text()}


def _input_of(name: str) -> str:
    from ragar_data.models.registry import model_entry

    return model_entry(name).input_field


@click.command("table3")
@click.option("--dataset", "-d", required=True, type=click.Path(file_okay=False, exists=True),
              help="Dataset folder (shards; partition.json or the official-proportion split).")
@click.option("--models", default=None, metavar="A,B,...",
              help=f"Registered models to run [default: all twelve: {','.join(MODELS)}].")
@click.option("--config", "config_name", default=DEFAULT_CONFIG, show_default=True,
              help="Packaged config name or YAML file shared by every model.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field for every model, e.g. --set train.classification_iterations=200, or for "
                   "one model: --set garnet:model.width=1 (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), default="runs/table3", show_default=True,
              help="Run folder: per-model runs, row results and the table files.")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default: torch's). On a loaded machine 1 is far faster: measured 35 s vs "
                   "0.08 s per GaitGraph iteration at load 20 on 2 cores, as idle OpenMP threads wait on each other.")
def table3(dataset, models, config_name, overrides, out, threads):
    """Table 3: train and evaluate each model, resume per model, print F1 / Precision / Recall / Acc / mA with the
    paper's values beside ours (with a majority-class floor), write md, json and PNG."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    summary = run_table3(Path(dataset), parse_models(models), config_name, list(overrides), Path(out))
    click.echo(summary["markdown"])
    click.echo(f"written: {', '.join(str(p) for p in summary['paths'].values())}")
