"""GPGait (Fu et al., ICCV 2023) as an attribute recogniser: part-aware graph convolutions on the human-oriented
descriptor of COCO-17 keypoints, with the attribute head.

Layers as FastPoseGait's ``fastposegait/modeling/models/gpgait.py`` (PAGCN of ``components/units/unit_pagcn.py``,
``Part_AGCN_Residual`` of ``components/blocks.py``, semantic pyramid pooling of ``components/head.py``, graph
and partitions of ``modeling/graph/``) in ``configs/gpgait/gpgait.yaml`` (in_channels [2, 64, 64, 128, 256],
share_num 3); our own code:
- input transforms as upstream's ``RescaleCenter`` (each frame scaled to a joint height of 225 and centred on
  the neck, the shoulders' midpoint; a frame of zero height is left unscaled here) and ``HOD_MultiInput``
  (joints x, y; bones joint minus parent; one angle per joint by the cosine law);
- three branches (joints, bones; angles on the 12 joints without the head) of part-aware graph convolution
  blocks: an input BN per joint and channel; 3 shared blocks (parts masked to 5 limbs, 4 without the head),
  then for the 17-joint branches four 128 -> 256 blocks on copies: upper / lower half, arms / head + legs,
  arms / legs / head, and unmasked; the angle branch keeps the halves and the unmasked one; each copy is
  max-pooled over frames and pooled (mean + max) over its parts: 8 + 8 + 3 = 19 parts of 256 channels;
- a block: per hop partition (3, max hop 2) a data-dependent joint affinity (softmax of 1x1-convolution
  query/key products over channels and frames) plus the adjacency and a learned offset (initially 1e-6),
  masked to the parts, mixes the joints; 1x1 convolutions map and sum the partitions, then BN and Mish;
  residual 1x1 convolution + BN where the width changes.
Upstream's SeparateFCs (19 x 256 x 256) and SeparateBNNecks are replaced by the attribute head. Not carried
over: the training augmentations (inversions, joint noise).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model
from ragar_data.models.registry import register_model
from ragar_data.models.blocks import valid_frames
from ragar_data.models.skeleton import LINKS, PARENT, partitioned_adjacency

# the 12 joints without the head (COCO 5..16), re-indexed 0..11, as upstream's 'coco-no-head'
NO_HEAD_LINKS = ((0, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7), (6, 8), (8, 10), (7, 9), (9, 11))
# upstream's GraphPartition lists: index 0 whole body, then the part sets used by the blocks and the pooling
PARTITIONS = {
    "coco": [[list(range(17))], [[5, 7, 9], [6, 8, 10], [11, 13, 15], [12, 14, 16], [0, 1, 2, 3, 4]],
             [[5, 7, 9, 6, 8, 10, 0, 1, 2, 3, 4], [11, 13, 15, 12, 14, 16]],
             [[5, 7, 9, 6, 8, 10], [11, 13, 15, 12, 14, 16, 0, 1, 2, 3, 4]],
             [[5, 7, 9, 6, 8, 10], [11, 13, 15, 12, 14, 16], [0, 1, 2, 3, 4]]],
    "coco-no-head": [[list(range(12))], [[0, 2, 4], [1, 3, 5], [6, 8, 10], [7, 9, 11]],
                     [[0, 2, 4, 1, 3, 5], [6, 8, 10, 7, 9, 11]]],
}
# upstream's HOD angle per joint: (centre, left, right) inner angle, or (centre, left) angle to the vertical
ANGLES = ((0, 1, 2), (1, 0, 3), (2, 4, 0), (3, 1), (4, 2), (5, 7, 11), (6, 8, 12), (7, 5, 9), (8, 10, 6), (9, 7),
          (10, 8), (11, 5, 13), (12, 6, 14), (13, 11, 15), (14, 12, 16), (15, 13), (16, 14))


def rescale_centre(keypoints: torch.Tensor, height: float = 225.0) -> torch.Tensor:
    """(B, T, V, 3) -> (B, T, V, 2): x, y scaled so the frame's joints span ``height`` in y, neck at 0."""
    xy = keypoints[..., :2]
    span = xy[..., 1].amax(-1) - xy[..., 1].amin(-1)
    scale = torch.where(span > 0, height / span.clamp(min=1e-12), torch.ones_like(span))
    xy = xy * scale[..., None, None]
    return xy - (xy[..., 5:6, :] + xy[..., 6:7, :]) / 2


def _cosine_law_angle(centre, left, right):
    side1, side2, side3 = (centre - left).norm(dim=-1), (centre - right).norm(dim=-1), (left - right).norm(dim=-1)
    product = side1 * side2
    cosine = ((side1 ** 2 + side2 ** 2 - side3 ** 2) / (2 * torch.where(product == 0, 1.0, product))).clamp(-1, 1)
    return torch.where(product == 0, math.pi, math.pi - torch.arccos(cosine))


def human_oriented_descriptor(xy: torch.Tensor) -> torch.Tensor:
    """(B, T, V, 2) -> (B, 5, T, V): joints x, y, bones x, y, joint angle (upstream's HOD_MultiInput)."""
    bones = xy - xy[:, :, list(PARENT)]
    angles = []
    for joints in ANGLES:
        centre, left = xy[:, :, joints[0]], xy[:, :, joints[1]]
        right = xy[:, :, joints[2]] if len(joints) == 3 else torch.stack([centre[..., 0], left[..., 1]], -1)
        angles.append(_cosine_law_angle(centre, left, right))
    angle = torch.stack(angles, -1)[..., None]
    return torch.nan_to_num(torch.cat([xy, bones, angle], -1)).permute(0, 3, 1, 2)


