"""GaitGL (Lin et al., ICCV 2021) as an attribute recogniser: global-local 3D convolutions with the attribute
head.

Layers as OpenGait's ``opengait/modeling/models/gaitgl.py`` in its CASIA-B branch (``configs/gaitgl/gaitgl.yaml``,
channels [32, 64, 128], the 64x44 setting; the OUMVLP/GREW branch is deeper); our own code:
- a bias-free 3x3x3 Conv3d (1 -> 32) + LeakyReLU; local temporal aggregation: Conv3d (3, 1, 1) with temporal
  stride 3 + LeakyReLU (so a sequence of T frames becomes T // 3 steps; fewer than 3 frames are repeated
  first, as upstream);
- GLConv blocks (a global 3x3x3 convolution plus the same convolution on 8 horizontal strips separately):
  32 -> 64, a (1, 2, 2) max pool, 64 -> 128, 128 -> 128; the last joins the two branches along the height
  instead of adding them, doubling it;
- max over time, then generalised-mean pooling (learned p, initially 6.5) into 64 parts of 128 channels.
Upstream's SeparateFCs (64 x 128 x 128), BN and SeparateFCs to the identities are replaced by the attribute head.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ragar_data.models.baselines import attribute_model, scaled
from ragar_data.models.blocks import strip_convolution, temporal_max
from ragar_data.models.registry import register_model

TEMPORAL_STRIDE = 3


class GLConv(nn.Module):
    """Global + local (per horizontal strip) 3x3x3 convolutions; outputs added, or stacked along the height
    with ``stack_height``."""

    def __init__(self, in_channels: int, channels: int, halving: int, stack_height: bool = False):
        super().__init__()
        self.halving, self.stack_height = halving, stack_height
        self.global_conv = nn.Conv3d(in_channels, channels, 3, 1, 1, bias=False)
        self.local_conv = nn.Conv3d(in_channels, channels, 3, 1, 1, bias=False)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        global_features = self.global_conv(clips)
        local_features = strip_convolution(self.local_conv, clips, self.halving, height_dim=3)
        if self.stack_height:
            return F.leaky_relu(torch.cat([global_features, local_features], dim=3))
        return F.leaky_relu(global_features) + F.leaky_relu(local_features)


class GeMPooling(nn.Module):
    """Generalised-mean pooling of ``parts`` equal strips (row-major, as upstream's GeMHPP); p is learned."""

    def __init__(self, parts: int = 64, p: float = 6.5, eps: float = 1e-6):
        super().__init__()
        self.parts, self.eps = parts, eps
        self.p = nn.Parameter(torch.ones(1) * p)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        strips = feature_map.reshape(*feature_map.shape[:2], self.parts, -1)
        return strips.clamp(min=self.eps).pow(self.p).mean(-1).pow(1.0 / self.p)


class GaitGLEncoder(nn.Module):
    """Silhouettes (B, T, H, W) -> part features (B, 128, 64)."""

    def __init__(self, channels=(32, 64, 128), parts: int = 64):
        super().__init__()
        first, second, third = channels
        self.stem = nn.Sequential(nn.Conv3d(1, first, 3, 1, 1, bias=False), nn.LeakyReLU(inplace=True))
        self.temporal_aggregation = nn.Sequential(
            nn.Conv3d(first, first, (TEMPORAL_STRIDE, 1, 1), (TEMPORAL_STRIDE, 1, 1), bias=False),
            nn.LeakyReLU(inplace=True))
        self.block0 = GLConv(first, second, halving=3)
        self.pool0 = nn.MaxPool3d((1, 2, 2), (1, 2, 2))
        self.block1 = GLConv(second, third, halving=3)
        self.block2 = GLConv(third, third, halving=3, stack_height=True)
        self.pooling = GeMPooling(parts)
        self.out_channels, self.parts = third, parts

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        clips = silhouettes.unsqueeze(1)
        frames = clips.shape[2]
        if frames < TEMPORAL_STRIDE:  # as upstream: 1 frame -> 3, 2 frames -> 4
            repeats = 3 if frames == 1 else 2
            clips = clips.repeat(1, 1, repeats, 1, 1)
            lengths = None if lengths is None else lengths * repeats
        clips = self.temporal_aggregation(self.stem(clips))
        clips = self.block2(self.block1(self.pool0(self.block0(clips))))
        if lengths is not None:
            lengths = (lengths // TEMPORAL_STRIDE).clamp(min=1)
        return self.pooling(temporal_max(clips, lengths))


@register_model
def gaitgl(schema=None, loss: str = "bce", width: float = 1.0):
    """GaitGL on silhouettes (B, T, 64, 44); ``width`` scales its channels (1.0 = upstream)."""
    return attribute_model(GaitGLEncoder(scaled((32, 64, 128), width)), schema, loss)
