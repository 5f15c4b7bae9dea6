"""The built-in demo: the main job end to end on synthetic data, with no downloaded weights.

synth (videos + ground truth + annotations) -> extract (default CPU preset) -> qa against ground truth ->
split -> stats. Each step is the library function behind the matching `ragar-data` command, and every step
resumes: running the demo again reuses what is already on disk. It sits beside the extraction runner because it
drives it; the library below (`ragar_data`) never imports this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragar_data.pipelines.config import load_preset
from ragar_data.pipelines.runner import RunOptions, extract
from ragar_data.qa import run_qa
from ragar_data.split import split_dataset
from ragar_data.stats import dataset_stats, plot_class_distribution
from ragar_data.synth import SynthConfig, generate


@dataclass(frozen=True)
class DemoSettings:
    subjects: int = 4
    seed: int = 0
    views: tuple[int, ...] = (0, 72)
    combinations: tuple[int, ...] = (0, 1, 2)
    conditions: tuple[str, ...] = ("nm-01", "bg-01", "cl-01")
    seconds: float = 2.0
    width: int = 480
    height: int = 270
    workers: int = 1
    extra: dict = field(default_factory=dict)

    def synth_config(self) -> SynthConfig:
        return SynthConfig(subjects=self.subjects, seed=self.seed, views=self.views,
                           combinations=self.combinations, conditions=self.conditions, seconds=self.seconds,
                           width=self.width, height=self.height, distractors=1)


def run_demo(out_dir: str | Path, settings: DemoSettings = DemoSettings(), log=print) -> dict:
    """Run every step into `out_dir` (synth/, dataset/); returns the qa report and split summary."""
    out_dir = Path(out_dir)
    synth_dir, dataset_dir = out_dir / "synth", out_dir / "dataset"
    log(f"[1/5] synth: {settings.subjects} subjects, views {list(settings.views)}, "
        f"{settings.width}x{settings.height} -> {synth_dir}")
    generate(synth_dir, settings.synth_config(), workers=settings.workers)
    log(f"[2/5] extract (default preset: background subtraction + ByteTrack) -> {dataset_dir}")
    summary = extract(dataset_dir, load_preset("default"), videos=synth_dir / "videos",
                      annotations=synth_dir / "annotations.csv",
                      options=RunOptions(workers=settings.workers, keep_masks=True), log=log)
    for line in summary.lines():
        log("      " + line)
    log("[3/5] qa against the generator's ground truth")
    report = run_qa(dataset_dir, synth_dir, log=log)
    log("[4/5] split")
    partition, split_summary = split_dataset(dataset_dir, protocol="official")
    for note in partition.notes[:2]:
        log("      " + note)
    if len(partition.notes) > 2:
        log(f"      ({len(partition.notes) - 2} more notes in {split_summary['summary_file']})")
    log(f"      {len(partition.train)} training / {len(partition.test)} test subjects -> "
        f"{split_summary['partition_file']}")
    stats = dataset_stats(dataset_dir)
    chart = plot_class_distribution(stats, dataset_dir / "classes.png")
    log(f"[5/5] dataset: {stats['sequences']} sequences of {stats['subjects']} subjects in {dataset_dir}; "
        f"class distribution in {chart}")
    return {"qa": report, "split": split_summary, "extract": summary}
