"""Training losses: CLIP-GAR's align loss L_a (ActionCLIP-style KL), masked BCE over the 45 labels, and
per-attribute softmax cross-entropy.

Align loss, per attribute m over the items of the batch whose label of m is known:
  logits = s[:, block m] / τ  (B, N_m);
  p_v2t = softmax over the N_m classes (rows), p_t2v = softmax over the batch (rows of the transpose);
  ground truth as ActionCLIP (``utils/KLLoss.py`` + ``gen_label``): a 0/1 matrix y^m (item has class k),
  normalised row-wise by softmax(10 · y) (so a class absent from the batch gets a uniform target over
  items, as in ActionCLIP);
  L_m = ½ [KL(target_v2t || p_v2t) + KL(target_t2v || p_t2v)], each KL summed over a row and averaged over
  rows ("batchmean"; ActionCLIP's legacy KLDivLoss mean × batch size equals the row sum divided by the
  number of columns instead — a constant factor per attribute that Adam largely absorbs);
  L_a = mean of L_m over the attributes with at least one known label in the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ragar_data.attributes import AttributeSchema
from ragar_data.models.scores import block_index, known_label_mask

ACTIONCLIP_GT_SHARPNESS = 10.0  # ActionCLIP normalises the 0/1 ground truth by softmax(10 · y)


def kl_to_soft_target(logits: torch.Tensor, target_01: torch.Tensor) -> torch.Tensor:
    """KL(softmax(10·y) || softmax(logits)) summed over each row, averaged over rows."""
    target = F.softmax(target_01 * ACTIONCLIP_GT_SHARPNESS, dim=-1)
    return F.kl_div(F.log_softmax(logits, dim=-1), target, reduction="batchmean")


def align_kl_loss(similarity: torch.Tensor, logit_scale: torch.Tensor, labels: torch.Tensor,
                  schema: AttributeSchema) -> torch.Tensor:
    """L_a from cosine similarities (B, 45), the scale 1/τ and class indices (B, 15) (-1 = unknown)."""
    logits = similarity.float() * logit_scale
    losses = []
    for m, (offset, count) in enumerate(zip(schema.offsets.tolist(), schema.num_classes)):
        known = labels[:, m] >= 0
        if not bool(known.any()):
            continue
        block = logits[known, offset: offset + count]  # (B_m, N_m)
        target = F.one_hot(labels[known, m].long(), count).float()
        losses.append(0.5 * (kl_to_soft_target(block, target) + kl_to_soft_target(block.T, target.T)))
    if not losses:
        return logits.sum() * 0.0  # no known label in this batch: zero loss that still has a graph
    return torch.stack(losses).mean()


def masked_bce_loss(logits: torch.Tensor, one_hot: torch.Tensor, labels: torch.Tensor,
                    schema: AttributeSchema) -> torch.Tensor:
    """Binary cross-entropy over the 45 labels; the blocks of unknown attributes do not count."""
    mask = known_label_mask(labels, schema)
    per_label = F.binary_cross_entropy_with_logits(logits.float(), one_hot.float(), reduction="none")
    return (per_label * mask).sum() / mask.sum().clamp(min=1.0)


def attribute_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, schema: AttributeSchema) -> torch.Tensor:
    """Softmax cross-entropy within each attribute's block, averaged over known (item, attribute) pairs."""
    attribute = block_index(schema, logits.device)
    logits = logits.float()
    # log-sum-exp per block, vectorised, each block shifted by its own max for stability.
    index = attribute.expand_as(logits)
    block_max = torch.zeros(logits.shape[0], len(schema), device=logits.device).scatter_reduce(
        1, index, logits, reduce="amax", include_self=False
    ).detach()
    block_sums = torch.zeros(logits.shape[0], len(schema), device=logits.device).index_add(
        1, attribute, (logits - block_max.gather(1, index)).exp()
    )
    log_normaliser = block_sums.log() + block_max
    offsets = torch.as_tensor(schema.offsets, device=logits.device)
    known = labels >= 0
    chosen = logits.gather(1, (offsets + labels.clamp(min=0)).long())
    nll = (log_normaliser - chosen) * known
    return nll.sum() / known.sum().clamp(min=1)
