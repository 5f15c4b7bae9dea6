"""`ragar-data import`: OpenGait-layout trees (e.g. the RA-GAR release) -> shards; the synthetic ground-truth
poses -> a dataset with keypoints_2d."""
from __future__ import annotations

import click


@click.group("import", short_help="Import an OpenGait-layout release (or synthetic ground-truth poses) into shards.")
def import_group():
    """Import datasets laid out as OpenGait trees into ragar-data shards."""


@import_group.command("opengait")
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--modality", type=click.Choice(["silhouette", "pose"]), default="silhouette", show_default=True,
              help="What the pickles hold: uint8 (T, H, W) silhouettes or (T, 17, 3) x, y, confidence poses.")
@click.option("--annotations", type=click.Path(dir_okay=False, exists=True),
              help="Attribute CSV for type folders without labels in their name (c<k>-<condition>).")
def opengait(root, dataset, modality, annotations):
    """Read ROOT/<id>/<type>/<view>/*.pkl into DATASET/shards/opengait-<id>.parquet (one shard per subject).

    Labels come from RA-GAR type names <n>_<a1>_..._<a15> when present. Importing the other modality of the
    same sequences later merges it into the same shards.
    """
    from ragar_data.opengait import import_opengait

    summary = import_opengait(root, dataset, modality=modality, annotations=annotations)
    click.echo(str(summary))


@import_group.command("synth-pose")
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(file_okay=False, exists=True),
              help="The synth output folder the dataset was extracted from (its ground_truth/ is read).")
@click.option("--dataset", "-d", required=True, type=click.Path(file_okay=False, exists=True),
              help="The extracted dataset (only read).")
@click.argument("out", type=click.Path(file_okay=False))
def synth_pose(ground_truth, dataset, out):
    """Write OUT: DATASET's shards with keypoints_2d from the generator's COCO-17 ground truth, for the pose
    models (GaitGraph, GaitGraph2, GaitTR, GPGait). OUT must be new or empty; partition.json is copied."""
    from ragar_data.synth.pose_import import import_synth_pose

    click.echo(str(import_synth_pose(dataset, ground_truth, out)))
