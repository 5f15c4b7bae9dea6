"""GAR-Net (Song et al., "Gait Attribute Recognition: A New Benchmark for Learning Richer Attributes From Human
Gait Patterns", IEEE TIFS 2024) as far as its public description allows: the paper's own GAR model.

Public facts (the paper's abstract; no code or layer table is public): a Multi-Scale Motion Encoder (MSME)
extracts motion features, and an Attribute-Guided Feature Selection Module (AGFSM) adaptively selects, for each
attribute, the most discriminative features among static appearance features and dynamic motion features.

Everything below that is a GUESS (ours, not the paper's):
- GUESS static branch: GaitSet's per-frame convolution blocks (`ragar_data.models.gaitset`, channels 32, 64,
  128), max over frames, horizontal pooling into 16 parts;
- GUESS MSME: differences of the per-frame feature maps over 1, 2 and 4 frames (three temporal scales), each
  through its own 3x3 convolution + LeakyReLU, summed, max over frames, 16 parts;
- GUESS AGFSM: one learned query per attribute (15) attends over the 32 part tokens (16 static + 16 motion)
  by a scaled dot product; each attribute's feature is the softmax-weighted sum of the tokens, so the module
  "selects" static or motion parts per attribute;
- GUESS output: the 15 selected features followed by the 32 part tokens themselves, (B, 128, 47): the head
  sees the selection and the parts it selects from (on 96 generated subjects with table3_cpu, the 15 selected
  features alone reached F1 45.7 / mA 54.2, below or at the majority floor, because a softmax-weighted sum of
  tokens keeps only what the 15 queries learnt to attend to in a short run);
- GUESS head and loss: the attribute head every baseline here gets (BN + linear to the 45 classes, BCE), in
  place of whatever per-attribute classifiers the paper uses; widths, scales and part counts are ours.
The paper's GAR-Net numbers (Table 3) therefore cannot be expected from this model.
"""
from __future__ import annotations

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model, scaled
from ragar_data.models.blocks import basic_conv2d, horizontal_pyramid, per_frame, temporal_max
from ragar_data.models.gaitset import _conv_pair
from ragar_data.models.registry import register_model

MOTION_SCALES = (1, 2, 4)  # GUESS: frame gaps of the multi-scale motion encoder


class MultiScaleMotionEncoder(nn.Module):
    """Per-frame maps (B, C, T, h, w) -> motion maps (B, C, h, w): frame differences at several gaps."""

    def __init__(self, channels: int, scales=MOTION_SCALES):
        super().__init__()
        self.scales = tuple(scales)
        self.convs = nn.ModuleList(nn.Sequential(basic_conv2d(channels, channels, 3), nn.LeakyReLU(inplace=True))
                                   for _ in self.scales)

    def forward(self, clips: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        motion = 0
        for gap, conv in zip(self.scales, self.convs):
            gap = min(gap, clips.shape[2] - 1) if clips.shape[2] > 1 else 0
            shifted = torch.cat([clips[:, :, gap:], clips[:, :, -1:].expand(-1, -1, gap, -1, -1)], 2)
            motion = motion + per_frame(conv, shifted - clips)
        return temporal_max(motion, lengths)


class AttributeGuidedSelection(nn.Module):
    """Tokens (B, C, N) -> one feature per attribute (B, C, attributes) by attribute-query attention."""

    def __init__(self, channels: int, attributes: int = 15):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(attributes, channels) * channels ** -0.5)
        self.keys = nn.Linear(channels, channels)

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, N) -> (B, attributes, N) selection weights, each row summing to 1."""
        keys = self.keys(tokens.transpose(1, 2))  # (B, N, C)
        return torch.softmax(self.queries @ keys.transpose(1, 2) / keys.shape[-1] ** 0.5, -1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return (self.weights(tokens) @ tokens.transpose(1, 2)).transpose(1, 2)


class GARNetEncoder(nn.Module):
    """Silhouettes (B, T, H, W) -> features (B, 128, 15 + 32): one per attribute, then the part tokens."""

    def __init__(self, channels=(32, 64, 128), parts: int = 16, attributes: int = 15):
        super().__init__()
        first, second, third = channels
        self.frames = nn.Sequential(_conv_pair(1, first, 5, pool=True), _conv_pair(first, second, 3, pool=True),
                                    _conv_pair(second, third, 3, pool=False))
        self.motion = MultiScaleMotionEncoder(third)
        self.selection = AttributeGuidedSelection(third, attributes)
        self.parts_per_branch = parts
        self.out_channels, self.parts = third, attributes + 2 * parts

    def tokens(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        clips = per_frame(self.frames, silhouettes.unsqueeze(1))
        static = horizontal_pyramid(temporal_max(clips, lengths), (self.parts_per_branch,))
        motion = horizontal_pyramid(self.motion(clips, lengths), (self.parts_per_branch,))
        return torch.cat([static, motion], -1)

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.tokens(silhouettes, lengths)
        return torch.cat([self.selection(tokens), tokens], -1)


@register_model
def garnet(schema=None, loss: str = "bce", width: float = 1.0):
    """GAR-Net on silhouettes (B, T, 64, 44), reconstructed from its public description (see the module);
    ``width`` scales its channels (1.0 = the guessed widths)."""
    return attribute_model(GARNetEncoder(scaled((32, 64, 128), width)), schema, loss)
