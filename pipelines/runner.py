"""Extraction runner: work units -> per-sequence part files -> shards, resumable and idempotent.

The run folder's layout (parts, tracks, masks, plates, lock under OUT/extract/) and its readers live in
`ragar_data.run_state`.

A folder holding another dataset (not written by extract, or from another source or config) is refused unless
`overwrite` (`run_state.check_output_folder`). A sequence is finished when its part file exists under the
current config hash and was made from the same video bytes, source path, frame range and labels
(`run_state.part_identity`): reruns skip it (`force` redoes it); a video replaced at the same path is redone.
Shards are the part tables of the finished sequences concatenated in key order, `rows_per_shard` rows each, so a
run that was killed and resumed writes the same bytes as one that was not. Engines: in-process (workers=1,
decode of the next sequence overlapping the current one), local processes (workers>1, which end with the run
even when it is killed), or Ray (`ray_engine`).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ragar_data.errors import InputError
from ragar_data.pipelines import run_state
from ragar_data.pipelines.config import PipelineConfig
from ragar_data.pipelines.sources import WorkUnit, read_inputs
from ragar_data.pipelines.processing import UnitResult, build_stages, iter_groups, process_group
from ragar_data.pipelines.verify import active_verification
from ragar_data.pipelines.threads import extraction_settings
from ragar_data.run_state import RunFolder


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
    overwrite: bool = False  # replace a dataset of another source or config (only shards extract runs wrote)
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
    redone: int = 0  # finished in an earlier run, extracted again because their source changed
    skipped_inputs: list = field(default_factory=list)  # "path: reason" of input entries not read

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        lines = [f"{self.sequences} sequences: {self.processed} extracted, {self.reused} already done, "
                     f"{self.failed} failed, {self.quality_failed} written but failing the quality filter"]
        if self.redone:
            lines.append(f"{self.redone} sequence(s) done earlier were extracted again: their source changed")
        lines.append(f"{self.frames} frames in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)")
        lines.append(f"{len(self.shards)} shard(s) in {self.out_dir}/shards (config {self.config_hash})")
        lines += [line for line in self.skipped_stages if line.startswith("verify:")]
        if self.failed:
            lines.append(f"failures: {self.failures_log}")
        if self.skipped_inputs:
            lines.append(f"{len(self.skipped_inputs)} input entr(ies) skipped, listed before the run "
                         f"(--strict refuses them)")
        return lines


def _read_run_info(folder: RunFolder) -> dict | None:
    if not folder.run_json.is_file():
        return None
    try:
        return json.loads(folder.run_json.read_text())
    except (OSError, ValueError) as error:
        raise run_state.OutputFolderError(f"{folder.run_json}: unreadable run state ({error}); move the folder "
                                          "aside or choose another --out") from error


def _write_json(path: Path, value: dict) -> None:
    from ragar_data.shards import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(value, indent=1) + "\n").encode())


# ---------------------------------------------------------------------------------------------- parts and shards


def write_part(path: Path, record: dict, identity: dict | None = None) -> None:
    """A one-row part file; `identity` (`run_state.part_identity`) goes into its metadata."""
    from ragar_data.shards import atomic_write_bytes, records_to_table

    table = records_to_table([record])
    if identity is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[run_state.PART_SOURCE_KEY] = json.dumps(identity, sort_keys=True).encode()
        table = table.replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def shard_names(count: int, rows_per_shard: int) -> list[str]:
    """Files (relative to the dataset) of the shards that `count` parts make."""
    return [f"shards/part-{number:05d}.parquet" for number in range(-(-count // rows_per_shard))]


def assemble_shards(out_dir: Path, parts: list[Path], rows_per_shard: int, stale: set[str] = frozenset()
                    ) -> list[str]:
    """Shards from part files sorted by key: their one-row tables concatenated (no decode and re-encode). Of the
    shards already in the folder only those in `stale` (written by earlier extract runs) that are not rewritten
    are removed; no other file is."""
    from ragar_data.shards import read_table, update_index, write_shard_table

    parts = sorted(parts, key=lambda p: p.stem)
    written = []
    for number, start in enumerate(range(0, len(parts), rows_per_shard)):
        table = pa.concat_tables([read_table(p) for p in parts[start:start + rows_per_shard]])
        written.append(write_shard_table(out_dir, f"part-{number:05d}", table))
    keep = {info.file for info in written}
    for relative in sorted(set(stale) - keep):
        (Path(out_dir) / relative).unlink(missing_ok=True)
    update_index(out_dir, written)
    return [info.file for info in written]


@lru_cache(maxsize=2)
def _cached_stages(config_json: str, models_dir, device: str, batch_size: int):
    config = PipelineConfig.from_dict(json.loads(config_json))
    return build_stages(config, models_dir=models_dir, device=device, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------- worker processes

_progress_queue = None  # per worker process: where `process_in_worker` reports frames (set by `_start_worker`)


def _start_worker(parent_pid: int, progress_queue=None) -> None:
    """Initializer of a local worker process: it ends when the extract process ends, even on SIGKILL (which runs
    no cleanup, and would leave the worker blocked on its task queue forever)."""
    global _progress_queue
    _progress_queue = progress_queue
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1  # linux/prctl.h; the signal comes when the thread that started the worker ends,
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # here the run's main thread
    else:
        def watch():
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent ended before the line above took effect
        os._exit(1)


def _worker_pool(workers: int, progress_queue=None) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and models
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(), progress_queue))


def _map_in_processes(workers: int) -> Callable:
    """A map function over a pool of `workers` processes, started only when called."""
    def map_function(function, *iterables):
        with _worker_pool(workers) as pool:
            return list(pool.map(function, *iterables))
    return map_function


def process_in_worker(config_json: str, stage_args: tuple, units: list[WorkUnit], labels: dict, config_hash: str,
                      keep_masks: bool, plates: dict | None = None, spill_dir: str | None = None) -> list[UnitResult]:
    """Entry point of a worker process or Ray task: stages are built once per process and reused. `spill_dir`:
    where long clips' per-frame arrays go (`Stages.spill_dir`; None = the system's temporary folder)."""
    import warnings

    warnings.filterwarnings("ignore", module="ultralytics")
    stages = _cached_stages(config_json, *stage_args)
    stages.spill_dir = spill_dir
    progress = _progress_queue.put if _progress_queue is not None else None
    with extraction_settings():
        return process_group(stages, units, labels=labels, config_hash=config_hash, keep_masks=keep_masks,
                             plates=plates, progress=(lambda key, frames: progress((key, frames))) if progress
                             else None)


# ---------------------------------------------------------------------------------------------- progress


def estimated_frames(unit: WorkUnit) -> int:
    """Frames of a unit from its container's header (PyAV; 0 when unknown): the progress bar's total."""
    try:
        import av

        with av.open(str(unit.video)) as container:
            total = int(container.streams.video[0].frames or 0)
    except Exception:  # any unreadable video: its decode stage reports the error; the bar just counts 0
        return 0
    stop = total if unit.end_frame is None else min(total, unit.end_frame)
    return max(0, stop - unit.start_frame)


class FrameProgress:
    """Frames of the sequences to extract on a bar: stages report frames as they finish them, and a sequence's
    end brings the bar to its estimate, so the bar ends at its total whatever the estimates' errors."""

    def __init__(self, enabled: bool, estimates: dict[str, int]):
        from ragar_data.progress import Progress

        self.estimates, self.credited, self.finished = estimates, dict.fromkeys(estimates, 0), set()
        self._bar = Progress("extract", sum(estimates.values()), unit="frames", enabled=enabled)

    def __enter__(self) -> FrameProgress:
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()

    def update(self, frames: int) -> None:
        self._bar.advance(frames)  # the bar shows the rate itself

    def frames_done(self, key: str, frames: int) -> None:
        """Called by the stages (directly or through a worker's queue): `frames` more of sequence `key`."""
        if key in self.finished or key not in self.estimates:
            return
        step = max(0, min(frames, self.estimates[key] - self.credited[key]))
        self.credited[key] += step
        self.update(step)

    def sequence_done(self, key: str) -> None:
        if key in self.finished:
            return
        self.finished.add(key)
        self.update(max(0, self.estimates.get(key, 0) - self.credited.get(key, 0)))

    def drain(self, reports) -> None:
        """Reports of worker processes waiting in the queue `reports`."""
        while True:
            try:
                self.frames_done(*reports.get_nowait())
            except queue.Empty:
                return


