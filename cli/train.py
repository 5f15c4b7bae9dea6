"""`ragar-data train`: train CLIP-GAR (align, then fusion) or the classification baseline from shards.

Distributed: ``torchrun --nproc_per_node N -m ragar_data.cli.main train clipgar --dataset DIR``.
"""
from __future__ import annotations

import os
import re

import click

from ragar_data.cli.common import DATASET_HELP, default_dataset, resolve_dataset


def _echo(message: str) -> None:
    """Print once under torchrun (rank 0 only)."""
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(message)


def _config_summary(path) -> str:
    """First sentence of a config file's leading comment, and whether it needs the CLIP weights."""
    import yaml

    from ragar_data.training.config import TextConfig

    text = path.read_text()
    comment = " ".join(line.lstrip("#").strip() for line in re.match(r"(?:#.*\n)*", text).group().splitlines())
    sentence = re.split(r"(?<=\.)\s", comment, maxsplit=1)[0].strip()
    if len(sentence) > 100:  # long first sentences hold their gist before the colon
        sentence = sentence.split(": ", 1)[0]
    document = yaml.safe_load(text) or {}
    backend = (document.get("text") or {}).get("backend", TextConfig.backend)
    needs = {"learned": "no weights needed", "clip": "needs the CLIP RN50 weights"}.get(
        backend, f"needs the {backend} weights")
    return f"{sentence.rstrip('.') or path.stem} ({needs})"


def packaged_configs() -> list[tuple[str, str]]:
    """(name, one-line summary) of every config in ragar_data/training/configs/."""
    from ragar_data.training.config import CONFIG_DIR

    return [(path.stem, _config_summary(path)) for path in sorted(CONFIG_DIR.glob("*.yaml"))]


def _format_configs(formatter) -> None:
    with formatter.section("Packaged configs (--config NAME)"):
        formatter.write_dl(packaged_configs())


class _ConfigsGroup(click.Group):
    def format_epilog(self, ctx, formatter):
        _format_configs(formatter)
        super().format_epilog(ctx, formatter)


class _ConfigsCommand(click.Command):
    def format_epilog(self, ctx, formatter):
        _format_configs(formatter)
        super().format_epilog(ctx, formatter)


