"""GaitBase (Fan et al., OpenGait, CVPR 2023) as an attribute recogniser.

Layers as OpenGait's ``opengait/modeling/models/baseline.py`` with its ``ResNet9`` backbone
(``opengait/modeling/backbones/resnet.py``) in ``configs/gaitbase/gaitbase_da_casiab.yaml`` (the 64x44
setting): per frame a bias-free 3x3 convolution to 64 channels + BN + ReLU (no max pool), then one ResNet
basic block per stage with channels [64, 128, 256, 512] and strides [1, 2, 2, 1]; max over frames; horizontal
pooling into 16 parts. Upstream's SeparateFCs + SeparateBNNecks heads are replaced by the attribute head.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model, scaled
from ragar_data.models.blocks import horizontal_pyramid, per_frame, temporal_max
from ragar_data.models.deepgaitv2 import BasicBlock2D
from ragar_data.models.registry import register_model


class GaitBaseEncoder(nn.Module):
    """Silhouettes (B, T, H, W) -> part features (B, channels[-1], parts)."""

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512), strides: Sequence[int] = (1, 2, 2, 1),
                 parts: int = 16):
        super().__init__()
        stem = [nn.Conv2d(1, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
        stages, width = [], channels[0]
        for planes, stride in zip(channels, strides):
            stages.append(BasicBlock2D(width, planes, stride))
            width = planes
        self.frames = nn.Sequential(*stem, *stages)
        self.out_channels, self.parts = channels[-1], parts

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        maps = temporal_max(per_frame(self.frames, silhouettes.unsqueeze(1)), lengths)
        return horizontal_pyramid(maps, (self.parts,))


@register_model
def gaitbase(schema=None, loss: str = "bce", width: float = 1.0):
    """GaitBase on silhouettes (B, T, 64, 44); ``width`` scales its channels (1.0 = upstream)."""
    return attribute_model(GaitBaseEncoder(scaled((64, 128, 256, 512), width)), schema, loss)
