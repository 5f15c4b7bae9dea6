"""`ragar-data qa`: compare an extraction run with the synthetic generator's ground truth."""
from __future__ import annotations

import sys

import click

from ragar_data.errors import RagarDataError


@click.command(short_help="Compare an extraction run with synthetic ground truth.")
@click.argument("run", type=click.Path(file_okay=False, exists=True))
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(file_okay=False, exists=True),
              help="The synth output folder (or its ground_truth/ folder).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Report path (default RUN/extract/qa.json).")
@click.option("--match-iou", default=0.5, show_default=True, help="Box IoU that counts as the same person.")
def qa(run, ground_truth, json_path, match_iou):
    """Silhouette IoU, subject-track recall, identity switches and keypoint errors of RUN."""
    from ragar_data.qa import run_qa

    try:
        run_qa(run, ground_truth, match_iou=match_iou, json_path=json_path, log=click.echo)
    except (RagarDataError, FileNotFoundError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
