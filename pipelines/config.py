"""Extraction presets: dataclasses loaded from `pipelines/<preset>.yaml`, CLI overrides by dotted name, config hash.

A preset only chooses backends and numbers. The hash covers everything that changes the extracted rows (backends,
their options, thresholds) and nothing that only changes how the run is executed (workers, engine, batch size,
device): a rerun with another `--workers` still skips finished sequences.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ragar_data.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent


@dataclass
class DecodeConfig:
    backend: str = "pyav"  # "pyav" (threaded) or "opencv"
    threads: int = 0  # decoder threads, 0 = library default (all cores)
    # "rgb24" (swscale RGB frames) or "yuv420p" (the decoder's planes kept, RGB made only for the reduced copy and
    # the regions stages read; pyav backend only)
    frame_format: str = "rgb24"
    expect_resolution: str | None = None  # "1920x1080": other sizes fail with a clear error
    queue_frames: int = 16  # frames buffered between the decode thread and the pipeline


@dataclass
class DetectConfig:
    backend: str = "background"
    # working width of the background detector; frames wider than this are downscaled (never upscaled)
    work_width: int = 480
    options: dict = field(default_factory=dict)  # backend-specific numbers (see the backend's docstring)


@dataclass
class TrackConfig:
    backend: str = "bytetrack"
    # ultralytics `cfg/trackers/bytetrack.yaml` defaults
    track_high_thresh: float = 0.25
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.25
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    # ours: a background blob holding two tracked people is replaced by their predicted boxes (track.py)
    split_merged: bool = False
    split_coverage: float = 0.6


@dataclass
class SelectConfig:
    min_frames: int = 5  # tracks shorter than this are never the subject
    walking_displacement: float = 0.25  # net centre motion, in box heights, that counts as walking
    walking_scale_change: float = 0.1  # or relative box-height change (frontal views walk towards the camera)
    walking_bonus: float = 0.5
    centrality_weight: float = 1.0
    # a subject box wider than this times the track's median width/height is a passer-by merged into the blob:
    # its centre is interpolated from the neighbouring frames and its width capped (0 disables)
    merged_aspect: float = 1.35
    # frames another track took inside a gap of at most this many frames of the subject's track, overlapping
    # its interpolated box with IoU >= stitch_iou, go back to the subject (0 disables)
    stitch_gap: int = 30
    stitch_iou: float = 0.5
    # where blobs merge, tracks entering and leaving are re-paired by constant-velocity motion (fitted over this
    # many frames each side) and box size, undoing identity swaps (0 disables)
    relink_window: int = 12


@dataclass
class SegmentConfig:
    backend: str = "foreground"
    box_padding: float = 0.1  # crop = subject box grown by this fraction on each side
    options: dict = field(default_factory=dict)


@dataclass
class ModelStageConfig:
    backend: str | None = None  # None: stage not configured, skipped with one line
    model: str | None = None  # weights registry name, passed to the backend as `model=`
    options: dict = field(default_factory=dict)


@dataclass
class QualityConfig:
    min_valid_frames: int = 10  # fewer kept silhouettes -> "too few valid frames"
    min_track_coverage: float = 0.6  # subject-track frames / frames from its first to last frame
    max_gap_frames: int = 30  # a longer run of frames without the subject -> "lost track"
    border_margin: int = 1  # pixels; a mask this close to the image edge is truncated
    max_truncated_fraction: float = 0.5
    drop_truncated_frames: bool = True  # keep truncated frames out of the silhouettes


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
    silhouette_size: int = 64
    rows_per_shard: int = 256

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 (16 hex digits) of the canonical JSON of every field and the ragar-data version (another
        release may extract differently, so its runs do not reuse this one's finished sequences)."""
        from ragar_data import __version__

        text = json.dumps({"config": self.to_dict(), "version": __version__}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, found {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if p.stem != "weights")


def load_preset(preset: str | Path = "default") -> PipelineConfig:
    """A preset by name (`pipelines/<name>.yaml`) or by path to a YAML file."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(list_presets())} (or a YAML path)")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read preset: {error}") from error
    return _build(PipelineConfig, values, str(path))


def _parse_value(text: str):
    """YAML scalar parsing, so `--set detect.work_width=320` gives an int and `pose2d.backend=null` None."""
    return yaml.safe_load(text)


def apply_overrides(config: PipelineConfig, overrides: dict | list[str]) -> PipelineConfig:
    """Set fields by dotted name: {"detect.work_width": 320} or ["detect.work_width=320"].

    Names inside an `options` dict are free (backend-specific); every other name must exist.
    """
    if isinstance(overrides, (list, tuple)):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected NAME=VALUE, e.g. detect.work_width=320")
            name, value = item.split("=", 1)
            pairs[name.strip()] = _parse_value(value)
        overrides = pairs
    values = config.to_dict()
    for dotted, value in overrides.items():
        target = values
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(target.get(part), dict):
                raise ConfigError(f"override {dotted!r}: {'.'.join(parts[:depth + 1])} is not a section")
            target = target[part]
        in_options = len(parts) >= 2 and parts[-2] == "options"
        if parts[-1] not in target and not in_options:
            raise ConfigError(f"override {dotted!r}: no field {parts[-1]!r}; known: {sorted(target)}")
        target[parts[-1]] = value
    return _build(PipelineConfig, values, "overrides")


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """'1920x1080' -> (1920, 1080)."""
    if text in (None, "", "none"):
        return None
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"resolution {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
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
