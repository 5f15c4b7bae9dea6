"""Extraction presets: dataclasses loaded from `pipelines/<preset>.yaml`, CLI overrides by dotted name, config hash.

A preset only chooses backends and numbers. Loading (`ragar_data.typed_config`) refuses unknown keys, wrong types,
numbers out of their bounds, unknown backend and model names, and a malformed `decode.expect_resolution`, naming
the key, before any work starts. The hash covers everything that changes the extracted rows (backends,
their options, thresholds) and nothing that only changes how the run is executed (workers, engine, batch size,
device): a rerun with another `--workers` still skips finished sequences.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ragar_data import typed_config
from ragar_data.typed_config import ConfigError, build, load_yaml, setting


PRESET_DIR = Path(__file__).resolve().parent
MIN_WORK_WIDTH = 32  # narrower working frames leave a distant walker a few pixels wide


@dataclass
class DecodeConfig:
    backend: str = "pyav"  # "pyav" (threaded) or "opencv"
    threads: int = setting(0, min=0)  # decoder threads, 0 = library default (all cores)
    # "rgb24" (swscale RGB frames) or "yuv420p" (the decoder's planes kept, RGB made only for the reduced copy and
    # the regions stages read; pyav backend only)
    frame_format: str = setting("rgb24", choices=("rgb24", "yuv420p"))
    expect_resolution: str | None = None  # "1920x1080": other sizes fail with a clear error
    queue_frames: int = setting(16, min=1)  # frames buffered between the decode thread and the pipeline

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        try:
            parse_resolution(self.expect_resolution)
        except ValueError as error:
            problems.append(("expect_resolution", str(error)))
        if self.backend == "opencv" and self.frame_format != "rgb24":
            problems.append(("frame_format", f"the opencv backend gives RGB frames only, found "
                                             f"{self.frame_format!r} (use rgb24, or the pyav backend)"))
        return problems


@dataclass
class DetectConfig:
    backend: str = "background"
    # working width of the background detector; frames wider than this are downscaled (never upscaled); 0 = full
    # resolution
    work_width: int = setting(480, min=0)
    options: dict = field(default_factory=dict)  # backend-specific numbers (see the backend's docstring)

    def validate(self) -> list[tuple[str, str]]:
        if 0 < self.work_width < MIN_WORK_WIDTH:
            return [("work_width", f"must be 0 (full resolution) or >= {MIN_WORK_WIDTH}, found {self.work_width}")]
        return []


@dataclass
class TrackConfig:
    backend: str = "bytetrack"
    # ultralytics `cfg/trackers/bytetrack.yaml` defaults
    track_high_thresh: float = setting(0.25, min=0.0, max=1.0)
    track_low_thresh: float = setting(0.1, min=0.0, max=1.0)
    new_track_thresh: float = setting(0.25, min=0.0, max=1.0)
    track_buffer: int = setting(30, min=0)
    match_thresh: float = setting(0.8, min=0.0, max=1.0)
    fuse_score: bool = True
    # ours: a background blob holding two tracked people is replaced by their predicted boxes (track.py)
    split_merged: bool = False
    split_coverage: float = setting(0.6, min=0.0, max=1.0)


@dataclass
class SelectConfig:
    min_frames: int = setting(5, min=1)  # tracks shorter than this are never the subject
    walking_displacement: float = setting(0.25, min=0.0)  # net centre motion, in box heights, that counts as walking
    # or relative box-height change (frontal views walk towards the camera)
    walking_scale_change: float = setting(0.1, min=0.0)
    walking_bonus: float = setting(0.5, min=0.0)
    # the score is multiplied by 1 - centrality_weight x (1 - centrality): above 1 it turns negative
    centrality_weight: float = setting(1.0, min=0.0, max=1.0)
    # a subject box wider than this times the track's median width/height is a passer-by merged into the blob:
    # its centre is interpolated from the neighbouring frames and its width capped (0 disables)
    merged_aspect: float = setting(1.35, min=0.0)
    # frames another track took inside a gap of at most this many frames of the subject's track, overlapping
    # its interpolated box with IoU >= stitch_iou, go back to the subject (0 disables)
    stitch_gap: int = setting(30, min=0)
    stitch_iou: float = setting(0.5, min=0.0, max=1.0)
    # where blobs merge, tracks entering and leaving are re-paired by constant-velocity motion (fitted over this
    # many frames each side) and box size, undoing identity swaps (0 disables)
    relink_window: int = setting(12, min=0)


@dataclass
class SegmentConfig:
    backend: str = "foreground"
    box_padding: float = setting(0.1, min=0.0)  # crop = subject box grown by this fraction on each side
    options: dict = field(default_factory=dict)


@dataclass
class ModelStageConfig:
    backend: str | None = None  # None: stage not configured, skipped with one line
    model: str | None = None  # weights registry name, passed to the backend as `model=`
    options: dict = field(default_factory=dict)


@dataclass
class QualityConfig:
    min_valid_frames: int = setting(10, min=1)  # fewer kept silhouettes -> "too few valid frames"
    # subject-track frames / frames from its first to last frame
    min_track_coverage: float = setting(0.6, min=0.0, max=1.0)
    max_gap_frames: int = setting(30, min=0)  # a longer run of frames without the subject -> "lost track"
    border_margin: int = setting(1, min=0)  # pixels; a mask this close to the image edge is truncated
    max_truncated_fraction: float = setting(0.5, min=0.0, max=1.0)
    drop_truncated_frames: bool = True  # keep truncated frames out of the silhouettes


@dataclass
class VerifyConfig:
    """Person verification (pipelines/verify.py): a person detector on each track's crop decides which tracks
    are people; its numbers also set the quality reasons only verification can give."""

    backend: str | None = None  # "blazepose"; None = the weights-free subject choice
    # False: verification runs when the backend's model files are present, and without them the run goes on
    # weights-free with one line saying so; True: missing files are an error
    required: bool = False
    frames_per_track: int = setting(8, min=1)  # frames of each track the detector looks at, spread over it
    max_tracks: int = setting(12, min=1)  # the longest tracks of a clip are checked, the others are not people
    min_person_fraction: float = setting(0.5, min=0.0, max=1.0)  # sampled frames with a person -> a person track
    # detector score that counts as a person; a person belongs to a track when its hip centre is inside the box
    min_score: float = setting(0.5, min=0.0, max=1.0)
    several_fraction: float = setting(0.5, min=0.0, max=1.0)  # >= 2 people on this fraction -> "several people"
    fragment_cover: float = setting(0.9, min=0.0, max=1.0)  # fragment box area inside the subject person's ROI
    # a mask is fragmented when its largest connected part holds less than this fraction of its pixels ...
    fragment_main_part: float = setting(0.6, min=0.0, max=1.0)
    max_fragmented_fraction: float = setting(0.3, min=0.0, max=1.0)  # ... on more than this fraction of frames
    mask_plates: bool = True  # camera plates leave out the pixels of people the detector finds in the samples
    # per-frame check of the subject's frames (the landmark model on each box): a frame is kept only when the
    # model sees a person (pose flag >= min_pose_flag) whose head and a foot are present (presence >=
    # min_landmark_presence) inside the image, whose person mask and the silhouette overlap by IoU >=
    # min_mask_iou, and whose heights (rows spanned) differ by a factor of at most max_height_ratio (a thin
    # pole joined to the head shrinks the normalised silhouette); fewer than min_whole_frames such frames ->
    # "no whole person". On the 72 synthetic demo sequences IoU < 0.6 drops 3% of frames, < 0.7 12%. Cost: one
    # landmark-model call per checked subject frame (see frame_stride).
    frame_check: bool = True
    # the model looks at every frame_stride-th subject frame, and at every frame between two looked-at frames
    # whose verdicts differ (verify.check_frames), so the edges of the frames with a whole person are those of
    # looking at every frame (1). Measured: 8 keeps the 120-sequence benchmark's figures (IoU 0.918, 120/120,
    # 0 switches) and the kept frames of stride 1 on the four real clips (4 lost one of the worker-zone clip's
    # 27), at 1.16-1.31x stride 4's frames/s (1080p, side by side)
    frame_stride: int = setting(8, min=1)
    min_pose_flag: float = setting(0.5, min=0.0, max=1.0)
    min_landmark_presence: float = setting(0.5, min=0.0, max=1.0)
    min_mask_iou: float = setting(0.6, min=0.0, max=1.0)
    max_height_ratio: float = setting(1.15, min=1.0)
    min_whole_frames: int = setting(10, min=0)


@dataclass
class PipelineConfig:
    name: str = "default"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pose2d: ModelStageConfig = field(default_factory=ModelStageConfig)
    lift3d: ModelStageConfig = field(default_factory=ModelStageConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    silhouette_size: int = setting(64, min=8)  # OpenGait's 64 (or 128); even, see silhouettes.normalise_sequence
    rows_per_shard: int = setting(256, min=1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 (16 hex digits) of the canonical JSON of every field and the ragar-data version (another
        release may extract differently, so its runs do not reuse this one's finished sequences). The `verify`
        section counts only when verification runs (`verify.backend` set)."""
        from ragar_data import __version__

        config = self.to_dict()
        if self.verify.backend is None:  # verification off: the rows are those of a config without the section
            del config["verify"]
        text = json.dumps({"config": config, "version": __version__}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> PipelineConfig:
        """A checked config from `to_dict()` output or a preset's mapping; `source` names it in errors."""
        return build(cls, values, source)

    def validate(self) -> list[tuple[str, str]]:
        problems = backend_problems(self)
        if self.silhouette_size % 2:
            problems.append(("silhouette_size", f"must be even, found {self.silhouette_size}"))
        return problems


def backend_problems(config: PipelineConfig) -> list[tuple[str, str]]:
    """Backend names missing from their stage's table, and pose model names missing from the weights registry.
    The stage modules hold the tables as names or "module:Class" strings, so nothing heavy is imported."""
    from ragar_data import weights
    from ragar_data.pipelines import decode, detect, lift3d, pose2d, segment, track, verify

    tables = {"decode": decode.DECODERS, "detect": detect.DETECTORS, "track": track.TRACKERS,
              "segment": segment.SEGMENTERS, "pose2d": pose2d.POSE_ESTIMATORS, "lift3d": lift3d.LIFTERS,
              "verify": verify.VERIFIERS}
    problems = []
    for stage, table in tables.items():
        name = getattr(config, stage).backend
        if name is not None and name not in table:
            problems.append((f"{stage}.backend", f"unknown backend {name!r}; known: {', '.join(sorted(table))}"))
    registry = None
    for stage, task in (("pose2d", "pose2d"), ("lift3d", "lifter")):
        model = getattr(config, stage).model
        if model is None:
            continue
        registry = registry or weights.load_registry()
        known = sorted(name for name, spec in registry.items() if spec.task == task)
        if model not in known:
            problems.append((f"{stage}.model", f"unknown {task} model {model!r} in {weights.REGISTRY_PATH.name}; "
                                               f"known: {', '.join(known)}"))
    return problems


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if p.stem != "weights")


