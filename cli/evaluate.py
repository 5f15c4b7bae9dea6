"""`ragar-data evaluate`: metrics of a checkpoint on a dataset's test subjects (JSON, Markdown, bar chart)."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, resolve_dataset


def _test_frames(context, parameter, value):
    from ragar_data.errors import InputError
    from ragar_data.training.data import parse_test_frames

    try:
        return parse_test_frames(value)
    except InputError as error:
        raise click.BadParameter(str(error)) from error


# shared with `predict`: the paper's 30 frames per test sequence by default
frames_option = click.option(
    "--frames", "test_frames", default="30", show_default=True, callback=_test_frames,
    help="Frames per test sequence: N takes the central N consecutive frames (the paper's input is 30); 'all' "
         "takes every frame in order, capped at data.max_eval_frames of the run.")


@click.command(short_help="Evaluate a checkpoint: F1, Precision, Recall, Acc, mA.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@dataset_option
@click.option("--split", default="official", show_default=True,
              help="'official' (DATASET/partition.json, else the data layer's official split), 'seeded', or a partition JSON.")
@click.option("--out", type=click.Path(file_okay=False), help="Report directory [default: the checkpoint's directory].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Evaluation batch size [default: data.eval_batch_size of the run].")
@frames_option
def evaluate(checkpoint, dataset, split, out, device, batch_size, test_frames):
    """Evaluate CHECKPOINT on the test subjects of the dataset; print and write evaluation.{json,md,png}.

    F1 is the mean of per-sequence F1 (as the paper's tables); the report also holds F1_harmonic, the harmonic
    mean of mean Precision and mean Recall."""
    from ragar_data.training.evaluate import evaluate_checkpoint, markdown_report

    report, paths = evaluate_checkpoint(checkpoint, resolve_dataset(dataset), split, out, device, batch_size,
                                        test_frames=test_frames)
    click.echo(markdown_report(report))
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


# `evaluate identity CHECKPOINT` (Table 7) lives in its own module; this routes the word "identity" there.
from ragar_data.cli.evaluate_identity import with_identity  # noqa: E402

evaluate = with_identity(evaluate)
