"""The extraction stages put together: build them from a preset, run them over a group of work units.

decode -> detect -> track -> select -> segment -> normalise -> pose2d -> lift3d -> quality -> record.

Sequence stages (background detector, foreground segmenter) run per clip; model stages (a frame detector, a
model segmenter, 2D pose) see the frames of every clip in the group concatenated and batched, so one model call
can span sequences; their batch size halves on out-of-memory and stays halved. A unit that fails a stage is
dropped from the later stages and reported with the stage's name; the rest of the group goes on.
Writing files is the runner's job: this module returns records and side data.
"""
from __future__ import annotations

import inspect
import io
import traceback
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ragar_data.errors import ConfigError, ModelUnavailable, RagarDataError
from ragar_data.pipelines import decode as decode_stage
from ragar_data.pipelines.config import PipelineConfig, parse_resolution, resolve_backend
from ragar_data.pipelines.decode import Clip, Decoder
from ragar_data.pipelines.detect import DETECTORS, Detections, Detector, SequenceDetector
from ragar_data.pipelines.frame_store import FrameFile
from ragar_data.pipelines.lift3d import LIFTERS, Lifter
from ragar_data.pipelines.plates import camera_of
from ragar_data.pipelines.pose2d import POSE_ESTIMATORS, PoseEstimator
from ragar_data.pipelines.quality import assess_quality, main_part_fractions, person_reasons, rejected_frames
from ragar_data.pipelines.segment import (SEGMENTERS, ForegroundSegmenter, Segmenter, SubjectMasks,
                                          masks_from_model)
from ragar_data.pipelines.subject import SubjectTrack
from ragar_data.pipelines.sources import WorkUnit
from ragar_data.pipelines.track import TRACKERS, Tracker, Tracks
from ragar_data.pipelines.threads import extraction_settings
from ragar_data.pipelines.verify import build_verifier, choose_subject, plate_person_masks

