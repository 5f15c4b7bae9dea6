"""`ragar-data synth`: render synthetic RA-GAR walkers with exact ground truth into a raw-video tree."""
from __future__ import annotations

import click

from ragar_data.errors import RagarDataError
from ragar_data.identity import COMBINATIONS, CONDITIONS, VIEWS


def _list(value: str, convert, name: str, allowed=None):
    try:
        items = tuple(convert(v.strip()) for v in value.split(",") if v.strip())
    except ValueError as error:
        raise click.BadParameter(f"{value!r}: {error}", param_hint=name) from error
    if not items:
        raise click.BadParameter("empty list", param_hint=name)
    if allowed is not None and any(item not in allowed for item in items):
        raise click.BadParameter(f"{value!r}: each must be one of {', '.join(map(str, allowed))}", param_hint=name)
    return items


@click.command(short_help="Render synthetic RA-GAR walkers with exact ground truth.")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--subjects", type=int, default=2, show_default=True, help="Number of subjects (ids 001, 002, ...).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--views", default=",".join(map(str, VIEWS)), show_default=True, help="View angles in degrees.")
@click.option("--combinations", default="0,1,2", show_default=True, help="Attribute combinations (0 = own).")
@click.option("--conditions", default=",".join(CONDITIONS), show_default=True)
@click.option("--seconds", type=float, default=3.0, show_default=True, help="Length of each sequence.")
@click.option("--width", type=int, default=1920, show_default=True)
@click.option("--height", type=int, default=1080, show_default=True)
@click.option("--fps", type=int, default=30, show_default=True)
@click.option("--distractors", type=click.IntRange(0, 1), default=0, show_default=True,
              help="1: a second walker crosses the scene.")
@click.option("--occlusion/--no-occlusion", default=False, show_default=True,
              help="A post between camera and path hides part of the walker for part of each sequence.")
@click.option("--crf", type=int, default=20, show_default=True, help="H.264 constant rate factor.")
@click.option("--preset", default="ultrafast", show_default=True, help="x264 preset (veryfast: smaller, slower).")
@click.option("--workers", type=int, default=1, show_default=True, help="Rendering processes.")
@click.option("--preview", is_flag=True, help="Also write OUT/preview.png (first subject, views x conditions).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth(out, subjects, seed, views, combinations, conditions, seconds, width, height, fps, distractors,
          occlusion, crf, preset, workers, preview, quiet):
    """Write OUT/videos/<subject>/c<k>/<condition>/<view>.mp4, OUT/ground_truth/... .npz,
    OUT/annotations.csv and OUT/synth.json. Rerunning skips finished sequences."""
    from pathlib import Path

    from ragar_data.synth import SynthConfig, generate, write_preview

    try:
        config = SynthConfig(
            subjects=subjects, seed=seed, views=_list(views, int, "--views"),
            combinations=_list(combinations, int, "--combinations", COMBINATIONS),
            conditions=_list(conditions, str, "--conditions", CONDITIONS), seconds=seconds,
            width=width, height=height, fps=fps, distractors=distractors, occlusion=occlusion, crf=crf,
            preset=preset)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    try:
        summary = generate(out, config, workers=workers, progress=not quiet)
        if preview:
            summary["preview"] = str(write_preview(Path(out) / "preview.png", config))
    except RagarDataError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{summary['sequences']} sequences in {summary['out_dir']} ({summary['rendered']} rendered, "
               f"{summary['skipped']} already there; {summary['frames']} frames at "
               f"{summary['frames_per_second']} frames/s; video {summary['video_codec']})")
    if preview:
        click.echo(f"preview: {summary['preview']}")
