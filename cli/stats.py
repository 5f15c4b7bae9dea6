"""`ragar-data stats`: print a dataset's sequence and class counts and plot the class distribution."""
from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ragar_data.cli.common import dataset_option, legacy_dataset_argument, resolve_dataset
from ragar_data.stats import dataset_stats, no_labels_note, plot_class_distribution


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _spread(values: dict) -> str:
    return f"{values['min']}-{values['max']} (mean {values['mean']:.1f})"


@click.command(short_help="Print sequence and class counts of a dataset and plot them.")
@legacy_dataset_argument
@dataset_option
@click.option("--png", type=click.Path(dir_okay=False), help="Write a bar chart of the class distribution here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the counts as JSON.")
def stats(legacy_dataset, dataset, png, json_path):
    """Print sequence counts per attribute class, condition, view and combination type of the dataset.

    The positional DATASET is deprecated: use --dataset."""
    dataset = resolve_dataset(dataset, legacy_dataset)
    counts = dataset_stats(dataset)
    console = Console()
    total = counts["sequences"]
    per_subject = counts["sequences_per_subject"]
    overview = Table(title=f"{dataset}", show_header=False)
    for name, value in [
        ("sequences", total), ("subjects", counts["subjects"]),
        ("subject x combination", counts["subject_combinations"]),
        ("sequences per subject", f"{per_subject['min']}-{per_subject['max']} (mean {per_subject['mean']:.1f}, "
                                  f"RA-GAR has {per_subject['expected']})"),
        ("frames per sequence", _spread(counts["frames_per_sequence"])),
        ("silhouettes per sequence", _spread(counts["silhouettes_per_sequence"])),
        ("failed quality filter", f"{counts['quality']['failed']}" + "".join(
            f"\n  {reason}: {n}" for reason, n in counts["quality"]["reasons"].items())),
        ("unlabelled sequences", counts["unlabelled_sequences"]),
        ("partly labelled sequences", counts["partly_labelled_sequences"]),
    ]:
        overview.add_row(name, str(value))
    console.print(overview)

    note = no_labels_note(counts)
    if note is not None:
        click.echo(note)
    classes = Table(title="Sequences per attribute class")
    for column in ("attribute", "class", "sequences", "share"):
        classes.add_column(column, justify="right" if column in ("sequences", "share") else "left")
    for attribute, per_class in counts["classes"].items():
        for position, (name, count) in enumerate(per_class.items()):
            classes.add_row(attribute if position == 0 else "", name, str(count), _percent(count, total),
                            end_section=position == len(per_class) - 1)
    if note is None:
        console.print(classes)

    covariates = Table(title="Sequences per covariate")
    for column in ("covariate", "value", "sequences", "share"):
        covariates.add_column(column, justify="right" if column in ("sequences", "share") else "left")
    for covariate in ("condition_group", "condition", "view", "combination"):
        values = counts[covariate]
        for position, (value, count) in enumerate(values.items()):
            covariates.add_row(covariate if position == 0 else "", str(value), str(count), _percent(count, total),
                               end_section=position == len(values) - 1)
    console.print(covariates)

    if png and note is not None:
        click.echo(f"{png}: not written (no labels to plot)")
    elif png:
        console.print(f"wrote {plot_class_distribution(counts, png)}")
    if json_path:
        from ragar_data.shards import atomic_write_bytes

        atomic_write_bytes(json_path, (json.dumps(counts, indent=2) + "\n").encode())
        console.print(f"wrote {json_path}")