_config_options = [
    click.option("--config", "config_name", default=None,
                 help="Packaged config name (listed below) or a YAML file [default: clipgar]."),
    click.option("--dataset", "-d", type=click.Path(file_okay=False), help=DATASET_HELP + " Sets data.dataset."),
    click.option("--out", type=click.Path(file_okay=False), help="Run directory (sets train.output_dir)."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Override a config field by dotted name, e.g. --set optim.lr=3e-4 (repeatable)."),
    click.option("--restart", "--no-resume", "no_resume", is_flag=True,
                 help="Start the stages over, replacing the run directory's checkpoints (default: resume last.pt, "
                      "refused when its config differs)."),
    click.option("--dry-run", is_flag=True, help="Print the config summary and parameter counts, train nothing."),
]


def _with_config_options(function):
    for option in reversed(_config_options):
        function = option(function)
    return function


def _load(config_name, out, overrides, default_name):
    from ragar_data.training.config import load_config

    extra = list(overrides)
    if out:
        extra.append(f"train.output_dir={out}")
    return load_config(config_name or default_name, extra)


def _set_dataset(config, dataset) -> None:
    """--dataset, else data.dataset of the config or a --set, else the default dataset folder."""
    if dataset is not None:
        config.data.dataset = str(resolve_dataset(dataset))
    elif not config.data.dataset:
        config.data.dataset = str(default_dataset())


class _ModelGroup(_ConfigsGroup):
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

    The default config (clipgar) has the paper's settings: a GPU job that needs the CLIP RN50 weights. On a
    CPU, start with --config smoke (seconds on a small set) or short_cpu (minutes). Besides clipgar and
    classification, every registered model (GaitSet, GaitGL, DeepGaitV2-*, GaitGraph, ...) trains with
    `ragar-data train MODEL`, its packaged config MODEL.yaml by default."""


@train.command(cls=_ConfigsCommand)
@_with_config_options
@click.option("--stage", type=click.Choice(["all", "align", "fusion"]), default="all", show_default=True,
              help="Run both stages, or one (fusion starts from the run's align/final.pt).")
def clipgar(config_name, dataset, out, overrides, no_resume, dry_run, stage):
    """CLIP-GAR: the align stage (V and θ with the KL align loss), then the fusion stage (BCE, V and T frozen)."""
    from ragar_data.models.text_encoders import require_text_weights
    from ragar_data.training.stages import describe, train_clipgar

    config = _load(config_name, out, overrides, "clipgar")
    if dry_run:
        _echo(describe(config))
        return
    require_text_weights(config.text.backend, config.text.weights)  # first: one message says what to do
    _set_dataset(config, dataset)
    _echo(describe(config))
    stages = ("align", "fusion") if stage == "all" else (stage,)
    results = train_clipgar(config, stages, resume=not no_resume)
    for name, result in results.items():
        _echo(f"{name}: {result.iterations_per_second:.2f} it/s, checkpoint {result.checkpoint}")


@train.command(cls=_ConfigsCommand)
@_with_config_options
def classification(config_name, dataset, out, overrides, no_resume, dry_run):
    """The classification baseline: the same visual encoder with attribute heads, no text."""
    _train_classifier("classification", _load(config_name, out, overrides, "clipgar"), dataset, no_resume, dry_run)


def _train_classifier(name: str, config, dataset, no_resume: bool, dry_run: bool) -> None:
    """The shared classification stage for the baseline and every registered model."""
    from ragar_data.training.stages import describe, train_classification

    if dry_run:
        _echo(describe(config))
        return
    _set_dataset(config, dataset)
    _echo(describe(config))
    result = train_classification(config, resume=not no_resume)
    _echo(f"{name}: {result.iterations_per_second:.2f} it/s, checkpoint {result.checkpoint}")


def _model_command(name: str) -> click.Command:
    @click.command(name=name, cls=_ConfigsCommand,
                   help=f"Train the registered model {name} (attribute head, BCE) with the shared trainer; config "
                        f"{name}.yaml unless --config is given.")
    @_with_config_options
    def command(config_name, dataset, out, overrides, no_resume, dry_run):
        config = _load(config_name, out, [f"model.name={name}", *overrides], name)
        _train_classifier(name, config, dataset, no_resume, dry_run)

    return command


_IDENTITY_MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitbase", "deepgaitv2_p3d")  # Table 7's models


@train.command(name="identity")
@click.option("--model", required=True, type=click.Choice(_IDENTITY_MODELS), help="Table 7 model to train.")
@click.option("--dataset", "-d", type=click.Path(file_okay=False), help=DATASET_HELP)
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [default: runs/identity-MODEL].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the protocol draw and of training.")
@click.option("--train-subjects", type=int, help="Training subjects [default: 100, or 100/533 of a smaller set].")
@click.option("--iterations", type=int, default=300, show_default=True, help="Iterations (upstream: 60,000-80,000).")
@click.option("--identities", "-p", type=int, default=8, show_default=True, help="P: identities per batch.")
@click.option("--per-identity", "-k", type=int, default=4, show_default=True, help="K: sequences per identity.")
@click.option("--frames", type=int, default=30, show_default=True, help="Frames per training sequence.")
@click.option("--lr", type=float, help="Learning rate [default: the model's upstream config].")
@click.option("--channel-divisor", type=click.Choice(["1", "2", "4", "8"]), default="1", show_default=True,
              help="Divide GaitBase's and DeepGaitV2-P3D's channels (512 -> 512/N) to fit a CPU; others keep theirs.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--restart", is_flag=True, help="Replace the run's checkpoint if it was trained with other settings.")
def identity(model, dataset, out, seed, train_subjects, iterations, identities, per_identity, frames, lr,
             channel_divisor, device, restart):
    """Train MODEL for identity recognition (triplet + cross-entropy as OpenGait, P x K sampler) on the
    training subjects of the Table 7 protocol (OUT/protocol.json, drawn from --seed when absent)."""
    from pathlib import Path

    from ragar_data.recognition.protocol import protocol_for
    from ragar_data.recognition.training import IdentityTrainConfig, trained_checkpoint

    out = Path(out or f"runs/identity-{model}")
    dataset = resolve_dataset(dataset) if dataset else default_dataset()
    protocol = protocol_for(dataset, out / "protocol.json", seed, train_subjects)
    config = IdentityTrainConfig(model=model, iterations=iterations, identities=identities,
                                 per_identity=per_identity, frames=frames, lr=lr, seed=seed, device=device,
                                 channel_divisor=int(channel_divisor))
    checkpoint = trained_checkpoint(dataset, protocol, config, out / f"{model}.pt", restart, _echo)
    _echo(f"{model}: checkpoint {checkpoint} ({len(protocol.train_subjects)} training subjects, "
          f"protocol {out / 'protocol.json'}); evaluate with `ragar-data evaluate identity {checkpoint}`")
