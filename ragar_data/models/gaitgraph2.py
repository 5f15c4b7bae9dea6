"""GaitGraph2 (Teepe et al., CVPRW 2022) as an attribute recogniser: a three-branch ResGCN on joint,
velocity and bone features of COCO-17 keypoints, with the attribute head.

Layers as OpenGait's ``opengait/modeling/models/gaitgraph2.py`` (ResGCN of ``backbones/resgcn.py``) in
``configs/gaitgraph2/gaitgraph2.yaml`` (coco, bottleneck, reduction 8, 3 input branches [5, 64, 32], main
stream [32, 128, 256]); the ResGCN modules are `ragar_data.models.gaitgraph`'s. Input transforms as upstream's
``NormalizeEmpty`` then ``GaitGraphMultiInput`` (``opengait/data/transform.py``), computed here on the batch:
- empty joints (x == 0) take the mean x, y of their frame's joints and confidence 0 (upstream updates that
  mean after each replaced joint; here it is taken once per frame, which differs only when several joints of
  a frame are empty);
- branch 1, joints: x, y, confidence, x and y relative to the nose;
- branch 2, velocities: x, y differences to the next frame, 0, confidence, y difference to the frame after
  next (upstream writes the confidence over the x difference to the frame after next); 0 in the last 2 frames;
- branch 3, bones (joint minus its parent): dx, dy, 0, confidence, arccos(dy / length).
The 256 averaged features replace upstream's 128-d embedding (``fcn``) with the attribute head. Not carried
over: test-time flip averaging and the training augmentations.
"""
from __future__ import annotations

import torch
from torch import nn

from ragar_data.models.baselines import attribute_model
from ragar_data.models.gaitgraph import ResGCN
from ragar_data.models.registry import register_model
from ragar_data.models.skeleton import CENTRE, PARENT


def fill_empty_joints(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, T, V, 3): joints with x == 0 moved to their frame's mean x, y, confidence 0."""
    empty = keypoints[..., :1] == 0
    centre = keypoints[..., :2].mean(2, keepdim=True).expand_as(keypoints[..., :2])
    xy = torch.where(empty, centre, keypoints[..., :2])
    return torch.cat([xy, keypoints[..., 2:].masked_fill(empty, 0)], -1)


def multi_input(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, T, V, 3) -> (B, 3, 5, T, V): joint, velocity and bone branches of upstream's GaitGraphMultiInput."""
    xy, confidence = keypoints[..., :2], keypoints[..., 2:]
    zero = torch.zeros_like(confidence)
    joints = torch.cat([xy, confidence, xy - xy[:, :, CENTRE:CENTRE + 1]], -1)
    step1, step2 = torch.zeros_like(xy), torch.zeros_like(xy)
    if keypoints.shape[1] > 2:
        step1[:, :-2] = xy[:, 1:-1] - xy[:, :-2]
        step2[:, :-2] = xy[:, 2:] - xy[:, :-2]
    velocity = torch.cat([step1, zero, confidence, step2[..., 1:]], -1)
    bone = xy - xy[:, :, list(PARENT)]
    length = bone.norm(dim=-1, keepdim=True) + 1e-4
    bones = torch.cat([bone, zero, confidence, torch.arccos((bone[..., 1:] / length).clamp(-1, 1))], -1)
    return torch.stack([joints, velocity, bones], 1).permute(0, 1, 4, 2, 3)


class GaitGraph2Encoder(nn.Module):
    """Keypoints (B, T, 17, 3) -> (B, 256) features."""

    def __init__(self, embedding: int | None = None):
        super().__init__()
        self.resgcn = ResGCN(3, (5, 64, 32), (32, 128, 256), reduction=8, embedding=embedding)
        self.out_channels, self.parts = self.resgcn.out_channels, 1

    def forward(self, keypoints: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.resgcn(multi_input(fill_empty_joints(keypoints)), lengths)


@register_model(input_field="keypoints_2d")
def gaitgraph2(schema=None, loss: str = "bce"):
    """GaitGraph2 on COCO-17 keypoints_2d (B, T, 17, 3)."""
    return attribute_model(GaitGraph2Encoder(), schema, loss, input_field="keypoints_2d")
