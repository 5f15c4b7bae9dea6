"""`ragar-data evaluate`: metrics of a checkpoint on a dataset's test subjects (JSON, Markdown, bar chart)."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, resolve_dataset


@click.command(short_help="Evaluate a checkpoint: mA, Acc, Precision, Recall, F1.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@dataset_option
@click.option("--split", default="official", show_default=True,
              help="'official' (DATASET/partition.json, else the data layer's official split), 'seeded', or a partition JSON.")
@click.option("--out", type=click.Path(file_okay=False), help="Report directory [default: the checkpoint's directory].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Evaluation batch size [default: data.eval_batch_size of the run].")
def evaluate(checkpoint, dataset, split, out, device, batch_size):
    """Evaluate CHECKPOINT on the test subjects of the dataset; print and write evaluation.{json,md,png}."""
    from ragar_data.training.evaluate import evaluate_checkpoint, markdown_report

    report, paths = evaluate_checkpoint(checkpoint, resolve_dataset(dataset), split, out, device, batch_size)
    click.echo(markdown_report(report))
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


# `evaluate identity CHECKPOINT` (Table 7) lives in its own module; this routes the word "identity" there.
from ragar_data.cli.evaluate_identity import with_identity  # noqa: E402

evaluate = with_identity(evaluate)
