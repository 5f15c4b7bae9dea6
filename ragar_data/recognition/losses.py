"""OpenGait's identity losses on part features: the batch-all triplet loss and the per-part cross-entropy.

- `triplet_loss` as upstream's ``TripletLoss`` (``opengait/modeling/losses/triplet.py``): per part, Euclidean
  distances of all pairs in the batch, every (anchor, positive, negative) hinge max(d_ap - d_an + margin, 0),
  averaged over the non-zero hinges (0 when none), then the mean over parts. Margin 0.2 in every upstream config.
- `part_cross_entropy` as upstream's ``CrossEntropyLoss``: logits (n, classes, p) times ``scale``, softmax
  cross-entropy per part, mean over parts; optional label smoothing.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

TRIPLET_MARGIN = 0.2


def part_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(n, c, p) -> (p, n, n) Euclidean distances per part."""
    parts = embeddings.permute(2, 0, 1).float()
    squared = parts.pow(2).sum(-1)
    inner = parts @ parts.transpose(1, 2)
    return (squared[:, :, None] + squared[:, None, :] - 2 * inner).clamp(min=0).sqrt()


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = TRIPLET_MARGIN) -> torch.Tensor:
    """Batch-all triplet loss of (n, c, p) embeddings with (n,) identity labels."""
    distances = part_distances(embeddings)  # (p, n, n)
    same = labels[:, None] == labels[None, :]
    # hinge[p, a, i, j]: anchor a, candidate positive i, candidate negative j; only real triplets count
    valid = same[:, :, None] & ~same[:, None, :]
    hinge = F.relu(distances[:, :, :, None] - distances[:, :, None, :] + margin) * valid
    hinge = hinge.flatten(1)
    active = (hinge > 0).sum(-1)
    per_part = hinge.sum(-1) / active.clamp(min=1)
    return per_part.mean()


def part_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, scale: float = 1.0,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of (n, classes, p) logits per part, averaged over parts."""
    parts = logits.shape[-1]
    return F.cross_entropy(scale * logits, labels[:, None].expand(-1, parts), label_smoothing=label_smoothing)
