"""Extraction runner: work units -> per-sequence part files -> shards, resumable and idempotent.

Run folder (the output dataset folder, OUT):

    OUT/index.json, OUT/shards/part-*.parquet    the dataset (ragar_data.shards), assembled at the end
    OUT/extract/run.json                         preset, config hash, inputs of the last run
    OUT/extract/failures.jsonl                   one line per failed sequence: sequence, video, stage, error
    OUT/extract/<hash>/parts/<key>.parquet       one finished sequence (one-row shard), written atomically
    OUT/extract/<hash>/tracks/<key>.npz          every track of the clip (QA: identity switches)
    OUT/extract/<hash>/masks/<key>.npz           the subject's full-resolution masks (`keep_masks`; QA, viz)
    OUT/extract/<hash>/backgrounds/<view>.npz    per-camera background plates (`plates`), computed once per run

A sequence is finished when its part file exists under the current config hash: reruns skip it (`force`
redoes it). Shards are rebuilt from the part files sorted by key, `rows_per_shard` rows each, so a run that was
killed and resumed writes the same bytes as one that was not. Engines: in-process (workers=1, decode of the next
sequence overlapping the current one), local processes (workers>1), or Ray (`ray_engine`).
"""
from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ragar_data.pipelines.config import PipelineConfig, _build
from ragar_data.pipelines.sources import WorkUnit, read_inputs
from ragar_data.pipelines.stages import UnitResult, build_stages, iter_groups, process_group
from ragar_data.pipelines.tuning import extraction_settings

RUN_FOLDER = "extract"


@dataclass
class RunOptions:
    workers: int = 1
    engine: str = "local"  # "local" or "ray"
    address: str | None = None  # Ray cluster address ("auto", "ray://host:10001"); None = start a local Ray
    force: bool = False
    keep_masks: bool = False
    models_dir: str | None = None
    device: str = "cpu"
    batch_size: int = 16  # frames per model call (halved on out-of-memory)
    group_size: int = 1  # sequences whose frames model stages batch together
    progress: bool = True
    strict: bool = False  # refuse inputs with skipped entries or missing videos, before any work


@dataclass
class ExtractSummary:
    out_dir: str
    config_hash: str
    sequences: int
    processed: int
    reused: int
    failed: int
    quality_failed: int
    frames: int
    seconds: float
    shards: list = field(default_factory=list)
    skipped_stages: list = field(default_factory=list)
    failures_log: str = ""
    skipped_inputs: list = field(default_factory=list)  # "path: reason" of input entries not read

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        lines = [f"{self.sequences} sequences: {self.processed} extracted, {self.reused} already done, "
                     f"{self.failed} failed, {self.quality_failed} written but failing the quality filter"]
        lines.append(f"{self.frames} frames in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)")
        lines.append(f"{len(self.shards)} shard(s) in {self.out_dir}/shards (config {self.config_hash})")
        if self.failed:
            lines.append(f"failures: {self.failures_log}")
        if self.skipped_inputs:
            lines.append(f"{len(self.skipped_inputs)} input entr(ies) skipped, listed before the run "
                         f"(--strict refuses them)")
        return lines


class RunFolder:
    def __init__(self, out_dir: Path, config_hash: str):
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / RUN_FOLDER
        self.hash_dir = self.root / config_hash
        self.failures = self.root / "failures.jsonl"

    def part(self, key: str) -> Path:
        return self.hash_dir / "parts" / f"{key}.parquet"

    def tracks(self, key: str) -> Path:
        return self.hash_dir / "tracks" / f"{key}.npz"

    def masks(self, key: str) -> Path:
        return self.hash_dir / "masks" / f"{key}.npz"

    def done(self, key: str, keep_masks: bool) -> bool:
        return self.part(key).is_file() and (not keep_masks or self.masks(key).is_file())