def part_mask(parts, joints: int) -> torch.Tensor:
    mask = torch.zeros(joints, joints)
    for part in parts:
        mask[torch.tensor(part)[:, None], torch.tensor(part)[None, :]] = 1.0
    return mask


class PartAwareBlock(nn.Module):
    """Part-aware graph convolution (upstream's PAGCN) with its residual (Part_AGCN_Residual)."""

    def __init__(self, in_channels: int, channels: int, adjacency: torch.Tensor, mask: torch.Tensor | None):
        super().__init__()
        subsets, joints = adjacency.shape[0], adjacency.shape[-1]
        self.inner = channels // 4
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("mask", torch.ones(joints, joints) if mask is None else mask, persistent=False)
        self.offset = nn.Parameter(torch.full_like(adjacency, 1e-6))
        self.query = nn.ModuleList(nn.Conv2d(in_channels, self.inner, 1) for _ in range(subsets))
        self.key = nn.ModuleList(nn.Conv2d(in_channels, self.inner, 1) for _ in range(subsets))
        self.mix = nn.ModuleList(nn.Conv2d(in_channels, channels, 1) for _ in range(subsets))
        self.bn = nn.BatchNorm2d(channels)
        self.mish = nn.Mish()
        self.residual = None
        if in_channels != channels:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, steps, joints = x.shape
        adjacency = self.adjacency + self.offset
        values = x.reshape(batch, channels * steps, joints)
        out = 0
        for index, (query, key, mix) in enumerate(zip(self.query, self.key, self.mix)):
            q = query(x).permute(0, 3, 1, 2).reshape(batch, joints, -1)
            k = key(x).reshape(batch, -1, joints)
            affinity = torch.softmax(q @ k / q.shape[-1], dim=-2) + adjacency[index]
            out = out + mix((values @ (affinity * self.mask)).reshape(batch, channels, steps, joints))
        out = self.mish(self.bn(out))
        return out + (x if self.residual is None else self.residual(x))


class PartAwareBranch(nn.Module):
    """One input kind (B, C, T, V) -> (B, 256, parts): shared blocks, then one copy per part set."""

    def __init__(self, in_channels: int, joint_format: str, channels=(64, 64, 128, 256)):
        super().__init__()
        joints = 17 if joint_format == "coco" else 12
        adjacency = partitioned_adjacency(joints, LINKS if joint_format == "coco" else NO_HEAD_LINKS, max_hop=2)
        partitions = PARTITIONS[joint_format]
        self.data_bn = nn.BatchNorm1d(in_channels * joints)
        widths = (in_channels, *channels[:3])
        self.shared = nn.Sequential(*[PartAwareBlock(a, b, adjacency, part_mask(partitions[1], joints))
                                      for a, b in zip(widths[:-1], widths[1:])])
        # (block mask index, pooling partition index) per copy, in upstream's order; None = unmasked
        self.copies = ((2, 2), (3, 3), (4, 4), (None, 0)) if joint_format == "coco" else ((2, 2), (None, 0))
        self.blocks = nn.ModuleList(
            PartAwareBlock(channels[2], channels[3], adjacency,
                           None if mask is None else part_mask(partitions[mask], joints))
            for mask, _ in self.copies)
        self.pooling_parts = [partitions[pool] for _, pool in self.copies]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        batch, channels, steps, joints = x.shape
        # upstream normalises with channel index joint * C + channel
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(batch, joints * channels, steps))
        shared = self.shared(x.reshape(batch, joints, channels, steps).permute(0, 2, 3, 1))
        pooled = []
        for block, parts in zip(self.blocks, self.pooling_parts):
            features = block(shared)
            if lengths is not None:  # padded frames never win the max over frames
                valid = valid_frames(lengths.to(x.device), steps)[:, None, :, None]
                features = features.masked_fill(~valid, torch.finfo(features.dtype).min)
            features = features.amax(2)  # (B, C, V)
            pooled += [features[..., part].mean(-1) + features[..., part].amax(-1) for part in parts]
        return torch.stack(pooled, -1)


class GPGaitEncoder(nn.Module):
    """Keypoints (B, T, 17, 3) -> part features (B, 256, 19)."""

    def __init__(self):
        super().__init__()
        self.pose = PartAwareBranch(2, "coco")
        self.bone = PartAwareBranch(2, "coco")
        self.angle = PartAwareBranch(1, "coco-no-head")
        self.out_channels, self.parts = 256, 19

    def forward(self, keypoints: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        descriptor = human_oriented_descriptor(rescale_centre(keypoints))  # (B, 5, T, V)
        return torch.cat([self.pose(descriptor[:, :2], lengths), self.bone(descriptor[:, 2:4], lengths),
                          self.angle(descriptor[:, 4:5, :, 5:], lengths)], -1)


@register_model(input_field="keypoints_2d")
def gpgait(schema=None, loss: str = "bce"):
    """GPGait on COCO-17 keypoints_2d (B, T, 17, 3)."""
    return attribute_model(GPGaitEncoder(), schema, loss, input_field="keypoints_2d")