def load_preset(preset: str | Path = "default") -> PipelineConfig:
    """A preset by name (`pipelines/<name>.yaml`) or by path to a YAML file, checked in full."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(list_presets())} (or a YAML path)")
    return build(PipelineConfig, load_yaml(path), str(path))


def apply_overrides(config: PipelineConfig, overrides: dict | list[str]) -> PipelineConfig:
    """Set fields by dotted name: {"detect.work_width": 320} or ["detect.work_width=320"] (text read as YAML).

    Names inside an `options` dict are free (backend-specific); every other name must exist, and the result is
    checked in full (types, bounds, backend names) before any work starts.
    """
    return typed_config.apply_overrides(config, overrides, "override")


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """'1920x1080' -> (1920, 1080)."""
    if text in (None, "", "none"):
        return None
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"resolution {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if width < 1 or height < 1:
        raise ConfigError(f"resolution {text!r}: width and height must be positive")
    return width, height


def resolve_backend(table: dict, name: str, stage: str):
    """The class a stage's backend table names; dotted-path strings ("module:Class") are imported here, lazily,
    so that model packages are only imported by runs that use them."""
    if name not in table:
        raise ConfigError(f"unknown {stage} backend {name!r}; known: {sorted(table)}")
    target = table[name]
    if isinstance(target, str):
        import importlib

        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            from ragar_data.errors import ModelUnavailable

            raise ModelUnavailable(f"{stage} backend {name!r}: cannot import {module_name}: {error}") from error
        try:
            target = getattr(module, class_name)
        except AttributeError:
            raise ConfigError(f"{stage} backend {name!r}: {module_name} has no {class_name}") from None
    return target