def current_run(out_dir: str | Path) -> tuple[RunFolder, dict]:
    """The run folder and run.json of the last extraction into `out_dir` (for qa and viz)."""
    path = Path(out_dir) / RUN_FOLDER / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no extraction run in {out_dir} (run `ragar-data extract` first)")
    info = json.loads(path.read_text())
    return RunFolder(Path(out_dir), info["config_hash"]), info


def write_part(path: Path, record: dict) -> None:
    from ragar_data.shards import atomic_write_bytes, records_to_table

    sink = pa.BufferOutputStream()
    pq.write_table(records_to_table([record]), sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_part(path: Path) -> dict:
    from ragar_data.shards import table_to_records

    return table_to_records(pq.read_table(path))[0]


def assemble_shards(out_dir: Path, parts: list[Path], rows_per_shard: int) -> list[str]:
    """Shards from part files sorted by key; shards of an earlier run that are not rewritten are removed."""
    from ragar_data.shards import SHARD_DIR, update_index, write_shard

    parts = sorted(parts, key=lambda p: p.stem)
    written = []
    for number, start in enumerate(range(0, len(parts), rows_per_shard)):
        records = [read_part(p) for p in parts[start:start + rows_per_shard]]
        written.append(write_shard(out_dir, f"part-{number:05d}", records))
    keep = {Path(info.file).name for info in written}
    for stale in (Path(out_dir) / SHARD_DIR).glob("*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    update_index(out_dir, written)
    return [info.file for info in written]


@lru_cache(maxsize=2)
def _cached_stages(config_json: str, models_dir, device: str, batch_size: int):
    config = _build(PipelineConfig, json.loads(config_json), "config")
    return build_stages(config, models_dir=models_dir, device=device, batch_size=batch_size)


def process_in_worker(config_json: str, stage_args: tuple, units: list[WorkUnit], labels: dict, config_hash: str,
                      keep_masks: bool, plates: dict | None = None) -> list[UnitResult]:
    """Entry point of a worker process or Ray task: stages are built once per process and reused."""
    import warnings

    warnings.filterwarnings("ignore", module="ultralytics")
    stages = _cached_stages(config_json, *stage_args)
    with extraction_settings():
        return process_group(stages, units, labels=labels, config_hash=config_hash, keep_masks=keep_masks,
                             plates=plates)


def _store(result: UnitResult, folder: RunFolder) -> None:
    from ragar_data.shards import atomic_write_bytes

    if result.record is None:
        return
    if result.tracks is not None:
        atomic_write_bytes(folder.tracks(result.key), result.tracks)
    if result.masks is not None:
        atomic_write_bytes(folder.masks(result.key), result.masks)
    write_part(folder.part(result.key), result.record)  # last: its presence marks the sequence finished


def _progress(enabled: bool, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]extract"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                    TimeRemainingColumn(), disable=not enabled, transient=False)


def extract(out_dir: str | Path, config: PipelineConfig, *, videos: str | Path | None = None,
            manifest: str | Path | None = None, annotations: str | Path | None = None,
            options: RunOptions | None = None, log=print) -> ExtractSummary:
    """Extract every sequence of `videos` (raw layout) or `manifest` into shards in `out_dir`."""
    options = options or RunOptions()
    if (videos is None) == (manifest is None):
        raise ValueError("give exactly one of videos (raw tree) or manifest (CSV)")
    if options.engine not in ("local", "ray"):
        raise ValueError(f"engine {options.engine!r}: expected 'local' or 'ray'")
    inputs = read_inputs(videos, manifest, strict=options.strict)
    units = inputs.units
    for line in inputs.report():
        log(line)
    labels = {}
    if annotations is not None:
        from ragar_data.annotations import read_annotations

        labels = read_annotations(annotations)
    out_dir = Path(out_dir)
    config_hash = config.hash()
    folder = RunFolder(out_dir, config_hash)
    stage_args = (options.models_dir, options.device, options.batch_size)
    stages = build_stages(config, models_dir=options.models_dir, device=options.device,
                          batch_size=options.batch_size)
    for line in stages.skipped:
        log(line)

    from ragar_data.shards import atomic_write_bytes

    run_info = {"config_hash": config_hash, "config": config.to_dict(), "videos": str(videos) if videos else None,
                "manifest": str(manifest) if manifest else None, "annotations": str(annotations) if annotations
                else None, "keep_masks": options.keep_masks, "sequences": [str(u.key) for u in units]}
    atomic_write_bytes(folder.root / "run.json", (json.dumps(run_info, indent=1) + "\n").encode())
    atomic_write_bytes(folder.failures, b"")
    todo = [u for u in units if options.force or not folder.done(str(u.key), options.keep_masks)]
    reused = len(units) - len(todo)
    plates = {}
    plate_options = getattr(stages.detector, "plate_options", None)
    if plate_options and todo:  # from every sequence of a camera (finished ones too): same plate on resume
        from ragar_data.pipelines.plates import camera_plates

        plate_args = dict(work_width=config.detect.work_width, log=log, **plate_options)
        if options.workers > 1 and options.engine == "local":  # sampling = decoding: spread over the workers
            with ProcessPoolExecutor(options.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                plates = camera_plates(units, folder.hash_dir, stages.decoder, map_function=pool.map, **plate_args)
        else:
            plates = camera_plates(units, folder.hash_dir, stages.decoder, **plate_args)
    groups = [todo[i:i + max(1, options.group_size)] for i in range(0, len(todo), max(1, options.group_size))]

    started = time.perf_counter()
    frames = failed = quality_failed = processed = 0
    with _progress(options.progress, len(units)) as progress, open(folder.failures, "a") as failures_log:
        task = progress.add_task("", total=len(units), completed=reused)
        for results in _run_groups(groups, stages, options, config, stage_args, labels, config_hash, plates):
            for result in results:
                frames += result.num_frames
                if result.error is not None:
                    failed += 1
                    folder.part(result.key).unlink(missing_ok=True)  # a forced redo that fails leaves no stale row
                    failures_log.write(json.dumps(result.error) + "\n")
                    failures_log.flush()
                else:
                    _store(result, folder)
                    processed += 1
                    quality_failed += not result.record["quality_ok"]
                elapsed = time.perf_counter() - started
                progress.update(task, advance=1, description=f"{frames / max(elapsed, 1e-9):.1f} frames/s")
    seconds = time.perf_counter() - started
    parts = [folder.part(str(u.key)) for u in units if folder.part(str(u.key)).is_file()]
    shards = assemble_shards(out_dir, parts, config.rows_per_shard)
    if reused:
        from ragar_data.shards import iter_records

        quality_failed = sum(not r["quality_ok"] for s in shards for r in iter_records(out_dir / s, ["quality_ok"]))
    summary = ExtractSummary(str(out_dir), config_hash, len(units), processed, reused, failed, quality_failed, frames,
                             seconds, shards, list(stages.skipped), str(folder.failures),
                             [f"{path}: {reason}" for path, reason in inputs.skipped])
    atomic_write_bytes(folder.root / "summary.json", (json.dumps(asdict(summary), indent=1) + "\n").encode())
    return summary


def _run_groups(groups, stages, options: RunOptions, config: PipelineConfig, stage_args, labels, config_hash,
                plates) -> Iterator[list[UnitResult]]:
    if not groups:
        return
    kwargs = dict(labels=labels, config_hash=config_hash, keep_masks=options.keep_masks, plates=plates)
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    if options.engine == "ray":
        from ragar_data.pipelines.ray_engine import run_groups_on_ray

        yield from run_groups_on_ray(groups, config_json, stage_args, kwargs, address=options.address,
                                     num_cpus=options.workers)
    elif options.workers <= 1:
        yield from iter_groups(stages, groups, **kwargs)
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and models
        with ProcessPoolExecutor(options.workers, mp_context=context) as pool:
            futures = [pool.submit(process_in_worker, config_json, stage_args, units, labels, config_hash,
                                   options.keep_masks, plates) for units in groups]
            for future in as_completed(futures):
                yield future.result()