# ---------------------------------------------------------------------------------------------- the run


def _store(result: UnitResult, folder: RunFolder, identity: dict) -> None:
    from ragar_data.shards import atomic_write_bytes

    if result.record is None:
        return
    if result.tracks is not None:
        atomic_write_bytes(folder.tracks(result.key), result.tracks)
    if result.masks is not None:
        atomic_write_bytes(folder.masks(result.key), result.masks)
    write_part(folder.part(result.key), result.record, identity)  # last: its presence marks the sequence finished


def _finished_earlier(units: list[WorkUnit], folder: RunFolder, identities: dict, keep_masks: bool, log
                      ) -> tuple[set[str], int]:
    """Keys whose part of an earlier run was made from the same input (reusable), and how many parts exist but
    must be redone (said once per reason)."""
    reused, redone = set(), {}
    for unit in units:
        key = str(unit.key)
        if not folder.done(key, keep_masks):
            continue
        stored = run_state.read_part_identity(folder.part(key))
        if stored == identities[key]:
            reused.add(key)
        else:
            redone.setdefault(run_state.why_redone(stored, identities[key]), []).append(key)
    for reason, keys in redone.items():
        log(f"{len(keys)} sequence(s) done earlier are extracted again, {reason}: {', '.join(keys[:5])}"
            f"{', ...' if len(keys) > 5 else ''}")
    return reused, sum(len(keys) for keys in redone.values())


