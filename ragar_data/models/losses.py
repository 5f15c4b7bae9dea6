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

import numpy as np
import torch
import torch.nn.functional as F

from ragar_data.attributes import AttributeSchema
from ragar_data.errors import InputError
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
                    schema: AttributeSchema, label_weights: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> torch.Tensor:
    """Binary cross-entropy over the 45 labels; the blocks of unknown attributes do not count.

    ``label_weights`` = (positive weights (45,), negative weights (45,)) weighs each term by its label's
    weight for the target's side (e.g. `positive_ratio_weights`); None is the paper's plain BCE.
    """
    mask = known_label_mask(labels, schema)
    target = one_hot.float()
    per_label = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    if label_weights is not None:
        positive, negative = (w.to(per_label.device, per_label.dtype) for w in label_weights)
        per_label = per_label * (target * positive + (1.0 - target) * negative)
    return (per_label * mask).sum() / mask.sum().clamp(min=1.0)


def positive_ratio_weights(one_hot: np.ndarray, labels: np.ndarray, schema: AttributeSchema
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted BCE of the pedestrian-attribute literature (DeepMAR; Jia et al., "Rethinking of
    pedestrian attribute recognition"): for label j with positive ratio r_j among the training items whose
    attribute is known, positives weigh exp(1 - r_j) and negatives exp(r_j), so rare classes are not simply
    predicted absent. Returns (positive (45,), negative (45,)) float32 tensors.
    """
    mask = known_label_mask(torch.as_tensor(np.asarray(labels)), schema).numpy().astype(np.float64)
    known = mask.sum(0)
    if (known == 0).any():
        missing = [schema.label_names()[j] for j in np.flatnonzero(known == 0)]
        raise InputError(f"positive_ratio_weights: no training item with a known label for {missing}")
    ratio = (np.asarray(one_hot, dtype=np.float64) * mask).sum(0) / known
    return (torch.as_tensor(np.exp(1.0 - ratio), dtype=torch.float32),
            torch.as_tensor(np.exp(ratio), dtype=torch.float32))


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
