"""`ragar-data extract`: raw videos (or a CSV manifest) -> dataset shards."""
from __future__ import annotations

import sys

import click

from ragar_data.cli.common import DEFAULT_DATASET, EXIT_SOME_FAILED


@click.command(short_help="Extract silhouettes, boxes and poses from raw videos into shards.")
@click.option("--videos", type=click.Path(file_okay=False), help="Raw tree <subject>/c<k>/<condition>/<view>.mp4.")
@click.option("--manifest", type=click.Path(dir_okay=False),
              help="CSV: video,subject,combination,condition,view[,start_frame,end_frame] (instead of --videos).")
@click.option("--out", "-o", default=DEFAULT_DATASET, show_default=True, type=click.Path(file_okay=False),
              help="Dataset folder to write (shards, index.json, extract/ run state).")
@click.option("--annotations", type=click.Path(dir_okay=False, exists=True),
              help="Attribute annotation CSV; sequences without a row get labels -1.")
@click.option("--preset", default="default", show_default=True, help="Preset name (pipelines/*.yaml) or YAML path.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a preset field, e.g. --set detect.work_width=320 (repeatable).")
@click.option("--expect-resolution", metavar="WxH", help="Fail videos of another size, e.g. 1920x1080.")
@click.option("--decoder", type=click.Choice(["pyav", "opencv"]), help="Decode backend (default: the preset's).")
@click.option("--workers", default=1, show_default=True, help="Local worker processes (or Ray CPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster to join (e.g. auto, ray://head:10001); default starts a local Ray.")
@click.option("--force", is_flag=True, help="Redo sequences already extracted with this config.")
@click.option("--overwrite", is_flag=True,
              help="Replace the dataset in --out extracted from another source or config (only the shards extract "
                   "runs wrote are removed; imported shards and other files never are).")
@click.option("--keep-masks", is_flag=True, help="Also keep the subject's full-resolution masks (for qa and viz).")
@click.option("--models-dir", type=click.Path(file_okay=False), envvar="RAGAR_MODELS_DIR",
              help="Model weights folder for model presets.")
@click.option("--device", default="cpu", show_default=True, help="Device of model stages (cpu, cuda, cuda:1).")
@click.option("--batch-size", default=16, show_default=True, help="Frames per model call (halves on OOM).")
@click.option("--group-size", default=1, show_default=True,
              help="Sequences whose frames model stages batch together.")
@click.option("--strict", is_flag=True,
              help="Fail before any work if an input entry would be skipped or a manifest video is missing.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def extract(videos, manifest, out, annotations, preset, overrides, expect_resolution, decoder, workers, engine,
            address, force, overwrite, keep_masks, models_dir, device, batch_size, group_size, strict, no_progress):
    """Extract every sequence of --videos (or --manifest) into the dataset folder --out.

    Reruns skip sequences finished with the same config and the same video (--force redoes them); failed
    sequences are listed in OUT/extract/failures.jsonl and the others are written; the exit status is then 3.
    A folder holding another dataset is refused (--overwrite replaces one that extract wrote); one run at a time
    writes a folder.
    """
    from ragar_data.pipelines.config import apply_overrides, load_preset
    from ragar_data.pipelines.runner import RunOptions, extract as run_extract

    if (videos is None) == (manifest is None):
        raise click.UsageError("give --videos DIR or --manifest CSV (one of them)")
    settings = list(overrides)
    if expect_resolution:
        settings.append(f"decode.expect_resolution={expect_resolution}")
    if decoder:
        settings.append(f"decode.backend={decoder}")
        if decoder == "opencv":  # cv2.VideoCapture hands over RGB frames only
            settings.append("decode.frame_format=rgb24")
    config = apply_overrides(load_preset(preset), settings)
    options = RunOptions(workers=workers, engine=engine, address=address, force=force, overwrite=overwrite,
                         keep_masks=keep_masks, models_dir=models_dir, device=device, batch_size=batch_size,
                         group_size=group_size, progress=not no_progress, strict=strict)
    summary = run_extract(out, config, videos=videos, manifest=manifest, annotations=annotations,
                          options=options, log=click.echo)
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        sys.exit(EXIT_SOME_FAILED)