def extract(out_dir: str | Path, config: PipelineConfig, *, videos: str | Path | None = None,
            manifest: str | Path | None = None, annotations: str | Path | None = None,
            options: RunOptions | None = None, log=print) -> ExtractSummary:
    """Extract every sequence of `videos` (raw layout) or `manifest` into shards in `out_dir`."""
    options = options or RunOptions()
    if (videos is None) == (manifest is None):
        raise InputError("give exactly one of videos (raw tree) or manifest (CSV)")
    if options.engine not in ("local", "ray"):
        raise InputError(f"engine {options.engine!r}: expected 'local' or 'ray'")
    inputs = read_inputs(videos, manifest, strict=options.strict)
    units = inputs.units
    for line in inputs.report():
        log(line)
    labels = {}
    if annotations is not None:
        from ragar_data.annotations import read_annotations

        labels = read_annotations(annotations)
    out_dir = Path(out_dir)
    config = active_verification(config, options.models_dir)  # optional verification without its files: off
    folder = RunFolder(out_dir, config.hash())
    # refused before anything is written into the folder, and again once the folder is ours
    run_state.check_output_folder(out_dir, _read_run_info(folder), run_state.source_of(videos, manifest),
                                  config.hash(), options.overwrite)
    with run_state.run_lock(out_dir, folder.root):
        return _extract_locked(folder, config, units, labels, videos, manifest, annotations, options, log,
                               [f"{path}: {reason}" for path, reason in inputs.skipped])


