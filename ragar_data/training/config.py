"""Training configuration: dataclasses loaded from YAML, overridden by dotted name (``optim.lr=3e-4``).

The packaged configs live in ``ragar_data/training/configs/`` (``clipgar.yaml`` = the paper's defaults,
``smoke.yaml`` = a tiny CPU run); ``load_config("smoke")`` finds them by name, any other value is a path.
Loading goes through `ragar_data.typed_config`: unknown keys, values of the wrong type and numbers out of their
bounds are `ConfigError`s naming the key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ragar_data import typed_config
from ragar_data.typed_config import ConfigError, build, load_yaml, setting

__all__ = ["ConfigError", "Config", "load_config", "config_from_dict", "parse_overrides", "resolve_config_path"]

CONFIG_DIR = Path(__file__).parent / "configs"
# the choices of the modules that use them (kept here so that loading a config imports no torch)
SAMPLINGS = ("fixed_ordered", "fixed_unordered", "fixed_allordered", "all_ordered")  # ragar_data.loaders
PART_SIMILARITIES = ("mean", "pooled")  # ragar_data.models.clipgar
CLASSIFICATION_LOSSES = ("bce", "ce")  # ragar_data.models.baseline
BCE_WEIGHTINGS = ("plain", "positive_ratio")  # ragar_data.training.stages
SCHEDULERS = ("constant", "cosine")  # ragar_data.training.trainer
AMP_MODES = ("bf16", "none")  # ragar_data.training.trainer
STAGES, PARTS_CHOICES = 4, (1, 2, 4, 8, 16)  # ragar_data.models.deepgaitv2


@dataclass
class DataConfig:
    dataset: str | None = None  # dataset directory (shards + index.json + partition.json)
    split: str = "official"  # protocol for `ragar_data.split.split_dataset`, or a partition JSON path
    frames: int = setting(30, min=1)  # frames sampled per training sequence (paper: 30)
    sampling: str = setting("fixed_ordered", choices=SAMPLINGS)  # OpenGait sampling for training
    max_eval_frames: int = setting(720, min=0)  # OpenGait's frames_all_limit at test (0 = all frames)
    num_workers: int = setting(2, min=0)
    quality_ok_only: bool = True  # leave out sequences that failed the extraction's quality filter
    eval_batch_size: int = setting(8, min=1)
    # random access through memory-mapped Arrow copies of the shards' silhouettes (ragar_data.row_access), built
    # once per shard in row_cache_dir (None = $RAGAR_CACHE_DIR/rows or ~/.cache/ragar-data/rows); false reads
    # each item's row group from its shard
    row_cache: bool = True
    row_cache_dir: str | None = None


@dataclass
class ModelConfig:
    # a registered model (`ragar_data.models.registry`, trained by `ragar-data train MODEL`); empty = CLIP-GAR,
    # or for `train classification` its visual encoder built from layers/channels/parts below
    name: str = ""
    layers: list[int] = setting([1, 2, 2, 1], min=1)  # blocks per stage
    channels: list[int] = setting([64, 128, 256, 512], min=1)  # channels per stage
    parts: int = setting(8, choices=PARTS_CHOICES)  # HPP bins over the 16 rows of the 64x44 input
    # how the p parts enter s(x, π): "mean" of per-part cosines or "pooled"
    part_similarity: str = setting("mean", choices=PART_SIMILARITIES)
    fusion_depth: int = setting(1, min=1)
    fusion_heads: int = setting(8, min=1)
    fusion_mlp_ratio: float = setting(4.0, above=0.0)
    fusion_dropout: float = setting(0.1, min=0.0, below=1.0)
    # head loss of the baseline and the registered models: "bce" over 45 labels or "ce" per attribute
    classification_loss: str = setting("bce", choices=CLASSIFICATION_LOSSES)
    # BCE of the fusion heads and the BCE classifier: "plain" (the paper) or "positive_ratio" (the weighted BCE
    # of the pedestrian-attribute literature, weights from the training labels; an option for small datasets)
    bce_weighting: str = setting("plain", choices=BCE_WEIGHTINGS)
    # channel multiplier of the registered models that take one (DeepGaitV2-*, GaitBase, GaitGL, GAR-Net; the
    # others keep their size): 1.0 = upstream; the CPU benchmark config (table3_cpu.yaml) shrinks them
    width: float = setting(1.0, above=0.0)

    def validate(self) -> list[tuple[str, str]]:
        return [(name, f"expected {STAGES} entries (DeepGaitV2's stages), found {getattr(self, name)}")
                for name in ("layers", "channels") if len(getattr(self, name)) != STAGES]


@dataclass
class TextConfig:
    backend: str = "clip"  # "clip" (open_clip RN50-quickgelu), "open_clip:<model>" or "learned"
    weights: str | None = None  # local weights file; None = $RAGAR_MODELS_DIR/clip-rn50/RN50.pt (~/.cache/ragar-data/models)
    cache_dir: str | None = None  # None = ~/.cache/ragar-data/text_features
    dim: int = setting(1024, min=1)  # embedding size of the "learned" backend (CLIP RN50: 1024)

    def validate(self) -> list[tuple[str, str]]:
        # as ragar_data.models.text_encoders.parse_backend
        if self.backend in ("clip", "learned") or (self.backend.startswith("open_clip:") and
                                                   len(self.backend) > len("open_clip:")):
            return []
        return [("backend", f"expected 'clip', 'open_clip:<model>' or 'learned', found {self.backend!r}")]


@dataclass
class OptimConfig:
    lr: float = setting(1e-4, above=0.0)
    weight_decay: float = setting(2e-5, min=0.0)
    eps: float = setting(1e-6, above=0.0)
    betas: list[float] = setting([0.9, 0.999], min=0.0, below=1.0)  # Adam's, each in [0, 1)
    scheduler: str = setting("constant", choices=SCHEDULERS)  # the paper states none; "cosine" decays to 0
    warmup_iterations: int = setting(0, min=0)

    def validate(self) -> list[tuple[str, str]]:
        if len(self.betas) != 2:
            return [("betas", f"expected two numbers (Adam's beta1, beta2), found {self.betas}")]
        return []


@dataclass
class TrainConfig:
    seed: int = setting(0, min=0)
    batch_size: int = setting(32, min=1)
    align_iterations: int = setting(120_000, min=1)
    fusion_iterations: int = setting(20_000, min=1)
    classification_iterations: int = setting(120_000, min=1)
    checkpoint_every: int = setting(5_000, min=1)
    log_every: int = setting(50, min=1)
    device: str = "auto"  # "auto" = cuda when available
    amp: str = setting("bf16", choices=AMP_MODES)  # "bf16" autocast on CUDA, "none" = fp32 (CPU always runs fp32)
    channels_last: bool = True  # channels-last (3D) memory format on CUDA
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)
    output_dir: str = "runs/clipgar"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextConfig = field(default_factory=TextConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_config_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{name_or_path}.yaml"
    if packaged.is_file():
        return packaged
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a packaged config ({', '.join(names)})")


def parse_overrides(overrides: list[str]) -> dict:
    """``["optim.lr=3e-4", "model.layers=[1,1,1,1]"]`` -> nested dict (values parsed as YAML scalars).
    `load_config` types override text by the field instead (a string field keeps the text as written)."""
    nested: dict = {}
    for dotted, raw in typed_config.parse_overrides(overrides).items():
        parts = dotted.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return nested


def load_config(name_or_path: str | Path | None = "clipgar", overrides: list[str] | None = None) -> Config:
    """A packaged config by name (or a YAML path; None = the built-in defaults) with ``--set`` overrides,
    checked in full: unknown keys, wrong types and values out of bounds are `ConfigError`s naming the key."""
    config = Config()
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        config = build(Config, load_yaml(path), str(path))
    if overrides:
        config = typed_config.apply_overrides(config, overrides, "override")
    return config


def config_from_dict(values: dict) -> Config:
    """The config stored in a checkpoint."""
    return build(Config, values, "checkpoint config")
