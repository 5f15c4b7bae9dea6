"""`ragar-data split`: write a dataset's train/test partition (OpenGait format) and its summary."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, legacy_dataset_argument, resolve_dataset
from ragar_data.split import DEFAULT_SEED, split_dataset


@click.command(short_help="Write the train/test partition (official or seeded).")
@legacy_dataset_argument
@dataset_option
@click.option("--protocol", default="official", show_default=True,
              help="'official' (the released partition when found, else seeded), 'seeded', or a partition JSON.")
@click.option("--released", type=click.Path(dir_okay=False),
              help="The released OpenGait ragar.json (else $RAGAR_PARTITION, else DATASET/ragar.json).")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the seeded split.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Partition file to write [default: DATASET/partition.json]; the summary goes beside it.")
def split(legacy_dataset, dataset, protocol, released, seed, out):
    """Split the dataset's subjects into TRAIN_SET and TEST_SET and write partition.json + split_summary.json.

    The positional DATASET is deprecated: use --dataset."""
    dataset = resolve_dataset(dataset, legacy_dataset)
    partition, summary = split_dataset(dataset, protocol, out, released, seed)
    for note in partition.notes:
        click.echo(note)
    subjects, sequences = summary["subjects"], summary["sequences"]
    click.echo(f"train: {subjects['train']} subjects, {sequences['train']} sequences; "
               f"test: {subjects['test']} subjects, {sequences['test']} sequences"
               + (f"; unassigned: {subjects['unassigned']} subjects" if subjects["unassigned"] else ""))
    for side in ("train", "test"):
        if summary["classes_missing"][side]:
            click.echo(f"classes absent from {side}: {', '.join(summary['classes_missing'][side])}")
    click.echo(f"wrote {summary['partition_file']} and {summary['summary_file']}")
