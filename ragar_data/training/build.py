"""Models from a training config, and models back from checkpoints (for evaluation and prediction).

A checkpoint (written by `ragar_data.training.trainer`) is a dict: ``format``, ``kind`` ("clipgar" |
"classification" | "clip_visual"; registered models are "classification" with ``config.model.name`` set), ``stage`` ("align" |
"fusion" | "classification"), ``iteration``, ``config`` (the full
config as a dict), ``label_names`` (the schema's 45 labels, checked on load), ``model`` (state dict), and for
resuming ``optimizer``, ``scheduler``, ``rng``, ``sampler``. The text features are inside the model state, so
evaluation needs no CLIP weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import RagarDataError
from ragar_data.models.baselines import AttributeClassifier
from ragar_data.models.clipgar import CLIPGAR
from ragar_data.models.deepgaitv2 import DeepGaitV2Encoder
from ragar_data.models.text_encoders import TextFeatures, build_text_features, parse_backend
from ragar_data.training.config import Config, config_from_dict

CHECKPOINT_FORMAT = "ragar-data-checkpoint/1"


def build_visual(config: Config) -> DeepGaitV2Encoder:
    return DeepGaitV2Encoder(config.model.layers, config.model.channels, config.model.parts)


def build_clipgar(config: Config, schema: AttributeSchema, text: TextFeatures | None = None) -> CLIPGAR:
    """CLIP-GAR from the config; without ``text`` the text features are computed (or read from the cache).
    Initial weights depend on ``train.seed`` only, not on what ran before in the process."""
    if text is None:
        text = build_text_features(config.text.backend, schema.sentences(), config.text.weights,
                                   config.text.cache_dir, config.text.dim, config.train.seed)
    m = config.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return CLIPGAR(build_visual(config), text, schema, m.part_similarity, m.fusion_depth, m.fusion_heads,
                       m.fusion_mlp_ratio, m.fusion_dropout)


def build_classifier(config: Config, schema: AttributeSchema) -> AttributeClassifier:
    """The registered model ``model.name`` (`ragar_data.models.registry`), else the classification baseline on
    CLIP-GAR's visual encoder from ``model.layers/channels/parts``."""
    from ragar_data.models.registry import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        if config.model.name:
            options = {"width": config.model.width} if config.model.width != 1.0 else {}
            return create_model(config.model.name, schema=schema, loss=config.model.classification_loss,
                                **scalable_options(config.model.name, options))
        return AttributeClassifier(build_visual(config), schema, config.model.classification_loss)


def scalable_options(name: str, options: dict) -> dict:
    """``options`` minus those the model's constructor does not take (``model.width`` leaves the pose models,
    GaitSet and GaitPart at their upstream size)."""
    import inspect

    from ragar_data.models.registry import model_entry

    accepted = inspect.signature(model_entry(name).constructor).parameters
    return {option: value for option, value in options.items() if option in accepted}


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RagarDataError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files; name the file either way
        raise RagarDataError(f"{path}: cannot read checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise RagarDataError(f"{path}: not a ragar-data checkpoint (expected format {CHECKPOINT_FORMAT})")
    return checkpoint


def check_schema(checkpoint: dict, schema: AttributeSchema, where: str) -> None:
    if checkpoint.get("label_names") != schema.label_names():
        raise RagarDataError(
            f"{where}: the checkpoint was trained with other attribute classes than schemas/attributes.yaml "
            f"(its labels start {checkpoint.get('label_names', [])[:3]})"
        )


def load_model_state(model: torch.nn.Module, state: dict, where: str) -> None:
    """Load a state dict, or raise naming what does not fit (a checkpoint of another architecture)."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    shapes = [f"{name} {tuple(state[name].shape)} (this model: {tuple(value.shape)})"
              for name, value in expected.items()
              if name in state and getattr(state[name], "shape", None) != value.shape]
    if missing or unexpected or shapes:
        found = "; ".join(f"{what} {len(names)}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                          for what, names in (("shapes differ", shapes), ("missing", missing),
                                              ("unexpected", unexpected)) if names)
        raise RagarDataError(f"{where}: the checkpoint's weights do not fit this model's architecture ({found}); "
                             f"was it trained with other model.* settings?")
    model.load_state_dict(state)


def model_from_checkpoint(path: str | Path, schema: AttributeSchema | None = None):
    """(model in eval mode, checkpoint dict, config) from a checkpoint file."""
    schema = schema or default_schema()
    checkpoint = read_checkpoint(path)
    check_schema(checkpoint, schema, str(path))
    lacking = [name for name in ("kind", "stage", "iteration", "config", "model") if name not in checkpoint]
    if lacking:
        raise RagarDataError(f"{path}: the checkpoint lacks {lacking}")
    config = config_from_dict(checkpoint["config"])
    state = checkpoint["model"]
    if checkpoint["kind"] == "clipgar":
        if "text.embeddings" not in state:
            raise RagarDataError(f"{path}: a clipgar checkpoint without text.embeddings")
        learned = parse_backend(config.text.backend)[0] == "learned"
        model = build_clipgar(config, schema, TextFeatures(torch.zeros_like(state["text.embeddings"]), learned))
    elif checkpoint["kind"] == "classification":
        model = build_classifier(config, schema)
    elif checkpoint["kind"] == "clip_visual":
        from ragar_data.models.clip_visual import recogniser_for_state

        model = recogniser_for_state(state, schema)
    else:
        raise RagarDataError(f"{path}: unknown model kind {checkpoint['kind']!r}")
    load_model_state(model, state, str(path))
    return model.eval(), checkpoint, config
