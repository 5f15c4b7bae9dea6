"""Writing a synthetic dataset tree: videos, ground truth, annotation CSV and the generator's arguments.

    OUT/videos/<subject>/c<k>/<condition>/<view:03d>.mp4        raw layout of `SequenceKey.raw_video_relpath`
    OUT/ground_truth/<subject>/c<k>/<condition>/<view:03d>.npz  see `ground_truth.py`
    OUT/annotations.csv                                          `ragar_data.annotations` format, class names
    OUT/synth.json                                               all arguments (SynthConfig)

Resumable: a sequence whose video and ground truth both exist is skipped (each is written to a temporary
name and renamed, so an existing file is complete). A rerun with different rendering settings into the same
folder is refused, since it would mix two datasets; selections (subjects, views, ...) may grow.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from ragar_data.annotations import write_annotations
from ragar_data.atomic import atomic_write_json, remove_stale_temporaries
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.progress import Progress
from ragar_data.synth.body import subject_attributes
from ragar_data.synth.config import SynthConfig
from ragar_data.synth.ground_truth import ground_truth_relpath, save_ground_truth
from ragar_data.synth.sequence import stream_sequence
from ragar_data.synth.video import available_codec, write_video

# fields that only select which sequences exist; every other field changes the rendered pixels
SELECTION_FIELDS = ("subjects", "first_subject", "views", "combinations", "conditions")


def sequence_keys(config: SynthConfig) -> list[SequenceKey]:
    return [SequenceKey(subject, combination, condition, view)
            for subject in config.subject_ids for combination in config.combinations
            for condition in config.conditions for view in config.views]


def _check_previous_run(path: Path, config: SynthConfig) -> None:
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RagarDataError(f"{path}: unreadable generator arguments ({error}); remove it or use another folder")
    current = config.to_dict()
    previous = {**SynthConfig().to_dict(), **previous}  # a field added since then had its default's effect
    changed = sorted(k for k in current if k not in SELECTION_FIELDS and previous.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {current[k]!r}" for k in changed)
        raise RagarDataError(f"{path.parent} was generated with other rendering settings ({details}); "
                             "use another output folder or the same settings")


def render_to_files(out_dir: str | Path, config: SynthConfig, key: SequenceKey) -> int:
    """Render one sequence into the tree (video, then ground truth); returns the number of frames."""
    out_dir = Path(out_dir)
    video = out_dir / "videos" / key.raw_video_relpath()
    truth_path = out_dir / "ground_truth" / ground_truth_relpath(key)
    for leftover in (video, truth_path):  # temporary files of a run killed while writing this sequence
        remove_stale_temporaries(leftover)
    frames, truth = stream_sequence(config, key)
    write_video(video, frames, config.fps, config.width, config.height, codec=config.codec, crf=config.crf,
                preset=config.preset)
    save_ground_truth(truth_path, truth)
    return int(len(truth["frame_index"]))


def _worker_init():
    import cv2

    cv2.setNumThreads(1)


def generate(out_dir: str | Path, config: SynthConfig, workers: int = 1, progress: bool = True) -> dict:
    """Render every sequence of `config` into `out_dir` (see the module docstring); returns a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings_path = out_dir / "synth.json"
    _check_previous_run(settings_path, config)
    codec = available_codec(config.codec)
    write_annotations(out_dir / "annotations.csv", subject_attributes(config))
    atomic_write_json(settings_path, {"generator": "ragar-data synth", "config": config.to_dict(),
                                      "video_codec": codec}, indent=2, sort_keys=True)
    keys = sequence_keys(config)
    todo = [key for key in keys
            if not ((out_dir / "videos" / key.raw_video_relpath()).exists()
                    and (out_dir / "ground_truth" / ground_truth_relpath(key)).exists())]
    started = time.perf_counter()
    frames = 0
    with Progress("synth", len(todo), unit="seq", enabled=progress) as bar:

        def advance(count: int):
            nonlocal frames
            frames += count
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.note(f"{frames / elapsed:.1f} frames/s")
            bar.advance()

        if workers <= 1:
            for key in todo:
                advance(render_to_files(out_dir, config, key))
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
                futures = [pool.submit(render_to_files, out_dir, config, key) for key in todo]
                for future in futures:
                    advance(future.result())
    elapsed = time.perf_counter() - started
    return {"out_dir": str(out_dir), "sequences": len(keys), "rendered": len(todo),
            "skipped": len(keys) - len(todo), "frames": frames, "seconds": round(elapsed, 2),
            "frames_per_second": round(frames / elapsed, 1) if elapsed > 0 and frames else 0.0,
            "video_codec": codec}
