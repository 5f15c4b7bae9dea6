"""`ragar-data qa`: compare an extraction run with the synthetic generator's ground truth."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, resolve_dataset


@click.command(short_help="Compare an extraction run with synthetic ground truth.")
@click.argument("legacy_run", required=False, metavar="[RUN]", type=click.Path(file_okay=False))
@dataset_option
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(file_okay=False, exists=True),
              help="The synth output folder (or its ground_truth/ folder).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Report path (default DATASET/extract/qa.json).")
@click.option("--match-iou", default=0.5, show_default=True, help="Box IoU that counts as the same person.")
@click.option("--beside", "beside", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Another dataset extracted from the same videos (e.g. with another preset): measured too (its "
                   "report in its own extract/qa.json) and shown beside this one (repeatable).")
def qa(legacy_run, dataset, ground_truth, json_path, match_iou, beside):
    """Silhouette IoU, subject-track recall, identity switches, PCK and PA-MPJPE of the dataset's extraction.

    The positional RUN (the extracted dataset folder) is deprecated: use --dataset."""
    from ragar_data.qa import comparison_table, run_qa

    run = resolve_dataset(dataset, legacy_run, "RUN")
    reports = [run_qa(run, ground_truth, match_iou=match_iou, json_path=json_path, log=click.echo)]
    for other in beside:
        reports.append(run_qa(other, ground_truth, match_iou=match_iou))
    if beside:
        click.echo("")
        for line in comparison_table(reports):
            click.echo(line)