NUM_ATTRIBUTES = 15


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    name = type(error).__name__
    return name == "OutOfMemoryError" or (isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


class AdaptiveBatches:
    """Calls `function` on consecutive slices of at most `batch_size` items; on out-of-memory the batch size is
    halved and the slice retried (down to 1, then the error is raised). The smaller size is kept afterwards."""

    def __init__(self, function: Callable, batch_size: int, name: str):
        self.function, self.batch_size, self.name = function, max(1, int(batch_size)), name

    def __call__(self, count: int, make_batch: Callable[[int, int], tuple]) -> list:
        outputs, start = [], 0
        while start < count:
            stop = min(count, start + self.batch_size)
            try:
                result = self.function(*make_batch(start, stop))
            except Exception as error:  # only out-of-memory is handled here; anything else propagates
                if not _is_out_of_memory(error) or stop - start == 1:
                    raise
                self.batch_size = max(1, (stop - start) // 2)
                warnings.warn(f"{self.name}: out of memory, batch size halved to {self.batch_size}")
                _free_device_memory()
                continue
            outputs.extend(list(result))
            start = stop
        return outputs


def _free_device_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


@dataclass
class Stages:
    config: PipelineConfig
    decoder: Decoder
    detector: Detector | SequenceDetector
    tracker: Tracker
    segmenter: Segmenter | ForegroundSegmenter
    pose2d: PoseEstimator | None
    lift3d: Lifter | None
    skipped: list = field(default_factory=list)  # one line per skipped stage
    batch_size: int = 16
    verifier: object | None = None  # person detector of `pipelines/verify.py`; None = weights-free subject choice
    spill_dir: Path | None = None  # where a long clip's per-frame arrays go (`frame_store`); None = system temp

    @property
    def sequence_detector(self) -> bool:
        return isinstance(self.detector, SequenceDetector)

    def prepare_detector(self, units: list[WorkUnit], state_dir: Path, *, map_function: Callable = map,
                         log: Callable = print) -> dict:
        """The detector's run-level state from every unit of the run, before the main pass (a sequence
        detector's per-camera background plates, kept in `state_dir`); {} for a frame detector."""
        if not self.sequence_detector:
            return {}
        masking = self.verifier is not None and self.config.verify.mask_plates
        extra = {"person_masks": plate_person_masks(self.verifier, self.config.verify.min_score)} if masking else {}
        return self.detector.prepare(units, state_dir, self.decoder, work_width=self.config.detect.work_width,
                                     map_function=map_function, log=log, **extra)


def _loads_weights(backend) -> bool:
    """A backend that loads weights says so by taking `models_dir` (with `device` and `model`) in its constructor."""
    try:
        return "models_dir" in inspect.signature(backend).parameters
    except (TypeError, ValueError):  # a builtin or C class without a signature takes no weights folder
        return False


def _model_backend(stage: str, table: dict, name: str, options: dict, models_dir, device, model=None):
    cls = resolve_backend(table, name, stage)
    kwargs = dict(options)
    if _loads_weights(cls):
        kwargs.update(models_dir=models_dir, device=device)
        if model:
            kwargs["model"] = model
    return cls(**kwargs)


def build_stages(config: PipelineConfig, *, models_dir=None, device: str = "cpu", batch_size: int = 16) -> Stages:
    """Backends of every stage. Detection, tracking and segmentation are required (a missing model is an
    error naming it); a pose stage whose backend is not configured or cannot load is skipped with a line."""
    decoder = decode_stage.make_decoder(config.decode.backend, config.decode.threads, config.decode.frame_format)
    detector = _model_backend("detect", DETECTORS, config.detect.backend, config.detect.options, models_dir, device)
    track_options = {k: v for k, v in vars(config.track).items() if k != "backend"}
    tracker = resolve_backend(TRACKERS, config.track.backend, "track")(**track_options)
    segmenter = _model_backend("segment", SEGMENTERS, config.segment.backend, config.segment.options, models_dir,
                               device)
    if isinstance(segmenter, ForegroundSegmenter) and not isinstance(detector, SequenceDetector):
        raise ConfigError(f"segment backend 'foreground' refines the background detector's masks; detect backend "
                         f"{config.detect.backend!r} has none (choose a model segmenter, e.g. pp-humanseg)")
    skipped, pose, lifter = [], None, None
    if not config.pose2d.backend:
        skipped.append("pose2d: skipped, no 2D pose backend in the preset (keypoints_2d left empty)")
    else:
        try:
            pose = _model_backend("pose2d", POSE_ESTIMATORS, config.pose2d.backend, config.pose2d.options,
                                  models_dir, device, config.pose2d.model)
        except ModelUnavailable as error:
            skipped.append(f"pose2d: skipped, {config.pose2d.backend} cannot run here: {error}")
    if not config.lift3d.backend:
        skipped.append("lift3d: skipped, no 3D lifter in the preset (keypoints_3d left empty)")
    elif pose is None:
        skipped.append("lift3d: skipped, it lifts 2D keypoints and the pose2d stage is not running")
    else:
        try:
            lifter = _model_backend("lift3d", LIFTERS, config.lift3d.backend, config.lift3d.options, models_dir,
                                    device, config.lift3d.model)
        except ModelUnavailable as error:
            skipped.append(f"lift3d: skipped, {config.lift3d.backend} cannot run here: {error}")
    verifier, verify_line = build_verifier(config.verify, models_dir, device, preset=config.name)
    skipped.append(verify_line)
    return Stages(config, decoder, detector, tracker, segmenter, pose, lifter, skipped, batch_size, verifier)


@dataclass
class UnitResult:
    """What one work unit produced: a record for the shards, side data for QA/viz, or an error."""

    key: str
    num_frames: int = 0
    record: dict | None = None
    tracks: bytes | None = None  # npz: all tracks of the clip (QA identity switches)
    masks: bytes | None = None  # SubjectMasks.to_bytes() when masks are kept
    error: dict | None = None  # {"sequence", "video", "stage", "error"}


@dataclass
class StageFailure:
    stage: str
    error: BaseException


def _error_text(error: BaseException) -> str:
    if isinstance(error, (RagarDataError, ValueError, OSError)):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error} | {traceback.format_exception(error)[-2].strip()}"


def _tracks_bytes(tracks, clip, subject_id) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, frame_index=clip.frame_index[tracks.frame], track_id=tracks.track_id,
                        boxes=tracks.boxes, scores=tracks.scores, subject_track_id=np.int32(subject_id or -1),
                        num_frames=np.int32(clip.num_frames), image_size=np.asarray(clip.image_size, np.int32))
    return buffer.getvalue()


# Fraction of a sequence's compute done after each stage, for the progress callback: a sequence's frames are
# credited in these steps, so the bar moves inside a long video, not only when it ends. Measured (CPU time,
# default preset, synthetic walkers): 1080p decode 0.43, detect 0.59, track + select 0.62, segment 0.98;
# 480x270 0.15, 0.74, 0.83, 0.98. Model stages (pose2d, lift3d) take their share out of the last step.
PROGRESS_AFTER = {"decode": 0.4, "detect": 0.6, "select": 0.62, "segment": 0.96, "pose2d": 0.98, "lift3d": 0.99}


