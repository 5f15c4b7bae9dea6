"""`ragar-data viz`: draw boxes, track ids, mask outline and keypoints of one sequence over its frames."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, resolve_dataset, split_legacy_pair


@click.command(short_help="Draw boxes, masks and keypoints of one sequence over its frames.")
# KEY; the old form RUN KEY still works (deprecated)
@click.argument("positionals", nargs=-1, required=True, metavar="KEY")
@dataset_option
@click.option("--videos", required=True, type=click.Path(file_okay=False, exists=True),
              help="The raw videos folder the run was extracted from.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="strip.png or clip.mp4")
@click.option("--frames", default=8, show_default=True, help="Frames in a PNG strip.")
@click.option("--height", default=360, show_default=True, help="Height of each PNG tile in pixels.")
def viz(positionals, dataset, videos, out, frames, height):
    """Write OUT (PNG strip or MP4) for sequence KEY of the extracted dataset. RGB frames are written only here;
    an MP4 plays at the source video's frame rate."""
    from ragar_data.pipelines.viz import write_visualisation

    legacy_run, key = split_legacy_pair(positionals, "KEY", "RUN")
    run = resolve_dataset(dataset, legacy_run, "RUN")
    path = write_visualisation(run, key, videos, out, frames=frames, height=height)
    click.echo(f"wrote {path}")
