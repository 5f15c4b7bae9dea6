"""OpenGait's identity heads on a shared backbone, and each model's upstream training settings.

An `IdentityModel` is a registered attribute baseline's backbone (``create_model(name).visual``, so the layers
are the ones ``ragar_data.models`` defines) with upstream's identity heads instead of the attribute head:
- ``SeparateFCs``: one linear map per part, (n, c, p) -> (n, e, p); its output is the embedding that the
  triplet loss trains and that evaluation compares (upstream's ``embed_1`` / ``inference_feat``);
- ``bnneck`` (GaitBase, DeepGaitV2; upstream's ``SeparateBNNecks``): BatchNorm over all parts, then cosine
  logits (feature and class weights L2-normalised per part), cross-entropy at scale 16;
- ``bn_fc`` (GaitGL): BatchNorm, then one plain linear map per part to the classes, cross-entropy at scale 1;
- ``none`` (GaitSet, GaitPart): triplet loss only.
Settings from OpenGait's configs (configs/gaitset, gaitpart, gaitgl, gaitbase, deepgaitv2): embedding widths,
loss weights, optimisers and learning rates. Upstream trains 60,000-80,000 iterations with P x K = 8 x 16,
8 x 8 or 32 x 4 on GPUs; the CPU schedule is chosen by `IdentityTrainConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ragar_data.errors import InputError


@dataclass(frozen=True)
class IdentitySetup:
    embedding: int
    head: str  # "none" | "bnneck" | "bn_fc"
    ce_weight: float
    ce_scale: float
    optimizer: str  # "adam" | "sgd"
    lr: float
    weight_decay: float


IDENTITY_SETUPS = {
    "gaitset": IdentitySetup(256, "none", 0.0, 1.0, "adam", 1e-4, 0.0),
    "gaitpart": IdentitySetup(128, "none", 0.0, 1.0, "adam", 1e-4, 0.0),
    "gaitgl": IdentitySetup(128, "bn_fc", 1.0, 1.0, "adam", 1e-4, 5e-4),
    "gaitbase": IdentitySetup(256, "bnneck", 1.0, 16.0, "sgd", 0.1, 5e-4),
    "deepgaitv2_p3d": IdentitySetup(256, "bnneck", 1.0, 16.0, "sgd", 0.1, 5e-4),
}
WIDE_MODELS = ("gaitbase", "deepgaitv2_p3d")  # 512 channels; the others have 128
# Table 7's names for the registry's models
PAPER_NAMES = {"gaitset": "GaitSet", "gaitpart": "GaitPart", "gaitgl": "GaitGL", "gaitbase": "GaitBase",
               "deepgaitv2_p3d": "DeepGaitV2-P3D"}


def identity_setup(name: str) -> IdentitySetup:
    if name not in IDENTITY_SETUPS:
        raise InputError(f"no identity setup for model {name!r}; Table 7's models: {', '.join(IDENTITY_SETUPS)}")
    return IDENTITY_SETUPS[name]


class SeparateFCs(nn.Module):
    """One bias-free linear map per part: (n, c, p) -> (n, out, p)."""

    def __init__(self, parts: int, in_channels: int, out_channels: int, normalise: bool = False):
        super().__init__()
        self.normalise = normalise
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(parts, in_channels, out_channels)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weight = F.normalize(self.weight, dim=1) if self.normalise else self.weight
        if self.normalise:
            features = F.normalize(features, dim=1)
        return torch.einsum("ncp,pco->nop", features, weight)


class IdentityModel(nn.Module):
    """Backbone + embedding (+ classifier): forward returns (embeddings (n, e, p), logits (n, classes, p) or None)."""

    def __init__(self, visual: nn.Module, setup: IdentitySetup, identities: int):
        super().__init__()
        if setup.head not in ("none", "bnneck", "bn_fc"):
            raise InputError(f"unknown identity head {setup.head!r}")
        self.visual, self.head = visual, setup.head
        parts = visual.parts
        self.embed = SeparateFCs(parts, visual.out_channels, setup.embedding)
        if setup.head != "none":
            self.neck = nn.BatchNorm1d(setup.embedding * parts)
            self.classifier = SeparateFCs(parts, setup.embedding, identities, normalise=setup.head == "bnneck")

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None):
        embeddings = self.embed(self.visual(silhouettes, lengths))
        if self.head == "none":
            return embeddings, None
        normed = self.neck(embeddings.flatten(1)).reshape(embeddings.shape)
        return embeddings, self.classifier(normed)


def _narrowed_backbone(name: str, divisor: int) -> nn.Module:
    """GaitBase's or DeepGaitV2-P3D's backbone class (from its model file) with channels [64, 128, 256, 512]
    divided by ``divisor``: the two 512-channel models cost 4-15 times a 128-channel one per frame on a CPU."""
    from ragar_data.models.deepgaitv2 import DeepGaitV2Encoder
    from ragar_data.models.gaitbase import GaitBaseEncoder

    channels = tuple(c // divisor for c in (64, 128, 256, 512))
    if name == "gaitbase":
        return GaitBaseEncoder(channels=channels)
    if name == "deepgaitv2_p3d":  # the registry's layers [1, 2, 2, 1] and 16 parts
        return DeepGaitV2Encoder((1, 2, 2, 1), channels, parts=16, mode="p3d")
    raise InputError(f"a channel divisor applies to the 512-channel models (gaitbase, deepgaitv2_p3d); {name} keeps "
                     "its upstream width")


def build_identity_model(name: str, identities: int, channel_divisor: int = 1) -> IdentityModel:
    """The registered model ``name``'s backbone with its upstream identity heads for ``identities`` classes;
    ``channel_divisor`` > 1 narrows GaitBase and DeepGaitV2-P3D (a CPU scale-down) and leaves the others."""
    from ragar_data.models.registry import create_model, model_entry

    if model_entry(name).input_field != "silhouettes":
        raise InputError(f"model {name!r} reads {model_entry(name).input_field}; identity training reads silhouettes")
    if channel_divisor not in (1, 2, 4, 8):
        raise InputError(f"channel divisor must be 1, 2, 4 or 8, got {channel_divisor}")
    if channel_divisor > 1 and name in WIDE_MODELS:
        visual = _narrowed_backbone(name, channel_divisor)
    else:
        visual = create_model(name).visual
    return IdentityModel(visual, identity_setup(name), identities)
