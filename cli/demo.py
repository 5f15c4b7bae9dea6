"""`ragar-data demo`: the main job on built-in synthetic data."""
from __future__ import annotations

import click


@click.command(short_help="Run the whole job on built-in synthetic data.")
@click.argument("out", type=click.Path(file_okay=False), default="demo_out")
@click.option("--subjects", default=4, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--views", default="0,72", show_default=True, help="View angles in degrees, comma-separated.")
@click.option("--seconds", default=2.0, show_default=True)
@click.option("--size", default="480x270", show_default=True, help="Video size WxH (RA-GAR: 1920x1080).")
@click.option("--workers", default=1, show_default=True)
def demo(out, subjects, seed, views, seconds, size, workers):
    """Render a small synthetic RA-GAR set into OUT/synth, extract it into OUT/dataset with the default CPU
    preset, check the result against the ground truth, and write the partition."""
    from ragar_data.pipelines.demo import DemoSettings, run_demo

    width, height = (int(v) for v in size.lower().split("x"))
    settings = DemoSettings(subjects=subjects, seed=seed, views=tuple(int(v) for v in views.split(",")),
                            seconds=seconds, width=width, height=height, workers=workers)
    run_demo(out, settings, log=click.echo)
