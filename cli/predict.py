"""`ragar-data predict`: per-sequence attribute predictions and the 45 scores of a checkpoint, to Parquet."""
from __future__ import annotations

import click

from ragar_data.cli.common import dataset_option, resolve_dataset
from ragar_data.cli.evaluate import frames_option


@click.command(short_help="Write per-sequence attribute predictions to Parquet.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.argument("legacy_shards_dir", required=False, metavar="[SHARDS_DIR]", type=click.Path(file_okay=False))
@dataset_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Parquet file to write.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Batch size [default: data.eval_batch_size of the run].")
@frames_option
def predict(checkpoint, legacy_shards_dir, dataset, out, device, batch_size, test_frames):
    """Predict every sequence of the dataset with CHECKPOINT and write OUT (Parquet).

    The positional SHARDS_DIR is deprecated: use --dataset."""
    from ragar_data.training.predict import predict_checkpoint

    dataset = resolve_dataset(dataset, legacy_shards_dir, "SHARDS_DIR")
    path, rows = predict_checkpoint(checkpoint, dataset, out, device, batch_size, test_frames=test_frames)
    frames = "all frames (capped at data.max_eval_frames)" if test_frames == "all" else f"the central {test_frames}"
    click.echo(f"wrote {rows} predictions to {path} (test frames: {frames})")
