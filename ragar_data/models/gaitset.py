"""GaitSet (Chao et al., AAAI 2019) as an attribute recogniser: the set-pooling backbone with the attribute head.

Layers as OpenGait's ``opengait/modeling/models/gaitset.py`` with ``configs/gaitset/gaitset.yaml``
(in_channels [1, 32, 64, 128], bin_num [16, 8, 4, 2, 1]); our own code:
- three per-frame blocks of two bias-free convolutions (5x5 then 3x3 in the first, 3x3 after) with LeakyReLU,
  the first two ending in a 2x2 max pool;
- a "global" branch: the set pooling (max over frames) of block 1's output goes through copies of blocks 2
  and 3, and the set pooling of blocks 2 and 3 is added after each;
- horizontal pyramid pooling of the set-pooled block-3 maps and of the global branch: 2 x 31 = 62 parts of
  128 channels. Upstream's SeparateFCs (62 x 128 x 256) head is replaced by the attribute head.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model
from ragar_data.models.blocks import basic_conv2d, horizontal_pyramid, per_frame, temporal_max
from ragar_data.models.registry import register_model


def _conv_pair(in_channels: int, channels: int, first_kernel: int, pool: bool) -> nn.Sequential:
    layers = [basic_conv2d(in_channels, channels, first_kernel), nn.LeakyReLU(inplace=True),
              basic_conv2d(channels, channels, 3), nn.LeakyReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class GaitSetEncoder(nn.Module):
    """Silhouettes (B, T, H, W) -> part features (B, channels[-1], 2 * sum(bins))."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128), bins: Sequence[int] = (16, 8, 4, 2, 1)):
        super().__init__()
        first, second, third = channels
        self.bins = tuple(bins)
        self.set_block1 = _conv_pair(1, first, 5, pool=True)
        self.set_block2 = _conv_pair(first, second, 3, pool=True)
        self.set_block3 = _conv_pair(second, third, 3, pool=False)
        self.global_block2 = _conv_pair(first, second, 3, pool=True)
        self.global_block3 = _conv_pair(second, third, 3, pool=False)
        self.out_channels = third
        self.parts = 2 * sum(self.bins)

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        clips = per_frame(self.set_block1, silhouettes.unsqueeze(1))
        global_maps = self.global_block2(temporal_max(clips, lengths))
        clips = per_frame(self.set_block2, clips)
        global_maps = self.global_block3(global_maps + temporal_max(clips, lengths))
        pooled = temporal_max(per_frame(self.set_block3, clips), lengths)
        global_maps = global_maps + pooled
        return torch.cat([horizontal_pyramid(pooled, self.bins), horizontal_pyramid(global_maps, self.bins)], -1)


@register_model
def gaitset(schema=None, loss: str = "bce"):
    """GaitSet on silhouettes (B, T, 64, 44)."""
    return attribute_model(GaitSetEncoder(), schema, loss)
