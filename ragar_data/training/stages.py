"""The training stages of CLIP-GAR (align, then fusion) and of the classification baseline, and the runs
that chain them over a dataset's training subjects.

Run directory layout: ``<output_dir>/align/{last,final}.pt``, ``<output_dir>/fusion/...``,
``<output_dir>/classification/...``, each with a ``tensorboard/`` folder; ``<output_dir>/partition.json`` records
the partition the run trained on (the dataset folder is never written).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import RagarDataError
from ragar_data.models.baselines import AttributeClassifier
from ragar_data.models.clipgar import CLIPGAR
from ragar_data.models.deepgaitv2 import parameter_count, upstream_backbone_parameter_count
from ragar_data.models.losses import (align_kl_loss, attribute_cross_entropy, masked_bce_loss,
                                      positive_ratio_weights)
from ragar_data.models.text_encoders import file_sha256
from ragar_data.training.build import (build_classifier, build_clipgar, check_schema, load_model_state,
                                      read_checkpoint)
from ragar_data.training.config import Config
from ragar_data.training.data import model_input, record_partition, resolve_partition, side_keys, silhouette_dataset
from ragar_data.training.trainer import StageResult, train_stage

STAGES = ("align", "fusion")


def _freeze(module: nn.Module, trainable: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)


@dataclass
class AlignTask:
    """V and θ (and τ) trained with L_a; learned text embeddings train too, pretrained text stays frozen."""

    model: CLIPGAR
    kind: str = "clipgar"
    stage: str = "align"

    def prepare(self) -> None:
        _freeze(self.model, False)
        _freeze(self.model.visual, True)
        _freeze(self.model.align_head, True)
        _freeze(self.model.text, self.model.text.learned)
        self.model.train()

    def loss(self, model: nn.Module, batch: dict):
        similarity = model(batch["silhouettes"], stage="align")
        head = self.model.align_head
        loss = align_kl_loss(similarity, head.scale(), batch["labels"], self.model.schema)
        return loss, {"logit_scale": float(head.scale().detach())}


@dataclass
class FusionTask:
    """φ, the embeddings, the transformer and the 45 heads trained with BCE; V and T frozen (V in eval mode)."""

    model: CLIPGAR
    kind: str = "clipgar"
    stage: str = "fusion"
    label_weights: tuple | None = None  # (positive (45,), negative (45,)) BCE weights; None = plain BCE

    def prepare(self) -> None:
        _freeze(self.model, False)
        _freeze(self.model.fusion_head, True)
        self.model.train()
        self.model.visual.eval()  # frozen V keeps its batch-norm statistics from the align stage

    def loss(self, model: nn.Module, batch: dict):
        logits = model(batch["silhouettes"], stage="fusion")
        return masked_bce_loss(logits, batch["one_hot"], batch["labels"], self.model.schema,
                               self.label_weights), {}


@dataclass
class ClassificationTask:
    model: AttributeClassifier
    kind: str = "classification"
    stage: str = "classification"
    label_weights: tuple | None = None  # as FusionTask's, for the BCE head

    def prepare(self) -> None:
        _freeze(self.model, True)
        self.model.train()

    def loss(self, model: nn.Module, batch: dict):
        logits = model(batch[self.model.input_field])
        schema = self.model.schema
        if self.model.loss == "ce":
            return attribute_cross_entropy(logits, batch["labels"], schema), {}
        return masked_bce_loss(logits, batch["one_hot"], batch["labels"], schema, self.label_weights), {}


def describe(config: Config) -> str:
    """The dry-run summary: the visual encoder's parameter count against OpenGait's backbone arithmetic (for a
    registered model: its input and its backbone's and head's parameter counts)."""
    from ragar_data.training.build import build_visual

    if config.model.name:
        return describe_registered(config)
    visual = build_visual(config)
    ours = parameter_count(visual)
    upstream = upstream_backbone_parameter_count(config.model.layers, config.model.channels)
    verdict = "equal" if ours == upstream else "DIFFERENT"
    return (
        f"visual encoder V (DeepGaitV2-3D-like, layers {config.model.layers}, channels {config.model.channels}, "
        f"{config.model.parts} parts): {ours:,} parameters\n"
        f"OpenGait DeepGaitV2 backbone (mode 3d, same layers/channels, without its FCs/BNNecks heads): "
        f"{upstream:,} parameters -> {verdict}\n"
        f"text backend: {config.text.backend}; batch {config.train.batch_size}; align {config.train.align_iterations} "
        f"it, fusion {config.train.fusion_iterations} it; Adam lr {config.optim.lr} wd {config.optim.weight_decay} "
        f"eps {config.optim.eps} betas {tuple(config.optim.betas)}"
    )


def describe_registered(config: Config) -> str:
    from ragar_data.training.build import build_classifier

    model = build_classifier(config, default_schema())
    backbone = parameter_count(model.visual)
    return (
        f"model {config.model.name} (input {model.input_field}): backbone {backbone:,} parameters, attribute head "
        f"{parameter_count(model) - backbone:,} ({config.model.classification_loss} loss)\n"
        f"batch {config.train.batch_size}; {config.train.classification_iterations} it; frames {config.data.frames}; "
        f"Adam lr {config.optim.lr} wd {config.optim.weight_decay} eps {config.optim.eps} "
        f"betas {tuple(config.optim.betas)}"
    )


def training_dataset(config: Config, resume: bool = True):
    """The training side of the dataset's partition; the partition is recorded in the run directory."""
    if not config.data.dataset:
        raise RagarDataError("no dataset given: pass --dataset DIR (or set data.dataset)")
    partition = resolve_partition(config.data.dataset, config.data.split)
    record_partition(partition, config.train.output_dir, resume)
    keys = side_keys(config.data.dataset, partition, "train", config.data.quality_ok_only, model_input(config))
    return silhouette_dataset(config.data.dataset, keys, config, train=True, seed=config.train.seed)