@dataclass
class _Work:
    """One sequence on its way through the stages of a group; `failure` set = dropped from later stages."""

    unit: WorkUnit
    clip: Clip | None = None
    detections: Detections | None = None
    tracks: Tracks | None = None
    subject: SubjectTrack | None = None
    verification: object | None = None  # verify.Verification when person verification ran
    masks: SubjectMasks | None = None
    keypoints_2d: np.ndarray | None = None
    keypoints_3d: np.ndarray | None = None
    failure: StageFailure | None = None
    credited: int = 0  # frames reported to the progress callback
    illumination: float | None = None  # mean grey level / 255 of the reduced copy, kept when that copy is released

    @property
    def num_frames(self) -> int:
        return self.clip.num_frames if self.clip is not None else 0

    def credit(self, fraction: float, progress: Callable[[str, int], None] | None) -> None:
        """Report the frames of this sequence up to `fraction` of its work as done."""
        frames = round(self.num_frames * fraction) - self.credited
        if progress is not None and frames > 0:
            progress(str(self.unit.key), frames)
            self.credited += frames


@contextmanager
def _stage(name: str, works: list[_Work]):
    """The one place where a stage's exception becomes the failure of the sequences it ran on: they are dropped
    from the later stages and reported with the stage's name; the rest of the group goes on."""
    try:
        yield
    except Exception as error:
        for work in works:
            work.failure = StageFailure(name, error)


def _live(works: list[_Work]) -> list[_Work]:
    return [w for w in works if w.failure is None]


# Full-resolution frames a decoded clip keeps (bytes): 4 s of 1080p in 4:2:0 (2 s in RGB). A longer clip keeps
# only its reduced copy, in a file (`frame_store`), and the segment stage reads its frames again (two more decodes
# of that clip), so peak memory does not grow with the length: 1.1 GB for 10 s to 180 s of 1080p
# (benchmarks/extract_memory.py --long), where keeping its frames took 8 GB for 60 s.
FRAME_BUDGET = 384 * 2**20


def frames_read_again(stages: Stages) -> bool:
    """Whether these stages can work on a clip without its full-resolution frames (reading them again): the
    sequence detector and the foreground segmenter; frame models (detectors, segmenters, pose) need them all."""
    return stages.sequence_detector and isinstance(stages.segmenter, ForegroundSegmenter) and stages.pose2d is None


def _decode(stages: Stages, unit: WorkUnit) -> Clip:
    config = stages.config.decode
    return decode_stage.decode_clip(
        unit.video, stages.decoder, start_frame=unit.start_frame, end_frame=unit.end_frame,
        work_width=stages.config.detect.work_width, expect_resolution=parse_resolution(config.expect_resolution),
        queue_frames=config.queue_frames, frame_budget=FRAME_BUDGET if frames_read_again(stages) else None,
        spill_dir=stages.spill_dir,
    )


def _decode_stage(stages: Stages, works: list[_Work], *, decoded: list | None) -> None:
    for position, work in enumerate(works):
        with _stage("decode", [work]):
            clip = decoded[position] if decoded is not None else _decode(stages, work.unit)
            if isinstance(clip, BaseException):  # decoded ahead by a prefetching caller
                raise clip
            work.clip = clip


def _detect_stage(stages: Stages, works: list[_Work], *, plates: dict) -> None:
    if stages.sequence_detector:
        for work in works:
            with _stage("detect", [work]):
                work.detections = stages.detector.detect_sequence(work.clip, plates.get(camera_of(work.unit)))
                _release_reduced_copy(work)
        return
    frames = [(position, i) for position, work in enumerate(works) for i in range(work.clip.num_frames)]
    call = AdaptiveBatches(stages.detector.detect, stages.batch_size, "detect")
    with _stage("detect", works):
        boxes = call(len(frames), lambda a, b: (np.stack([works[p].clip.rgb(i) for p, i in frames[a:b]]),))
        per_work = _per_work(len(works), frames, boxes)
        for work, frame_boxes in zip(works, per_work):
            work.detections = Detections(boxes=[np.asarray(b, np.float32).reshape(-1, 5) for b in frame_boxes])


