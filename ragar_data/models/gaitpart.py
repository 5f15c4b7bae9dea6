"""GaitPart (Fan et al., CVPR 2020) as an attribute recogniser: focal convolutions and the micro-motion
temporal aggregator, with the attribute head.

Layers as OpenGait's ``opengait/modeling/models/gaitpart.py`` with its ``Plain`` backbone
(``opengait/modeling/backbones/plain.py``) in ``configs/gaitpart/gaitpart.yaml``; our own code:
- per frame: BC-32 (5x5), BC-32, max pool, FC-64-2, FC-64-2, max pool, FC-128-3, FC-128-3 (bias-free
  convolutions each followed by LeakyReLU; FC-c-h = convolution on 2**h horizontal strips separately);
- per frame horizontal pooling into 16 parts, then the temporal feature aggregator: two micro-motion
  branches per part (1D convolutions over time with 4x channel squeeze giving sigmoid weights for a
  3-frame resp. 5-frame mean + max template), their sum max-pooled over frames.
Upstream keeps 16 separate 1D convolution stacks per branch; here each branch is one grouped convolution
with a group per part, the same parameters and arithmetic. Upstream's SeparateFCs head is replaced by the
attribute head. The temporal convolutions see zero-padded frames in a padded batch; only the final max
ignores them.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ragar_data.models.baselines import attribute_model
from ragar_data.models.blocks import basic_conv2d, horizontal_pyramid, per_frame, strip_convolution, temporal_max
from ragar_data.models.registry import register_model

# OpenGait's configs/gaitpart/gaitpart.yaml backbone: (kind, channels, halving); "M" = 2x2 max pool
PLAIN_LAYERS = (("BC", 32, 0), ("BC", 32, 0), ("M", 0, 0), ("FC", 64, 2), ("FC", 64, 2), ("M", 0, 0),
                ("FC", 128, 3), ("FC", 128, 3))


class FocalConv2d(nn.Module):
    """A bias-free 3x3 convolution applied to 2**halving horizontal strips separately."""

    def __init__(self, in_channels: int, channels: int, halving: int, kernel_size: int = 3):
        super().__init__()
        self.halving = halving
        self.conv = basic_conv2d(in_channels, channels, kernel_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return strip_convolution(self.conv, frames, self.halving, height_dim=2)


def plain_backbone(layers=PLAIN_LAYERS, in_channels: int = 1) -> nn.Sequential:
    modules, width = [], in_channels
    for index, (kind, channels, halving) in enumerate(layers):
        if kind == "M":
            modules.append(nn.MaxPool2d(2, 2))
            continue
        kernel = 5 if index == 0 else 3  # as upstream's Plain: only the first layer is 5x5
        modules += [FocalConv2d(width, channels, halving, kernel), nn.LeakyReLU(inplace=True)]
        width = channels
    return nn.Sequential(*modules)


class MicroMotionBranch(nn.Module):
    """Per part: sigmoid(conv1d(squeeze) -> LeakyReLU -> conv1d(expand)) weights a mean + max template of
    ``window`` frames. Input and output (B, parts * C, T)."""

    def __init__(self, channels: int, parts: int, kernel_size: int, window: int, squeeze: int = 4):
        super().__init__()
        hidden = channels // squeeze
        self.parts, self.window = parts, window
        self.weights = nn.Sequential(
            nn.Conv1d(parts * channels, parts * hidden, 3, padding=1, groups=parts, bias=False),
            nn.LeakyReLU(inplace=True),
            nn.Conv1d(parts * hidden, parts * channels, kernel_size, padding=kernel_size // 2, groups=parts,
                      bias=False),
        )

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        pad = self.window // 2
        template = (F.avg_pool1d(sequences, self.window, 1, pad)
                    + F.max_pool1d(sequences, self.window, 1, pad))
        return template * torch.sigmoid(self.weights(sequences))


class GaitPartEncoder(nn.Module):
    """Silhouettes (B, T, H, W) -> part features (B, 128, 16)."""

    def __init__(self, parts: int = 16, channels: int = 128):
        super().__init__()
        self.backbone = plain_backbone()
        self.short_motion = MicroMotionBranch(channels, parts, kernel_size=1, window=3)
        self.long_motion = MicroMotionBranch(channels, parts, kernel_size=3, window=5)
        self.out_channels, self.parts = channels, parts

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        clips = per_frame(self.backbone, silhouettes.unsqueeze(1))  # (B, C, T, h, w)
        batch, channels, frames = clips.shape[:3]
        strips = horizontal_pyramid(clips.transpose(1, 2).flatten(0, 1), (self.parts,))  # (B*T, C, p)
        sequences = strips.reshape(batch, frames, channels, self.parts).permute(0, 3, 2, 1)  # (B, p, C, T)
        sequences = sequences.reshape(batch, self.parts * channels, frames)
        motion = self.short_motion(sequences) + self.long_motion(sequences)
        pooled = temporal_max(motion, lengths, dim=2)  # (B, p * C)
        return pooled.reshape(batch, self.parts, channels).transpose(1, 2)


@register_model
def gaitpart(schema=None, loss: str = "bce"):
    """GaitPart on silhouettes (B, T, 64, 44)."""
    return attribute_model(GaitPartEncoder(), schema, loss)
