"""`ragar-data train`: train CLIP-GAR (align, then fusion) or the classification baseline from shards.

Distributed: ``torchrun --nproc_per_node N -m ragar_data.cli.main train clipgar --dataset DIR``.
"""
from __future__ import annotations

import click

import os

from ragar_data.errors import RagarDataError


def _echo(message: str) -> None:
    """Print once under torchrun (rank 0 only)."""
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(message)

_config_options = [
    click.option("--config", "config_name", default=None,
                 help="Packaged config name (clipgar, smoke, short_cpu) or a YAML file."),
    click.option("--dataset", type=click.Path(file_okay=False), help="Dataset directory (sets data.dataset)."),
    click.option("--out", type=click.Path(file_okay=False), help="Run directory (sets train.output_dir)."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Override a config field by dotted name, e.g. --set optim.lr=3e-4 (repeatable)."),
    click.option("--no-resume", is_flag=True, help="Start over even if the run directory has a checkpoint."),
    click.option("--dry-run", is_flag=True, help="Print the config summary and parameter counts, train nothing."),
]


def _with_config_options(function):
    for option in reversed(_config_options):
        function = option(function)
    return function


def _load(config_name, dataset, out, overrides, default_name):
    from ragar_data.training.config import ConfigError, load_config

    extra = list(overrides)
    if dataset:
        extra.append(f"data.dataset={dataset}")
    if out:
        extra.append(f"train.output_dir={out}")
    try:
        return load_config(config_name or default_name, extra)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


class _ModelGroup(click.Group):
    """`train clipgar`, `train classification`, and `train MODEL` for every registered model."""

    def list_commands(self, ctx):
        from ragar_data.models.registry import list_models

        return super().list_commands(ctx) + list_models()

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        from ragar_data.models.registry import list_models

        return _model_command(name) if name in list_models() else None


@click.group(cls=_ModelGroup, short_help="Train CLIP-GAR or a baseline from shards.")
def train():
    """Train models from a dataset's training subjects (partition.json, else the official split).

    Besides clipgar and classification, every registered model (GaitSet, GaitGL, DeepGaitV2-*, GaitGraph, ...)
    trains with `ragar-data train MODEL --dataset DIR`, its packaged config MODEL.yaml by default."""


@train.command()
@_with_config_options
@click.option("--stage", type=click.Choice(["all", "align", "fusion"]), default="all", show_default=True,
              help="Run both stages, or one (fusion starts from the run's align/final.pt).")
def clipgar(config_name, dataset, out, overrides, no_resume, dry_run, stage):
    """CLIP-GAR: the align stage (V and θ with the KL align loss), then the fusion stage (BCE, V and T frozen)."""
    from ragar_data.training.stages import describe, train_clipgar

    config = _load(config_name, dataset, out, overrides, "clipgar")
    _echo(describe(config))
    if dry_run:
        return
    stages = ("align", "fusion") if stage == "all" else (stage,)
    try:
        results = train_clipgar(config, stages, resume=not no_resume)
    except RagarDataError as error:
        raise click.ClickException(str(error)) from error
    for name, result in results.items():
        _echo(f"{name}: {result.iterations_per_second:.2f} it/s, checkpoint {result.checkpoint}")


@train.command()
@_with_config_options
def classification(config_name, dataset, out, overrides, no_resume, dry_run):
    """The classification baseline: the same visual encoder with attribute heads, no text."""
    from ragar_data.training.stages import describe, train_classification

    config = _load(config_name, dataset, out, overrides, "clipgar")
    _echo(describe(config))
    if dry_run:
        return
    try:
        result = train_classification(config, resume=not no_resume)
    except RagarDataError as error:
        raise click.ClickException(str(error)) from error
    _echo(f"classification: {result.iterations_per_second:.2f} it/s, checkpoint {result.checkpoint}")


def _model_command(name: str) -> click.Command:
    @click.command(name=name, help=f"Train the registered model {name} (attribute head, BCE) with the shared "
                                   f"trainer; config {name}.yaml unless --config is given.")
    @_with_config_options
    def command(config_name, dataset, out, overrides, no_resume, dry_run):
        from ragar_data.training.stages import describe, train_classification

        config = _load(config_name, dataset, out, [f"model.name={name}", *overrides], name)
        _echo(describe(config))
        if dry_run:
            return
        try:
            result = train_classification(config, resume=not no_resume)
        except RagarDataError as error:
            raise click.ClickException(str(error)) from error
        _echo(f"{name}: {result.iterations_per_second:.2f} it/s, checkpoint {result.checkpoint}")

    return command