def _release_reduced_copy(work: _Work) -> None:
    """A long clip (frames over the decode's budget, so only the sequence stages run on it) gives up its
    reduced copy once detected: the later stages read the background model, and a 60 s 1080p clip's copy
    (0.7 GB) would sit beside the tracker's libraries (0.45 GB) for nothing. Its mean level is kept."""
    if not work.clip.frames_kept:
        work.illumination = mean_level(work.clip.small) / 255.0
        work.clip.small = None


def _track_stage(stages: Stages, works: list[_Work]) -> None:
    for work in works:
        with _stage("track", [work]):
            work.tracks = stages.tracker.track(work.detections.boxes, work.clip.image_size)


def _select_stage(stages: Stages, works: list[_Work]) -> None:
    for work in works:
        with _stage("select", [work]):
            work.subject, work.verification = choose_subject(
                work.tracks, work.clip.image_size, work.clip.frame_reader(), stages.verifier, stages.config)


def _with_subject_frames(works: list[_Work]) -> list[_Work]:
    return [w for w in works if w.subject is not None and len(w.subject.frame)]


def _per_work(count: int, items: list[tuple[int, int]], outputs: list) -> list[list]:
    """Outputs of a model stage over (work position, frame) items, split back per work, in frame order."""
    per_work: list[list] = [[] for _ in range(count)]
    for (position, _), output in zip(items, outputs):
        per_work[position].append(output)
    return per_work


def _subject_frame_outputs(call: AdaptiveBatches, works: list[_Work]) -> list[list]:
    """A model stage over the subject frames (frame, box) of all `works`, batched across sequences."""
    items = [(position, i) for position, work in enumerate(works) for i in range(len(work.subject.frame))]

    def make_batch(start, stop):
        frames = np.stack([works[p].clip.rgb(works[p].subject.frame[i]) for p, i in items[start:stop]])
        boxes = np.stack([works[p].subject.boxes[i] for p, i in items[start:stop]]).astype(np.float32)
        return frames, boxes

    return _per_work(len(works), items, call(len(items), make_batch))


def _segment_stage(stages: Stages, works: list[_Work]) -> None:
    segment_config = stages.config.segment
    if isinstance(stages.segmenter, ForegroundSegmenter):
        for work in (w for w in works if w.subject is not None):
            with _stage("segment", [work]):
                work.masks = stages.segmenter.segment_sequence(work.clip, work.detections.background, work.subject,
                                                               segment_config.box_padding)
        return
    live = _with_subject_frames(works)
    call = AdaptiveBatches(lambda f, b: masks_from_model(stages.segmenter, f, b).crops_with_origins(),
                           stages.batch_size, "segment")
    with _stage("segment", live):
        for work, pieces in zip(live, _subject_frame_outputs(call, live)):
            work.masks = SubjectMasks(np.asarray([o for o, _ in pieces], np.int32).reshape(-1, 4),
                                      [c for _, c in pieces], work.clip.image_size)


def _pose2d_stage(stages: Stages, works: list[_Work]) -> None:
    live = _with_subject_frames(works)
    call = AdaptiveBatches(stages.pose2d.estimate, stages.batch_size, "pose2d")
    with _stage("pose2d", live):
        for work, keypoints in zip(live, _subject_frame_outputs(call, live)):
            work.keypoints_2d = np.asarray(keypoints, np.float32).reshape(-1, 17, 3)


def _lift3d_stage(stages: Stages, works: list[_Work]) -> None:
    if getattr(stages.lift3d, "needs_frames", False):  # lifts from the frames (lift3d.FrameLifter)
        live = _with_subject_frames(works)
        call = AdaptiveBatches(stages.lift3d.lift_frames, stages.batch_size, "lift3d")
        with _stage("lift3d", live):
            for work, joints in zip(live, _subject_frame_outputs(call, live)):
                work.keypoints_3d = np.asarray(joints, np.float32).reshape(-1, 17, 3)
        return
    for work in (w for w in works if w.keypoints_2d is not None):
        with _stage("lift3d", [work]):
            work.keypoints_3d = np.asarray(stages.lift3d.lift(work.keypoints_2d, work.clip.image_size),
                                           np.float32).reshape(-1, 17, 3)


# The stages a group goes through before the subject is chosen: `iter_groups` runs them on the next group in its
# prefetch thread while the current group's later stages run (`prepare_front`).
FRONT_STEPS = ("decode", "detect", "track")


