"""GaitTR (Zhang et al., 2022) as an attribute recogniser: temporal convolutions and per-frame spatial
transformers on COCO-17 keypoints, with the attribute head.

Layers as OpenGait's ``opengait/modeling/models/gaittr.py`` (SpatialAttention of ``modeling/modules.py``) in
``configs/gaittr/gaittr_OUMVLP17.yaml`` (coco, in_channels [10, 64, 64, 128, 256]); our own code:
- input transform as upstream's ``GaitTRMultiInput`` (``opengait/data/transform.py``): from x, y only, five
  2-channel groups: joints, joints relative to the nose, differences to the next and to the next-but-one frame
  (0 in the last 2 frames), bones (joint minus parent); an input BatchNorm per joint and channel;
- four TCN-ST blocks: a (9, 1) temporal convolution (dropout 0.1, Mish, BN) with identity residual, then a
  spatial transformer over the joints of each frame (BN per channel and joint, 8 heads, key size out / 4,
  value size out, Mish, BN) with a 1x1 convolution + BN residual where the width changes, plus a skip from the
  block's input (a 1x1 temporal unit where the width changes);
- average over joints and frames -> 256 features. Upstream's 1x1 ``fcn`` embedding (256 -> 256) is replaced
  by the attribute head. Not carried over: the training augmentations (point and joint noise, inversions).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model
from ragar_data.models.registry import register_model
from ragar_data.models.skeleton import CENTRE, JOINTS, PARENT, masked_time_mean

HEADS = 8


def multi_input(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, T, V, 3) -> (B, 10, T, V): upstream's GaitTRMultiInput channels (group-major, x before y)."""
    xy = keypoints[..., :2]
    step1, step2 = torch.zeros_like(xy), torch.zeros_like(xy)
    if xy.shape[1] > 2:
        step1[:, :-2] = xy[:, 1:-1] - xy[:, :-2]
        step2[:, :-2] = xy[:, 2:] - xy[:, :-2]
    groups = [xy, xy - xy[:, :, CENTRE:CENTRE + 1], step1, step2, xy - xy[:, :, list(PARENT)]]
    return torch.cat(groups, -1).permute(0, 3, 1, 2)


class TemporalUnit(nn.Module):
    """Dropout, a (kernel, 1) convolution over frames, Mish, BN (upstream's UnitConv2D)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 9, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv2d(in_channels, channels, (kernel_size, 1), padding=((kernel_size - 1) // 2, 0))
        nn.init.normal_(self.conv.weight, 0, math.sqrt(2.0 / (channels * kernel_size)))  # as upstream's conv_init
        self.bn = nn.BatchNorm2d(channels)
        self.mish = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.mish(self.conv(self.dropout(x))))


class SpatialTransformer(nn.Module):
    """Per frame, multi-head self-attention over the joints (upstream's STModule + SpatialAttention)."""

    def __init__(self, in_channels: int, channels: int, joints: int = JOINTS):
        super().__init__()
        self.key_size, self.value_size = int(0.25 * channels), channels
        self.data_bn = nn.BatchNorm1d(in_channels * joints)
        self.qkv = nn.Conv2d(in_channels, 2 * self.key_size + self.value_size, 1)
        self.out = nn.Conv2d(self.value_size, self.value_size, 1)
        self.mish = nn.Mish()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, steps, joints = x.shape
        x = self.data_bn(x.transpose(2, 3).reshape(batch, channels * joints, steps))
        x = x.reshape(batch, channels, joints, steps).transpose(2, 3)
        frames = x.transpose(1, 2).reshape(batch * steps, channels, 1, joints)
        q, k, v = self.qkv(frames).flatten(2).split([self.key_size, self.key_size, self.value_size], 1)
        q, k, v = (t.reshape(batch * steps, HEADS, -1, joints) for t in (q, k, v))
        q = q * (self.key_size // HEADS) ** -0.5
        weights = torch.softmax(q.transpose(2, 3) @ k, -1)  # (BT, heads, V, V)
        attended = (weights @ v.transpose(2, 3)).transpose(2, 3)  # (BT, heads, value/heads, V)
        attended = self.out(attended.reshape(batch * steps, self.value_size, 1, joints))
        attended = attended.reshape(batch, steps, self.value_size, joints).transpose(1, 2)
        return self.bn(self.mish(attended))


class TCNST(nn.Module):
    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.tcn = TemporalUnit(in_channels, in_channels)
        self.st = SpatialTransformer(in_channels, channels)
        self.residual = None
        self.down = None
        if in_channels != channels:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels))
            self.down = TemporalUnit(in_channels, channels, kernel_size=1, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.tcn(x) + x
        y = self.st(x0) + (x0 if self.residual is None else self.residual(x0))
        return y + (x if self.down is None else self.down(x))


class GaitTREncoder(nn.Module):
    """Keypoints (B, T, 17, 3) -> (B, 256) features."""

    def __init__(self, channels=(10, 64, 64, 128, 256), embedding: int | None = None):
        super().__init__()
        self.data_bn = nn.BatchNorm1d(channels[0] * JOINTS)
        self.blocks = nn.Sequential(*[TCNST(a, b) for a, b in zip(channels[:-1], channels[1:])])
        # upstream's 1x1 identity embedding (fcn), built only to compare parameter counts with upstream
        self.embedding = None if embedding is None else nn.Linear(channels[-1], embedding)
        self.out_channels, self.parts = embedding or channels[-1], 1

    def forward(self, keypoints: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = multi_input(keypoints)  # (B, C, T, V)
        batch, channels, steps, joints = x.shape
        # upstream normalises with channel index joint * C + channel
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(batch, joints * channels, steps))
        x = x.reshape(batch, joints, channels, steps).permute(0, 2, 3, 1)
        features = masked_time_mean(self.blocks(x), lengths, steps)
        return features if self.embedding is None else self.embedding(features)


@register_model(input_field="keypoints_2d")
def gaittr(schema=None, loss: str = "bce"):
    """GaitTR on COCO-17 keypoints_2d (B, T, 17, 3)."""
    return attribute_model(GaitTREncoder(), schema, loss, input_field="keypoints_2d")