def _extract_locked(folder: RunFolder, config: PipelineConfig, units: list[WorkUnit], labels: dict, videos,
                    manifest, annotations, options: RunOptions, log, skipped_inputs: list[str]) -> ExtractSummary:
    out_dir, config_hash = folder.out_dir, config.hash()
    previous, source = _read_run_info(folder), run_state.source_of(videos, manifest)
    run_state.check_output_folder(out_dir, previous, source, config_hash, options.overwrite)
    run_state.check_writable(folder.writable_folders())
    tracked = run_state.tracked_shards(out_dir, previous)
    stage_args = (options.models_dir, options.device, options.batch_size)
    stages = build_stages(config, models_dir=options.models_dir, device=options.device,
                          batch_size=options.batch_size)
    stages.spill_dir = folder.hash_dir  # a long clip's per-frame arrays: on the output's disk, not in /tmp
    for line in stages.skipped:
        log(line)

    run_info = {"config_hash": config_hash, "config": config.to_dict(), "videos": str(videos) if videos else None,
                "manifest": str(manifest) if manifest else None, "annotations": str(annotations) if annotations
                else None, "keep_masks": options.keep_masks, "sequences": [str(u.key) for u in units],
                "source": source, "shards": sorted(tracked)}
    _write_json(folder.run_json, run_info)
    from ragar_data.shards import atomic_write_bytes

    atomic_write_bytes(folder.failures, b"")
    identities = {str(u.key): run_state.part_identity(u, labels.get((u.key.subject, u.key.combination)), config_hash)
                  for u in units}
    valid_earlier, redone = _finished_earlier(units, folder, identities, options.keep_masks, log)
    reused = set() if options.force else valid_earlier
    todo = [u for u in units if str(u.key) not in reused]
    plates = {}
    if todo:  # from every sequence of a camera (finished ones too): same plate on resume
        map_function = _map_in_processes(options.workers) if options.workers > 1 and options.engine == "local" \
            else map  # plate sampling = decoding: spread over the workers
        plates = stages.prepare_detector(units, folder.hash_dir, map_function=map_function, log=log)
    groups = [todo[i:i + max(1, options.group_size)] for i in range(0, len(todo), max(1, options.group_size))]

    started = time.perf_counter()
    frames = failed = quality_failed = processed = 0
    succeeded = set()
    estimates = {str(u.key): estimated_frames(u) for u in todo}
    with FrameProgress(options.progress, estimates) as progress, open(folder.failures, "a") as failures_log:
        for results in _run_groups(groups, stages, options, config, stage_args, labels, config_hash, plates,
                                   progress):
            for result in results:
                frames += result.num_frames
                if result.error is not None:
                    failed += 1
                    failures_log.write(json.dumps(result.error) + "\n")
                    failures_log.flush()
                else:
                    _store(result, folder, identities[result.key])
                    succeeded.add(result.key)
                    processed += 1
                    quality_failed += not result.record["quality_ok"]
                progress.sequence_done(result.key)
    seconds = time.perf_counter() - started
    # the finished sequences: extracted now, or earlier from the same input (a forced redo that fails keeps its
    # earlier row; the part of a changed video that now fails is left out of the shards, not deleted)
    parts = [folder.part(str(u.key)) for u in units if str(u.key) in valid_earlier | succeeded]
    names = shard_names(len(parts), config.rows_per_shard)
    _write_json(folder.run_json, {**run_info, "shards": sorted(tracked | set(names))})  # before writing them
    shards = assemble_shards(out_dir, parts, config.rows_per_shard, stale=tracked)
    _write_json(folder.run_json, {**run_info, "shards": sorted(shards)})
    if valid_earlier - succeeded:  # rows of earlier runs: count their quality from the shards
        from ragar_data.shards import iter_records

        quality_failed = sum(not r["quality_ok"] for s in shards for r in iter_records(out_dir / s, ["quality_ok"]))
    summary = ExtractSummary(str(out_dir), config_hash, len(units), processed, len(reused), failed, quality_failed,
                             frames, seconds, shards, list(stages.skipped), str(folder.failures), redone,
                             skipped_inputs)
    _write_json(folder.root / "summary.json", asdict(summary))
    return summary


def _run_groups(groups, stages, options: RunOptions, config: PipelineConfig, stage_args, labels, config_hash,
                plates, progress: FrameProgress) -> Iterator[list[UnitResult]]:
    if not groups:
        return
    kwargs = dict(labels=labels, config_hash=config_hash, keep_masks=options.keep_masks, plates=plates)
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    if options.engine == "ray":  # frames are reported per finished group
        from ragar_data.pipelines.ray_engine import run_groups_on_ray

        yield from run_groups_on_ray(groups, config_json, stage_args, kwargs, address=options.address,
                                     num_cpus=options.workers)
    elif options.workers <= 1:
        yield from iter_groups(stages, groups, progress=progress.frames_done, **kwargs)
    else:
        reports = multiprocessing.get_context("spawn").Queue()
        with _worker_pool(options.workers, reports) as pool:
            pending = {pool.submit(process_in_worker, config_json, stage_args, units, labels, config_hash,
                                   options.keep_masks, plates, stages.spill_dir) for units in groups}
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                progress.drain(reports)
                for future in done:
                    yield future.result()