def _steps(stages: Stages, decoded: list | None, plates: dict) -> list[tuple[str, Callable]]:
    steps = [("decode", partial(_decode_stage, decoded=decoded)),
             ("detect", partial(_detect_stage, plates=plates)),
             ("track", _track_stage), ("select", _select_stage), ("segment", _segment_stage)]
    steps += [("pose2d", _pose2d_stage)] if stages.pose2d is not None else []
    steps += [("lift3d", _lift3d_stage)] if stages.lift3d is not None else []
    return steps


def _run_steps(stages: Stages, works: list[_Work], steps: list, progress) -> None:
    for name, step in steps:
        step(stages, _live(works))  # decode sees every work, in the order of `decoded`
        for work in works:
            work.credit(PROGRESS_AFTER.get(name, 0.0), progress)


def prepare_front(stages: Stages, units: list[WorkUnit], decoded: list, plates: dict | None = None) -> list[_Work]:
    """The sequences of `units` through the `FRONT_STEPS` (decoded clips or errors in `decoded`), no progress
    reported yet: `process_group(..., prepared=...)` takes them on. The front stages read only their own
    sequence's clip and the camera plates, so this may run in a thread beside `process_group` on another group."""
    works = [_Work(unit) for unit in units]
    steps = [step for step in _steps(stages, decoded, plates or {}) if step[0] in FRONT_STEPS]
    _run_steps(stages, works, steps, None)
    return works


def process_group(stages: Stages, units: list[WorkUnit], *, labels: dict, config_hash: str,
                  keep_masks: bool = False, decoded: list | None = None, plates: dict | None = None,
                  progress: Callable[[str, int], None] | None = None,
                  prepared: list[_Work] | None = None) -> list[UnitResult]:
    """Run every stage over `units`; one UnitResult per unit, in order. `decoded` may hold clips (or errors)
    already decoded by a prefetching caller, `prepared` the sequences already through the front stages
    (`prepare_front`); `plates` maps a camera to its background plate (`Stages.prepare_detector`);
    `progress(key, frames)` is told the frames of each sequence as stages finish (each sequence's reports add
    up to its frame count)."""
    steps = _steps(stages, decoded, plates or {})
    if prepared is None:
        works = [_Work(unit) for unit in units]
    else:
        works, steps = prepared, [step for step in steps if step[0] not in FRONT_STEPS]
        for work in works:
            work.credit(max(PROGRESS_AFTER.get(name, 0.0) for name in FRONT_STEPS), progress)
    _run_steps(stages, works, steps, progress)
    results = [_result(work, stages.config, labels, config_hash, keep_masks) for work in works]
    for work in works:
        work.credit(1.0, progress)
    return results


def _result(work: _Work, config: PipelineConfig, labels: dict, config_hash: str, keep_masks: bool) -> UnitResult:
    if work.failure is None:
        with _stage("normalise", [work]):
            return _finish(work, config, labels, config_hash, keep_masks)
    key = str(work.unit.key)
    return UnitResult(key, num_frames=work.num_frames, error={
        "sequence": key, "video": str(work.unit.video), "stage": work.failure.stage,
        "error": _error_text(work.failure.error)})


