"""Training configuration: dataclasses loaded from YAML, overridden by dotted name (``optim.lr=3e-4``).

The packaged configs live in ``ragar_data/training/configs/`` (``clipgar.yaml`` = the paper's defaults,
``smoke.yaml`` = a tiny CPU run); ``load_config("smoke")`` finds them by name, any other value is a path.
Unknown keys and values of the wrong type are errors naming the key.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from ragar_data.errors import RagarDataError

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(RagarDataError):
    """A training config file or override is malformed."""


@dataclass
class DataConfig:
    dataset: str | None = None  # dataset directory (shards + index.json + partition.json)
    split: str = "official"  # protocol for `ragar_data.split.split_dataset`, or a partition JSON path
    frames: int = 30  # frames sampled per training sequence (paper: 30)
    sampling: str = "fixed_ordered"  # OpenGait sampling for training
    max_eval_frames: int = 720  # OpenGait's frames_all_limit at test
    num_workers: int = 2
    quality_ok_only: bool = True  # leave out sequences that failed the extraction's quality filter
    eval_batch_size: int = 8
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
    layers: list[int] = field(default_factory=lambda: [1, 2, 2, 1])
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    parts: int = 8
    part_similarity: str = "mean"  # how the p parts enter s(x, π): "mean" of per-part cosines or "pooled"
    fusion_depth: int = 1
    fusion_heads: int = 8
    fusion_mlp_ratio: float = 4.0
    fusion_dropout: float = 0.1
    # head loss of the baseline and the registered models: "bce" over 45 labels or "ce" per attribute
    classification_loss: str = "bce"
    # BCE of the fusion heads and the BCE classifier: "plain" (the paper) or "positive_ratio" (the weighted BCE
    # of the pedestrian-attribute literature, weights from the training labels; an option for small datasets)
    bce_weighting: str = "plain"


@dataclass
class TextConfig:
    backend: str = "clip"  # "clip" (open_clip RN50-quickgelu), "open_clip:<model>" or "learned"
    weights: str | None = None  # local weights file; None = $RAGAR_MODELS_DIR/clip-rn50/RN50.pt (~/.cache/ragar-data/models)
    cache_dir: str | None = None  # None = ~/.cache/ragar-data/text_features
    dim: int = 1024  # embedding size of the "learned" backend (CLIP RN50: 1024)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 2e-5
    eps: float = 1e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    scheduler: str = "constant"  # the paper states none; "cosine" decays to 0 over the stage
    warmup_iterations: int = 0


@dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 32
    align_iterations: int = 120_000
    fusion_iterations: int = 20_000
    classification_iterations: int = 120_000
    checkpoint_every: int = 5_000
    log_every: int = 50
    device: str = "auto"  # "auto" = cuda when available
    amp: str = "bf16"  # "bf16" autocast on CUDA, "none" = fp32 (CPU always runs fp32)
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


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    text = str(annotation)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{where}: null is not allowed (expected {text})")
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int or annotation is float:
        try:
            number = annotation(value) if not isinstance(value, str) else annotation(float(value))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if annotation is int and isinstance(value, (float, str)) and float(value) != number:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if annotation is float and not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if text.startswith("list["):
        if isinstance(value, str):
            value = yaml.safe_load(value if value.startswith("[") else f"[{value}]")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = int if "int" in text else float
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    return str(value)


def _apply(section: Any, values: dict, where: str) -> None:
    hints = get_type_hints(type(section))
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(hints)
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
        current = getattr(section, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(section, key, _coerce(value, hints[key], f"{where}.{key}"))


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
    """``["optim.lr=3e-4", "model.layers=[1,1,1,1]"]`` -> nested dict (values parsed as YAML scalars)."""
    nested: dict = {}
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
        dotted, raw = override.split("=", 1)
        parts = dotted.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return nested


def load_config(name_or_path: str | Path | None = "clipgar", overrides: list[str] | None = None) -> Config:
    config = Config()
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: cannot read config: {error}") from error
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        _apply(config, document, str(path))
    if overrides:
        _apply(config, parse_overrides(overrides), "override")
    return config


def config_from_dict(values: dict) -> Config:
    config = Config()
    _apply(config, values, "checkpoint config")
    return config
