"""The COCO-17 skeleton graph the pose models share (as OpenGait's ``Graph`` in ``modeling/modules.py``) and
the per-sequence masks they pool with.

Owns: the joint links, each joint's parent ("connect joint") for bone vectors, the hop-distance partitioned
and column-normalised adjacency of ST-GCN, and the valid-step mask of padded batches. Does not own a model.
"""
from __future__ import annotations

import numpy as np
import torch

JOINTS = 17
# COCO-17: 0 nose, 1-2 eyes, 3-4 ears, 5-6 shoulders, 7-8 elbows, 9-10 wrists, 11-12 hips, 13-14 knees,
# 15-16 ankles (left before right)
LINKS = ((0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11),
         (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
PARENT = (5, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14)  # upstream's connect_joint for coco
CENTRE = 0  # upstream's graph centre for coco (the nose)


def hop_distances(num_joints: int = JOINTS, links=LINKS, max_hop: int = 3) -> np.ndarray:
    """(V, V) graph distance between joints, inf beyond ``max_hop``."""
    adjacency = np.eye(num_joints)
    for i, j in links:
        adjacency[i, j] = adjacency[j, i] = 1
    distances = np.full((num_joints, num_joints), np.inf)
    reach = np.stack([np.linalg.matrix_power(adjacency, d) > 0 for d in range(max_hop + 1)])
    for hop in range(max_hop, -1, -1):
        distances[reach[hop]] = hop
    return distances


def partitioned_adjacency(num_joints: int = JOINTS, links=LINKS, max_hop: int = 3) -> torch.Tensor:
    """(max_hop + 1, V, V): the adjacency within ``max_hop`` hops, each column divided by its degree, split
    into one matrix per hop distance (ST-GCN's distance partitioning, as upstream's Graph.A)."""
    distances = hop_distances(num_joints, links, max_hop)
    within = (distances <= max_hop).astype(np.float64)
    normalised = within / within.sum(0, keepdims=True)
    partitions = np.stack([np.where(distances == hop, normalised, 0.0) for hop in range(max_hop + 1)])
    return torch.tensor(partitions, dtype=torch.float32)


def step_mask(lengths: torch.Tensor | None, steps: int, frames: int, batch: int, device) -> torch.Tensor:
    """(B, steps) float weights of the valid steps after the frame axis shrank from ``frames`` to ``steps``
    (a strided layer keeps ceil(length * steps / frames) steps of a sequence); all ones without lengths."""
    if lengths is None:
        return torch.ones(batch, steps, device=device)
    kept = torch.ceil(lengths.to(device).float() * steps / frames).clamp(min=1)
    return (torch.arange(steps, device=device)[None, :] < kept[:, None]).float()


def masked_time_mean(features: torch.Tensor, lengths: torch.Tensor | None, frames: int) -> torch.Tensor:
    """(B, C, T', V) -> (B, C): mean over joints and over each sequence's valid steps (upstream's global
    average pooling; padded frames of a batch left out)."""
    batch, _, steps, _ = features.shape
    weights = step_mask(lengths, steps, frames, batch, features.device)
    per_step = features.mean(-1)  # (B, C, T')
    return (per_step * weights[:, None]).sum(-1) / weights.sum(-1, keepdim=True)