def _finish(work: _Work, config: PipelineConfig, labels: dict, config_hash: str, keep_masks: bool) -> UnitResult:
    from ragar_data.shards import make_record

    clip, subject, key = work.clip, work.subject, work.unit.key
    size = config.silhouette_size
    silhouettes, silhouette_positions = np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64)
    truncated, shares, rejected = np.zeros(0, bool), None, None
    if subject is not None and work.masks is not None:
        truncated = work.masks.touches_border(config.quality.border_margin)
        dropped = truncated & config.quality.drop_truncated_frames
        if work.verification is not None:
            shares = main_part_fractions(work.masks.crops)
        rejected = rejected_frames(work.verification, work.masks, config.verify, shares)
        usable = np.flatnonzero(~(dropped | rejected))
        silhouettes, silhouette_positions = work.masks.silhouettes(usable, size, name=str(key))
    positions = subject.frame if subject is not None else None
    reasons = assess_quality(positions=positions, truncated=truncated, num_silhouettes=len(silhouettes),
                             config=config.quality)
    reasons += person_reasons(work.verification, subject, work.masks, config.verify, config.select, shares, rejected)
    frame_index = clip.frame_index[subject.frame] if subject is not None else np.zeros(0, np.int32)
    label = labels.get((key.subject, key.combination))
    record = make_record(
        key, source=work.unit.source, image_width=clip.info.width, image_height=clip.info.height,
        fps=float(clip.info.fps),
        illumination=(work.illumination if work.illumination is not None else mean_level(clip.small) / 255.0),
        labels=np.asarray(label if label is not None else np.full(NUM_ATTRIBUTES, -1), np.int8),
        frame_index=frame_index.astype(np.int32),
        boxes=(subject.boxes if subject is not None else np.zeros((0, 4))).astype(np.float32),
        track_id=int(subject.track_id) if subject is not None else None,
        silhouettes=silhouettes,
        silhouette_frame_index=(clip.frame_index[subject.frame[silhouette_positions]] if subject is not None
                                else np.zeros(0)).astype(np.int32),
        keypoints_2d=work.keypoints_2d,
        keypoints_2d_model=(config.pose2d.model or config.pose2d.backend) if work.keypoints_2d is not None else None,
        keypoints_3d=work.keypoints_3d,
        keypoints_3d_model=(config.lift3d.model or config.lift3d.backend) if work.keypoints_3d is not None else None,
        quality_ok=not reasons, quality_reasons=reasons, pipeline_hash=config_hash,
    )
    return UnitResult(str(key), clip.num_frames, record,
                      tracks=_tracks_bytes(work.tracks, clip, subject.track_id if subject is not None else None),
                      masks=work.masks.to_bytes() if keep_masks and work.masks is not None else None)


def mean_level(images: np.ndarray | FrameFile) -> float:
    """Mean of a uint8 array: OpenCV's integer-exact sum, 15x faster than ndarray.mean (the same value). A
    FrameFile is summed in chunks (integer sums: the same value)."""
    if images.size == 0:
        return 0.0
    chunks = images.chunks() if isinstance(images, FrameFile) else (images,)
    return sum(_level_sum(chunk) for chunk in chunks) / images.size


def _level_sum(images: np.ndarray) -> float:
    rows = np.ascontiguousarray(images).reshape(-1, images.shape[-1] * (images.shape[-2] if images.ndim > 1 else 1))
    return float(sum(cv2.sumElems(rows)))


# groups decoded ahead of the one being computed, at most. A group is decoded ahead only once the ones before
# it have finished decoding as short clips, so in steady state it is the next group only, and never a group
# beside a long clip (memory).
PREFETCH_GROUPS = 2


def _holds_long_clip(clips: list) -> bool:
    """`clips`: clips (or errors) of a group, or its sequences (`_Work`) prepared by `prepare_front`."""
    clips = [clip.clip if isinstance(clip, _Work) else clip for clip in clips]
    return any(isinstance(clip, Clip) and not clip.frames_kept for clip in clips)


def iter_groups(stages: Stages, groups: list[list[WorkUnit]], *, prefetch: int = PREFETCH_GROUPS,
                **kwargs) -> Iterator[list[UnitResult]]:
    """process_group over `groups`, decoding up to `prefetch` groups ahead in a thread while the current one is
    computed (one decoding thread: the groups are decoded in order). A group of short clips also goes through
    the front stages (detection, tracking: `prepare_front`) in that thread, so two cores share the work; the
    results are the same. Memory stays bounded: nothing more is decoded ahead while the current group, or one
    decoded ahead, holds a long clip (frames over the budget), nor while a decode ahead is still running; a
    long clip's front stages run in the calling thread, as its later ones."""
    def decode_all(units):
        clips = []
        for unit in units:
            try:
                clips.append(_decode(stages, unit))
            except Exception as error:
                clips.append(error)
        if _holds_long_clip(clips):
            return clips
        return prepare_front(stages, units, clips, kwargs.get("plates"))

    with extraction_settings(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending, upcoming = deque(), iter(groups)

        def may_decode_ahead(current: list) -> bool:
            return (len(pending) < max(1, prefetch) and not _holds_long_clip(current)
                    and all(f.done() and not _holds_long_clip(f.result()) for f in pending))

        for units in groups:
            if not pending:
                pending.append(pool.submit(decode_all, next(upcoming)))
            decoded = pending.popleft().result()
            while may_decode_ahead(decoded) and (following := next(upcoming, None)) is not None:
                pending.append(pool.submit(decode_all, following))
            if decoded and isinstance(decoded[0], _Work):
                yield process_group(stages, units, prepared=decoded, **kwargs)
            else:
                yield process_group(stages, units, decoded=decoded, **kwargs)
            del decoded
