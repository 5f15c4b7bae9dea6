"""GaitGraph (Teepe et al., ICIP 2021) as an attribute recogniser: the ResGCN graph network on COCO-17
keypoints, with the attribute head. Also holds the ResGCN pieces GaitGraph2 reuses.

Layers as OpenGait's ``opengait/modeling/models/gaitgraph1.py`` with ``backbones/resgcn.py`` and the
ResGCN blocks of ``modeling/modules.py``, in ``configs/gaitgraph1/gaitgraph1_phase1.yaml`` (joint_format coco,
bottleneck blocks, reduction 8, input branch [3, 64, 64, 32], main stream [32, 128, 128, 256, 256]); our own code:
- input: the keypoints (T, 17, 3) as read (x, y in pixels, confidence), upstream's GaitGraph1Input (a
  transpose only); an input BatchNorm over the 3 channels;
- ResGCN modules: a spatial graph convolution (1x1 convolution to 3 hop partitions, mixed by the
  hop-partitioned adjacency times a learned edge weight per module) then a temporal (9, 1) convolution; the
  first module plain, the others bottlenecks with residuals; the first main-stream module and the 128 -> 256
  one halve the frame count;
- global average over frames and joints -> 256 features. Upstream then maps them to a 128-d embedding
  (``fcn``) and L2-normalises it for its contrastive loss; here the attribute head replaces both.
Not carried over (identity-training specifics): the two half-sequence views of training, test-time flip
averaging, and the pose augmentations of the training transform (flips, joint noise).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model
from ragar_data.models.registry import register_model
from ragar_data.models.skeleton import masked_time_mean, partitioned_adjacency

TEMPORAL_WINDOW = 9
GRAPH_DISTANCE = 2  # hop partitions 0, 1, 2 of the 4 upstream builds (max_hop 3)


class SpatialGraphConv(nn.Module):
    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.partitions = GRAPH_DISTANCE + 1
        self.conv = nn.Conv2d(in_channels, channels * self.partitions, 1)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        batch, _, steps, joints = x.shape
        x = self.conv(x).reshape(batch, self.partitions, -1, steps, joints)
        return torch.einsum("nkctv,kvw->nctw", x, adjacency[: self.partitions])


def _bn_conv(in_channels, channels, kernel=1, stride=1, padding=0):
    return nn.Sequential(nn.Conv2d(in_channels, channels, kernel, stride, padding), nn.BatchNorm2d(channels))


class ResGCNModule(nn.Module):
    """One spatial then one temporal block. ``bottleneck=False``: plain blocks without residuals (upstream's
    'initial'); ``True``: bottleneck blocks (``reduction``) with block residuals."""

    def __init__(self, in_channels: int, channels: int, adjacency: torch.Tensor, bottleneck: bool,
                 reduction: int = 8, stride: int = 1):
        super().__init__()
        self.bottleneck = bottleneck
        self.edge = nn.Parameter(torch.ones_like(adjacency))
        self.relu = nn.ReLU(inplace=True)
        pad = ((TEMPORAL_WINDOW - 1) // 2, 0)
        inner = channels // reduction if bottleneck else channels
        if bottleneck:
            self.spatial_down = _bn_conv(in_channels, inner)
            self.spatial_residual = None if in_channels == channels else _bn_conv(in_channels, channels)
            self.temporal_down = _bn_conv(channels, inner)
            self.temporal_up = _bn_conv(inner, channels)
            self.spatial_up = _bn_conv(inner, channels)
            self.temporal_residual = None if stride == 1 else _bn_conv(channels, channels, 1, (stride, 1))
        self.spatial = SpatialGraphConv(inner if bottleneck else in_channels, inner)
        self.spatial_bn = nn.BatchNorm2d(inner)
        self.temporal = _bn_conv(inner, inner, (TEMPORAL_WINDOW, 1), (stride, 1), pad)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        adjacency = adjacency * self.edge
        if not self.bottleneck:
            y = self.relu(self.spatial_bn(self.spatial(x, adjacency)))
            return self.relu(self.temporal(y))
        residual = x if self.spatial_residual is None else self.spatial_residual(x)
        y = self.relu(self.spatial_bn(self.spatial(self.relu(self.spatial_down(x)), adjacency)))
        y = self.relu(self.spatial_up(y) + residual)
        residual = y if self.temporal_residual is None else self.temporal_residual(y)
        z = self.relu(self.temporal(self.relu(self.temporal_down(y))))
        return self.relu(self.temporal_up(z) + residual)


class ResGCN(nn.Module):
    """Input branches (one per input kind) -> concatenated -> main stream -> (B, main_stream[-1]) features.

    ``x``: (B, I, C, T, V). As upstream, the first main-stream module halves the frame count (its
    ``get_res``) and so does every module that widens the features."""

    def __init__(self, branches: int, input_branch: Sequence[int], main_stream: Sequence[int],
                 reduction: int = 8, embedding: int | None = None):
        super().__init__()
        self.register_buffer("adjacency", partitioned_adjacency(), persistent=False)
        adjacency = self.adjacency
        self.input_bns = nn.ModuleList(nn.BatchNorm2d(input_branch[0]) for _ in range(branches))
        self.branches = nn.ModuleList(
            nn.ModuleList(ResGCNModule(c_in, c_out, adjacency, bottleneck=index > 0, reduction=reduction)
                          for index, (c_in, c_out) in enumerate(zip(input_branch[:-1], input_branch[1:])))
            for _ in range(branches))
        main, width = [], main_stream[0] * branches
        for index, channels in enumerate(main_stream[1:]):
            stride = 2 if index == 0 or main_stream[index] != channels else 1
            main.append(ResGCNModule(width, channels, adjacency, True, reduction, stride))
            width = channels
        self.main = nn.ModuleList(main)
        # upstream's identity embedding (fcn), built only to compare parameter counts with upstream
        self.embedding = None if embedding is None else nn.Linear(width, embedding)
        self.out_channels, self.parts = (embedding or width), 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        frames = x.shape[3]
        streams = []
        for index, (bn, modules) in enumerate(zip(self.input_bns, self.branches)):
            y = bn(x[:, index])
            for module in modules:
                y = module(y, self.adjacency)
            streams.append(y)
        y = torch.cat(streams, 1)
        for module in self.main:
            y = module(y, self.adjacency)
        features = masked_time_mean(y, lengths, frames)
        return features if self.embedding is None else self.embedding(features)


class GaitGraphEncoder(nn.Module):
    """Keypoints (B, T, 17, 3) -> (B, 256) features (ResGCN on the raw x, y, confidence)."""

    def __init__(self, embedding: int | None = None):
        super().__init__()
        self.resgcn = ResGCN(1, (3, 64, 64, 32), (32, 128, 128, 256, 256), reduction=8, embedding=embedding)
        self.out_channels, self.parts = self.resgcn.out_channels, 1

    def forward(self, keypoints: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.resgcn(keypoints.permute(0, 3, 1, 2).unsqueeze(1), lengths)  # (B, 1, C, T, V)


@register_model(input_field="keypoints_2d")
def gaitgraph(schema=None, loss: str = "bce"):
    """GaitGraph on COCO-17 keypoints_2d (B, T, 17, 3)."""
    return attribute_model(GaitGraphEncoder(), schema, loss, input_field="keypoints_2d")
