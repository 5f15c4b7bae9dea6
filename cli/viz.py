"""`ragar-data viz`: draw boxes, track ids, mask outline and keypoints of one sequence over its frames."""
from __future__ import annotations

import sys

import click

from ragar_data.errors import RagarDataError


@click.command(short_help="Draw boxes, masks and keypoints of one sequence over its frames.")
@click.argument("run", type=click.Path(file_okay=False, exists=True))
@click.argument("key")
@click.option("--videos", required=True, type=click.Path(file_okay=False, exists=True),
              help="The raw videos folder the run was extracted from.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="strip.png or clip.mp4")
@click.option("--frames", default=8, show_default=True, help="Frames in a PNG strip.")
@click.option("--height", default=360, show_default=True, help="Height of each PNG tile in pixels.")
def viz(run, key, videos, out, frames, height):
    """Write OUT (PNG strip or MP4) for sequence KEY of the extraction RUN. RGB frames are written only here."""
    from ragar_data.pipelines.viz import write_visualisation

    try:
        path = write_visualisation(run, key, videos, out, frames=frames, height=height)
    except (RagarDataError, FileNotFoundError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(f"wrote {path}")
