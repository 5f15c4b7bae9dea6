"""`ragar-data models`: list, download and check the model files of the paper's extraction stack."""
from __future__ import annotations

import click

MODELS_DIR_OPTION = click.option(
    "--models-dir", type=click.Path(file_okay=False), default=None,
    help="Model directory (default: $RAGAR_MODELS_DIR, else ~/.cache/ragar-data/models).")


@click.group()
def models():
    """List, download and check model weight files."""


@models.command("list")
@MODELS_DIR_OPTION
def list_models(models_dir):
    """Show the known models and which are present in the models directory."""
    from rich.console import Console
    from rich.table import Table

    from ragar_data import weights

    directory = weights.resolve_models_dir(models_dir)
    table = Table(title=f"models in {directory}")
    for column in ("name", "task", "format", "input", "keypoints", "present"):
        table.add_column(column, no_wrap=True)
    notes = []
    from ragar_data.pipelines.config import PRESET_DIR

    uses = weights.preset_uses(PRESET_DIR)
    for spec in weights.load_registry().values():
        present = spec.is_present(directory)
        size = "x".join(str(s) for s in spec.input_size) if spec.input_size else "-"
        table.add_row(spec.name, spec.task, spec.format, size, spec.keypoint_layout or "-", "yes" if present else "no")
        used_by = ", ".join(uses.get(spec.name, [])) or "no preset"
        note = f"{spec.name}: {spec.path(directory)}\n    from: {spec.origin()}; used by: {used_by}"
        notes.append(note if present else f"{note}\n    missing: {spec.how_to_get_text()}")
    console = Console()
    console.width = max(console.width, 110)  # the table needs ~105 columns; pipes report 80
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)


@models.command()
@click.argument("names", nargs=-1, required=True)
@MODELS_DIR_OPTION
@click.option("--force", is_flag=True, help="Download again even if the files are present.")
def download(names, models_dir, force):
    """Download NAMES (resumable, sha256-checked when a digest is published)."""
    from ragar_data import weights

    for name in names:
        path = weights.download_model(weights.get_spec(name), models_dir, force=force)
        click.echo(f"{name}: {path}")


@models.command()
@click.argument("names", nargs=-1)
@MODELS_DIR_OPTION
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
def check(names, models_dir, device):
    """Load each known model (or NAMES) and run one batch of generated input; exit 1 if any is missing or
    fails to load."""
    from ragar_data.cli.common import EXIT_ERROR
    from ragar_data.pipelines.backends.loading import check_models

    missing, broken = [], []
    for name, status, detail in check_models(models_dir, device, names or None):
        {"missing": missing, "error": broken}.get(status, []).append(name)
        click.echo(f"{name:22s} {status:8s} {detail}")
    if missing:
        click.echo(f"error: {len(missing)} model(s) missing; get them with `ragar-data models download "
                   f"{' '.join(missing)}`", err=True)
    if broken:
        click.echo(f"error: {len(broken)} model(s) failed to load: {', '.join(broken)}", err=True)
    if missing or broken:
        raise SystemExit(EXIT_ERROR)
