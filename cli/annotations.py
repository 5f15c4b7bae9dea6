"""`ragar-data annotations`: check an attribute annotation CSV, or rewrite it in canonical form."""
from __future__ import annotations

import sys

import click

from ragar_data.annotations import check_annotations, read_annotations, write_annotations
from ragar_data.cli.common import EXIT_ERROR


def _known_subjects(dataset):
    if dataset is None:
        return None
    from ragar_data.split import dataset_subjects

    return dataset_subjects(dataset)


@click.group()
def annotations():
    """Check and import attribute annotation CSVs (format: schemas/annotations.yaml)."""


@annotations.command(short_help="Report every problem of an annotation CSV.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dataset", type=click.Path(file_okay=False, exists=True),
              help="Dataset directory: subjects not in its shards are reported.")
def check(file, dataset):
    """Report every problem of FILE as FILE:LINE: column X: message; exit 1 if there are errors."""
    problems = check_annotations(file, known_subjects=_known_subjects(dataset))
    for problem in problems:
        click.echo(problem.format(file))
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    if errors:
        click.echo(f"{file}: {errors} error(s), {warnings} warning(s)", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(f"{file}: OK ({warnings} warning(s))")


@annotations.command(short_help="Rewrite an annotation CSV in canonical form.")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--dataset", type=click.Path(file_okay=False, exists=True),
              help="Dataset directory: subjects not in its shards are errors.")
def convert(file, out, dataset):
    """Rewrite FILE as OUT in canonical form: class names, rows sorted by subject and combination."""
    table = read_annotations(file, known_subjects=_known_subjects(dataset))
    write_annotations(out, table)
    click.echo(f"{out}: {len(table)} rows")
