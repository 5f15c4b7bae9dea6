"""DeepGaitV2 (2D, P3D, 3D): the visual encoder V of CLIP-GAR and three registered attribute recognisers.

Follows the layer structure of OpenGait's DeepGaitV2 backbone (``opengait/modeling/models/deepgaitv2.py``,
blocks in ``opengait/modeling/modules.py``); our own code. ``mode="3d"`` (CLIP-GAR's V):

- layer0: per-frame 3x3 Conv2d(in, c0) + BatchNorm2d + ReLU (stride 1);
- layer1: ``layers[0]`` per-frame 2D basic blocks (two 3x3 Conv2d + BN, residual), c0 channels, stride 1;
- layer2..4: 3D basic blocks (two 3x3x3 Conv3d + BN3d, residual), channels c1..c3, strides (1,2,2),
  (1,2,2), (1,1,1) on (time, height, width) for the first block of each stage; temporal padding 1, so
  the frame count is kept; the shortcut is a 1x1x1 Conv3d + BN3d where stride or width changes;
- temporal pooling (TP): max over frames (only the valid frames of each sequence when lengths are given);
- horizontal pooling (HPP): the feature map's rows split into ``parts`` strips, each pooled by mean + max
  (OpenGait's HorizontalPoolingPyramid with one bin count), giving f_v of shape (B, c3, parts).

``mode="2d"``: layers 2-4 are per-frame 2D basic blocks (strides 2, 2, 1); ``mode="p3d"``: pseudo-3D blocks
(per-frame 3x3 convolutions plus a (3, 1, 1) temporal convolution with its own BN, added to the first
convolution's output), strides as 2d, shortcut a 1x1x1 Conv3d + BN3d. Pooling as in 3d.

OpenGait follows the backbone with SeparateFCs + SeparateBNNecks (re-identification heads); CLIP-GAR replaces
them with its own heads, so this module stops at f_v. The registered models ``deepgaitv2_2d``, ``deepgaitv2_p3d``
and ``deepgaitv2_3d`` are upstream's backbone ([1, 2, 2, 1], [64, 128, 256, 512], 16 HPP bins) with the
attribute head of `ragar_data.models.baselines`. `upstream_backbone_parameter_count` counts the upstream
backbone's parameters from its layer list by arithmetic alone, as an independent check of this module.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ragar_data.errors import InputError

from ragar_data.models.baselines import attribute_model, scaled
from ragar_data.models.blocks import per_frame
from ragar_data.models.registry import register_model

MODES = ("2d", "p3d", "3d")
PARTS_CHOICES = (1, 2, 4, 8, 16)


class BasicBlock2D(nn.Module):
    """ResNet basic block on single frames (OpenGait's layer1 block)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        identity = frames if self.shortcut is None else self.shortcut(frames)
        out = self.relu(self.bn1(self.conv1(frames)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class BasicBlock3D(nn.Module):
    """ResNet basic block with 3x3x3 convolutions over (time, height, width)."""

    def __init__(self, in_channels: int, channels: int, stride: Sequence[int] = (1, 1, 1)):
        super().__init__()
        stride = tuple(stride)
        self.conv1 = nn.Conv3d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if max(stride) > 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm3d(channels)
            )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        identity = clips if self.shortcut is None else self.shortcut(clips)
        out = self.relu(self.bn1(self.conv1(clips)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class BasicBlockP3D(nn.Module):
    """Pseudo-3D basic block (upstream's BasicBlockP3D): per-frame 3x3 convolutions, a temporal (3, 1, 1)
    convolution added after the first, residual shortcut over (time, height, width)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False),
                                   nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), 1, (1, 0, 0), bias=False)
        self.temporal_bn = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv3d(in_channels, channels, 1, (1, stride, stride), bias=False),
                                          nn.BatchNorm3d(channels))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        identity = clips if self.shortcut is None else self.shortcut(clips)
        out = per_frame(self.conv1, clips)
        out = self.relu(out + self.temporal_bn(self.temporal(out)))
        out = per_frame(self.conv2, out)
        return self.relu(out + identity)


class DeepGaitV2Encoder(nn.Module):
    """Silhouette sequences (B, T, H, W) in [0, 1] -> part features f_v (B, channels[-1], parts)."""

    def __init__(
        self,
        layers: Sequence[int] = (1, 2, 2, 1),
        channels: Sequence[int] = (64, 128, 256, 512),
        parts: int = 8,
        in_channels: int = 1,
        mode: str = "3d",
    ):
        super().__init__()
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if len(layers) != 4 or len(channels) != 4:
            raise InputError(f"layers and channels need 4 stages each, got {list(layers)} and {list(channels)}")
        if parts not in PARTS_CHOICES:
            raise InputError(f"parts must be one of {PARTS_CHOICES} (the 64x44 input gives 16 rows), got {parts}")
        self.parts = parts
        self.out_channels = channels[-1]
        self.layer0 = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)
        )
        self.layer1 = nn.Sequential(
            *[BasicBlock2D(channels[0], channels[0]) for _ in range(layers[0])]
        )
        # As upstream: halve height and width at stages 2 and 3, never the frame count.
        block = {"2d": BasicBlock2D, "p3d": BasicBlockP3D, "3d": BasicBlock3D}[mode]
        strides = ((1, 2, 2), (1, 2, 2), (1, 1, 1)) if mode == "3d" else (2, 2, 1)
        stages, width = [], channels[0]
        for blocks, planes, stride in zip(layers[1:], channels[1:], strides):
            stage = [block(width, planes, stride)]
            stage += [block(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            width = planes
        self.layer2, self.layer3, self.layer4 = stages

    def feature_maps(self, silhouettes: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) -> (B, C, T, H/4, W/4) before pooling."""
        if silhouettes.dim() != 4:
            raise InputError(f"expected silhouettes (batch, frames, height, width), got shape {tuple(silhouettes.shape)}")
        batch, frames, height, width = silhouettes.shape
        frame_maps = silhouettes.reshape(batch * frames, 1, height, width)
        frame_maps = self.layer1(self.layer0(frame_maps))
        if self.mode == "2d":
            frame_maps = self.layer4(self.layer3(self.layer2(frame_maps)))
        channels, out_h, out_w = frame_maps.shape[1:]
        clips = frame_maps.reshape(batch, frames, channels, out_h, out_w).transpose(1, 2)
        if self.mode == "2d":
            return clips
        return self.layer4(self.layer3(self.layer2(clips)))

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.feature_maps(silhouettes)
        if lengths is not None:
            # Padded frames (after each sequence's end) must not win the temporal max.
            frame_ids = torch.arange(maps.shape[2], device=maps.device)
            padded = frame_ids[None, :] >= lengths.to(maps.device)[:, None]
            maps = maps.masked_fill(padded[:, None, :, None, None], torch.finfo(maps.dtype).min)
        pooled = maps.amax(dim=2)  # TP: (B, C, h, w)
        return horizontal_pooling(pooled, self.parts)


def horizontal_pooling(feature_map: torch.Tensor, parts: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, parts): rows split into equal strips, each pooled by mean + max (as OpenGait's HPP)."""
    batch, channels, height, width = feature_map.shape
    if height % parts:
        raise InputError(f"feature map height {height} is not divisible into {parts} parts")
    strips = feature_map.reshape(batch, channels, parts, -1)
    return strips.mean(-1) + strips.amax(-1)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def upstream_backbone_parameter_count(
    layers: Sequence[int] = (1, 2, 2, 1), channels: Sequence[int] = (64, 128, 256, 512), in_channels: int = 1
) -> int:
    """Parameters of OpenGait's DeepGaitV2 backbone (``mode: 3d``, layer0..layer4), by arithmetic alone.

    Written from upstream's layer list, independent of the module above: convolutions have no bias,
    every BatchNorm has 2 parameters per channel; layer0 = conv3x3 2D + BN2d; layer1 = BasicBlock2D;
    layers 2-4 = BasicBlock3D (3x3x3 kernels) whose first block gets a 1x1x1 Conv3d + BN3d downsample
    when its stride is > 1 or the width changes (``make_layer``).
    """
    def conv(cin, cout, kernel_volume):
        return cin * cout * kernel_volume

    def bn(c):
        return 2 * c

    total = conv(in_channels, channels[0], 9) + bn(channels[0])
    inplanes = channels[0]
    for _ in range(layers[0]):
        total += conv(inplanes, channels[0], 9) + bn(channels[0]) + conv(channels[0], channels[0], 9) + bn(channels[0])
    for blocks, planes, max_stride in zip(layers[1:], channels[1:], (2, 2, 1)):
        for block in range(blocks):
            total += conv(inplanes, planes, 27) + bn(planes) + conv(planes, planes, 27) + bn(planes)
            if block == 0 and (max_stride > 1 or inplanes != planes):
                total += conv(inplanes, planes, 1) + bn(planes)
            inplanes = planes
    return total


def _upstream_deepgaitv2(mode: str, schema=None, loss: str = "bce", width: float = 1.0):
    # OpenGait's DeepGaitV2 configs: layers [1, 2, 2, 1] (Gait3D/GREW/SUSTech1K...), channels [64, 128, 256, 512],
    # HPP bin_num [16]
    channels = scaled((64, 128, 256, 512), width)
    return attribute_model(DeepGaitV2Encoder((1, 2, 2, 1), channels, parts=16, mode=mode), schema, loss)


@register_model
def deepgaitv2_2d(schema=None, loss: str = "bce", width: float = 1.0):
    """DeepGaitV2-2D on silhouettes (B, T, 64, 44); ``width`` scales its channels (1.0 = upstream)."""
    return _upstream_deepgaitv2("2d", schema, loss, width)


@register_model
def deepgaitv2_p3d(schema=None, loss: str = "bce", width: float = 1.0):
    """DeepGaitV2-P3D on silhouettes (B, T, 64, 44); ``width`` scales its channels (1.0 = upstream)."""
    return _upstream_deepgaitv2("p3d", schema, loss, width)


@register_model
def deepgaitv2_3d(schema=None, loss: str = "bce", width: float = 1.0):
    """DeepGaitV2-3D on silhouettes (B, T, 64, 44) (the paper's Table 3 row; 16 parts as upstream, where
    ``train classification`` keeps CLIP-GAR's V with 8); ``width`` scales its channels (1.0 = upstream)."""
    return _upstream_deepgaitv2("3d", schema, loss, width)
