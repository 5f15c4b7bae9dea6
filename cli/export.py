"""`ragar-data export`: shards -> OpenGait silhouette tree or pose pickle tree."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, resolve_dataset, split_legacy_pair

NAMING_HELP = ("Type folder names: 'key' = c<combination>-<condition>; 'ragar' = <n>_<a1>_..._<a15>, the RA-GAR "
               "release naming OpenGait's RAGAR attribute probe reads labels from.")


def _tree_options(command):
    """The arguments and options both tree exporters take."""
    for decorator in reversed([
        # OUT; the old form DATASET OUT still works (deprecated)
        click.argument("positionals", nargs=-1, required=True, metavar="OUT", type=click.Path(file_okay=False)),
        dataset_option,
        click.option("--naming", type=click.Choice(["key", "ragar"]), default="key", show_default=True,
                     help=NAMING_HELP),
        click.option("--split", "partition", type=click.Path(dir_okay=False, exists=True),
                     help="Partition JSON to copy into OUT [default: the dataset's partition.json when present]."),
        click.option("--overwrite", is_flag=True,
                     help="Write into a folder holding other files or another export: files at the exported paths "
                          "are replaced, files of an earlier ragar-data export removed, nothing else is deleted "
                          "[default: resume this dataset's own export, refuse anything else]."),
        click.option("--include-failed", is_flag=True, help="Also export sequences failing the quality filter."),
    ]):
        command = decorator(command)
    return command


def _run(exporter, positionals, dataset, naming, partition, overwrite, include_failed):
    legacy_dataset, out = split_legacy_pair(positionals, "OUT", "DATASET")
    dataset = resolve_dataset(dataset, legacy_dataset)
    summary = exporter(dataset, out, naming=naming, partition=partition, overwrite=overwrite,
                       include_failed=include_failed)
    click.echo(str(summary))


@click.group(short_help="Export shards to OpenGait silhouette or pose pickle trees.")
def export():
    """Export a dataset's shards to the pickle trees OpenGait and FastPoseGait read."""


@export.command("opengait")
@_tree_options
def opengait(positionals, dataset, naming, partition, overwrite, include_failed):
    """Write OUT/<id>/<type>/<view>/<view>.pkl (uint8 S x 64 x 64, as OpenGait's pretreatment) + partition."""
    from ragar_data.opengait import export_opengait

    _run(export_opengait, positionals, dataset, naming, partition, overwrite, include_failed)


@export.command("pose")
@_tree_options
def pose(positionals, dataset, naming, partition, overwrite, include_failed):
    """Write OUT/<id>/<type>/<view>/<view>.pkl: float32 T x 17 x 3 COCO-17 x, y (pixels), confidence."""
    from ragar_data.pose_export import export_pose

    _run(export_pose, positionals, dataset, naming, partition, overwrite, include_failed)
