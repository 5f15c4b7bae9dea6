"""`ragar-data predict`: per-sequence attribute predictions and the 45 scores of a checkpoint, to Parquet."""
from __future__ import annotations

import click

from ragar_data.errors import RagarDataError


@click.command(short_help="Write per-sequence attribute predictions to Parquet.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.argument("shards_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Parquet file to write.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Batch size [default: data.eval_batch_size of the run].")
def predict(checkpoint, shards_dir, out, device, batch_size):
    """Predict every sequence of the dataset SHARDS_DIR with CHECKPOINT and write OUT (Parquet)."""
    from ragar_data.training.predict import predict_checkpoint

    try:
        path, rows = predict_checkpoint(checkpoint, shards_dir, out, device, batch_size)
    except RagarDataError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {rows} predictions to {path}")
