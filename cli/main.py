"""Entry point of `ragar-data`. Commands are imported only when run, so `--help` stays fast."""
from __future__ import annotations

import importlib

import click

from ragar_data import __version__
from ragar_data.cli.common import EXIT_CODES_EPILOG, EXIT_ERROR, USER_ERRORS

# name -> (module, attribute, one-line help). Each module holds one click command or group.
COMMANDS = {
    "demo": ("ragar_data.cli.demo", "demo", "Run the whole job on built-in synthetic data: synth, extract, qa, split."),
    "synth": ("ragar_data.cli.synth", "synth", "Render synthetic RA-GAR walkers with exact ground truth."),
    "extract": ("ragar_data.cli.extract", "extract", "Extract silhouettes, boxes and poses from raw videos into shards."),
    "qa": ("ragar_data.cli.qa", "qa", "Compare an extraction run with synthetic ground truth."),
    "viz": ("ragar_data.cli.viz", "viz", "Draw boxes, masks and keypoints of one sequence over its frames."),
    "annotations": ("ragar_data.cli.annotations", "annotations", "Check and import attribute annotation CSVs."),
    "split": ("ragar_data.cli.split", "split", "Write the train/test partition (official or seeded)."),
    "stats": ("ragar_data.cli.stats", "stats", "Print sequence and class counts of a dataset and plot them."),
    "export": ("ragar_data.cli.export", "export", "Export shards to OpenGait silhouette or pose pickle trees."),
    "import": ("ragar_data.cli.imports", "import_group", "Import an OpenGait-layout release (or synthetic ground-truth poses) into shards."),
    "models": ("ragar_data.cli.models", "models", "List, download and check model weight files."),
    "train": ("ragar_data.cli.train", "train", "Train CLIP-GAR or a baseline from shards."),
    "evaluate": ("ragar_data.cli.evaluate", "evaluate", "Evaluate a checkpoint: mA, Acc, Precision, Recall, F1."),
    "predict": ("ragar_data.cli.predict", "predict", "Write per-sequence attribute predictions to Parquet."),
    "benchmark": ("ragar_data.cli.benchmark", "benchmark", "Rerun the paper's tables (3, 5, 6, 7) on a dataset."),
}


class LazyGroup(click.Group):
    def invoke(self, ctx):
        """Run the command; a user-fixable error becomes one line on stderr and exit status 1, no traceback."""
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_ERROR)

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_EPILOG)
@click.version_option(__version__, prog_name="ragar-data")
def cli():
    """ragar-data: RA-GAR gait datasets from multi-view walking videos, and attribute recognition models."""


def main():
    cli()


if __name__ == "__main__":
    main()