BCE_WEIGHTINGS = ("plain", "positive_ratio")


def bce_label_weights(config: Config, dataset, schema: AttributeSchema):
    """None for the paper's plain BCE, else (positive, negative) weights from the training set's labels."""
    weighting = config.model.bce_weighting
    if weighting not in BCE_WEIGHTINGS:
        raise RagarDataError(f"model.bce_weighting: expected one of {list(BCE_WEIGHTINGS)}, got {weighting!r}")
    if weighting == "plain":
        return None
    return positive_ratio_weights(dataset.one_hot, dataset.labels, schema)


def load_weights(model: nn.Module, checkpoint_path: Path, schema: AttributeSchema) -> None:
    checkpoint = read_checkpoint(checkpoint_path)
    check_schema(checkpoint, schema, str(checkpoint_path))
    load_model_state(model, checkpoint["model"], str(checkpoint_path))


def train_clipgar(config: Config, stages=STAGES, dataset=None, resume: bool = True,
                  schema: AttributeSchema | None = None, progress: bool = True) -> dict[str, StageResult]:
    """Align then fusion (or one of them). Fusion starts from ``<output_dir>/align/final.pt``."""
    schema = schema or default_schema()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise RagarDataError(f"unknown stage(s) {unknown}; expected {list(STAGES)}")
    dataset = dataset if dataset is not None else training_dataset(config, resume)
    run_dir = Path(config.train.output_dir)
    model = build_clipgar(config, schema)
    results = {}
    if "align" in stages:
        results["align"] = train_stage(AlignTask(model), dataset, config, run_dir / "align",
                                       config.train.align_iterations, schema.label_names(), resume,
                                       progress=progress)
    if "fusion" in stages:
        align_final = run_dir / "align" / "final.pt"
        if not align_final.is_file():
            raise RagarDataError(f"fusion needs the align stage's final checkpoint {align_final}: run --stage align first")
        load_weights(model, align_final, schema)
        task = FusionTask(model, label_weights=bce_label_weights(config, dataset, schema))
        # a fusion last.pt continues only from the align weights it started from (not a retrained align stage)
        origin = f"align/final.pt sha256 {file_sha256(align_final)[:16]}"
        results["fusion"] = train_stage(task, dataset, config, run_dir / "fusion",
                                        config.train.fusion_iterations, schema.label_names(), resume,
                                        progress=progress, origin=origin)
    return results


def train_classification(config: Config, dataset=None, resume: bool = True,
                         schema: AttributeSchema | None = None, progress: bool = True) -> StageResult:
    schema = schema or default_schema()
    dataset = dataset if dataset is not None else training_dataset(config, resume)
    model = build_classifier(config, schema)
    task = ClassificationTask(model, label_weights=bce_label_weights(config, dataset, schema))
    return train_stage(task, dataset, config, Path(config.train.output_dir) / "classification",
                       config.train.classification_iterations, schema.label_names(), resume, progress=progress)


def train_clip_visual(config: Config, weights: str | Path, fine_tune: bool, dataset=None, resume: bool = True,
                      schema: AttributeSchema | None = None, progress: bool = True) -> StageResult:
    """CLIP's image encoder as a recogniser (`ragar_data.models.clip_visual`) in ``<output_dir>/clip_zero_shot``
    (no training: the pretrained model's checkpoint at iteration 0) or ``<output_dir>/clip_fine_tuned``
    (``train.classification_iterations`` at the config's lr; the paper fine-tunes at 5e-5)."""
    from ragar_data.models.clip_visual import KIND, pretrained_recogniser

    schema = schema or default_schema()
    model = pretrained_recogniser(weights, schema)
    stage_dir = Path(config.train.output_dir) / ("clip_fine_tuned" if fine_tune else "clip_zero_shot")
    if not fine_tune:
        # a zero-iteration stage writes the untouched pretrained weights as a checkpoint evaluation can read
        return train_stage(ClassificationTask(model, kind=KIND), None, config, stage_dir, 0,
                           schema.label_names(), resume, progress=False)
    dataset = dataset if dataset is not None else training_dataset(config, resume)
    return train_stage(ClassificationTask(model, kind=KIND), dataset, config, stage_dir,
                       config.train.classification_iterations, schema.label_names(), resume, progress=progress,
                       origin=f"{Path(weights).name} sha256 {file_sha256(Path(weights))[:16]}")


@torch.no_grad()
def scores_of(model: nn.Module, stage: str, silhouettes: torch.Tensor, lengths: torch.Tensor | None,
              schema: AttributeSchema) -> tuple[torch.Tensor, str]:
    """(B, 45) scores in [0, 1] and the metrics mode: sigmoid scores for BCE heads, per-attribute softmax
    probabilities (decided by argmax) for the align stage and the CE classifier."""
    from ragar_data.models.scores import block_softmax

    if stage == "align":
        head = model.align_head
        return block_softmax(model(silhouettes, lengths, stage="align") * head.scale(), schema), "argmax"
    if stage == "fusion":
        return torch.sigmoid(model(silhouettes, lengths, stage="fusion")), "sigmoid"
    logits = model(silhouettes, lengths)
    if model.loss == "ce":
        return block_softmax(logits, schema), "argmax"
    return torch.sigmoid(logits), "sigmoid"
