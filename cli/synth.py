"""`ragar-data synth`: render synthetic RA-GAR walkers with exact ground truth into a raw-video tree."""
from __future__ import annotations

import click
from click.core import ParameterSource

from ragar_data.identity import COMBINATIONS, CONDITIONS, VIEWS

# `--small`: the values it gives the options not set on the command line. With --subjects 4: 72 sequences of
# 45 frames, rendered in about 15 s and extracted in about 30 s on 2 CPU cores (measured, README).
SMALL = {"views": "0,72", "conditions": "nm-01,bg-01,cl-01", "seconds": 1.5, "width": 480, "height": 270}

# CPU seconds per frame = fixed + per_pixel x width x height, from runs on 2 shared cores with one worker:
# rendering 14-30 frames/s at 1920x1080 and 227 at 480x270, `extract` (default preset) 13-45 frames/s at
# 1920x1080 and 148 at 480x270. Loaded machines gave the low ends; the costs lean to them (20 frames/s at 1080p).
RENDER_COST = (0.0025, 2.3e-8)
EXTRACT_COST = (0.0073, 2.06e-8)
WARN_ABOVE_S = 600


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
@click.option("--static-object/--no-static-object", default=False, show_default=True,
              help="A person-sized box beside the path (elsewhere in each sequence): a static non-person.")
@click.option("--standing-seconds", type=float, default=0.0, show_default=True,
              help="The subject stands still this long before it walks.")
@click.option("--crf", type=int, default=20, show_default=True, help="H.264 constant rate factor.")
@click.option("--preset", default="ultrafast", show_default=True, help="x264 preset (veryfast: smaller, slower).")
@click.option("--workers", type=int, default=1, show_default=True, help="Rendering processes.")
@click.option("--preview", is_flag=True, help="Also write OUT/preview.png (first subject, views x conditions).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--small", is_flag=True,
              help="A set that renders and extracts in minutes on a CPU: " + ", ".join(
                  f"--{name} {value}" for name, value in SMALL.items()) + " (options given explicitly win).")
@click.pass_context
def synth(ctx, out, subjects, seed, views, combinations, conditions, seconds, width, height, fps, distractors,
          occlusion, static_object, standing_seconds, crf, preset, workers, preview, quiet, small):
    """Write OUT/videos/<subject>/c<k>/<condition>/<view>.mp4, OUT/ground_truth/... .npz,
    OUT/annotations.csv and OUT/synth.json. Rerunning skips finished sequences.

    The defaults are RA-GAR's (1920x1080, 10 views x 3 combinations x 8 conditions): hours on a CPU, and a
    warning says so. --small gives a set of minutes."""
    from pathlib import Path

    from ragar_data.synth import SynthConfig, generate, write_preview

    if small:
        chosen = {name: value for name, value in SMALL.items()
                  if ctx.get_parameter_source(name) == ParameterSource.DEFAULT}
        views, conditions = chosen.get("views", views), chosen.get("conditions", conditions)
        seconds = chosen.get("seconds", seconds)
        width, height = chosen.get("width", width), chosen.get("height", height)
    try:
        config = SynthConfig(
            subjects=subjects, seed=seed, views=_list(views, int, "--views"),
            combinations=_list(combinations, int, "--combinations", COMBINATIONS),
            conditions=_list(conditions, str, "--conditions", CONDITIONS), seconds=seconds,
            width=width, height=height, fps=fps, distractors=distractors, occlusion=occlusion,
            static_object=static_object, standing_seconds=standing_seconds, crf=crf,
            preset=preset)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    warning = cpu_time_warning(config, workers)
    if warning:
        click.echo(warning, err=True)
    summary = generate(out, config, workers=workers, progress=not quiet)
    if preview:
        summary["preview"] = str(write_preview(Path(out) / "preview.png", config))
    click.echo(f"{summary['sequences']} sequences in {summary['out_dir']} ({summary['rendered']} rendered, "
               f"{summary['skipped']} already there; {summary['frames']} frames at "
               f"{summary['frames_per_second']} frames/s; video {summary['video_codec']})")
    if preview:
        click.echo(f"preview: {summary['preview']}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(1, round(seconds / 60))} min"


def cpu_time_warning(config, workers: int) -> str | None:
    """One line estimating render and extract time on a CPU when it exceeds WARN_ABOVE_S, else None."""
    sequences = config.subjects * len(config.views) * len(config.combinations) * len(config.conditions)
    frames = sequences * round(config.seconds * config.fps)
    pixels = config.width * config.height
    render = frames * (RENDER_COST[0] + RENDER_COST[1] * pixels) / max(1, min(workers, 2))
    extract = frames * (EXTRACT_COST[0] + EXTRACT_COST[1] * pixels)
    if render + extract < WARN_ABOVE_S:
        return None
    return (f"warning: {sequences} sequences, {frames} frames at {config.width}x{config.height}: estimated "
            f"{_minutes(render)} to render and {_minutes(extract)} to extract on 2 CPU cores; "
            "--small gives a set of minutes")
