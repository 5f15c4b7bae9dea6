"""Per-attribute operations on (B, 45) outputs: softmax inside each attribute's block of the one-hot vector,
argmax decisions as one-hot, and masks for unknown labels. Vectorised over the 15 blocks."""
from __future__ import annotations

import torch

from ragar_data.attributes import AttributeSchema


def block_index(schema: AttributeSchema, device=None) -> torch.Tensor:
    """For each of the 45 labels, the index of its attribute (0..14)."""
    return torch.as_tensor(schema.label_attribute(), dtype=torch.long, device=device)


def block_softmax(logits: torch.Tensor, schema: AttributeSchema) -> torch.Tensor:
    """Softmax over the classes of each attribute separately; (B, 45) -> (B, 45), each block sums to 1."""
    attribute = block_index(schema, logits.device)
    num_attributes = len(schema)
    expanded = torch.full(logits.shape[:-1] + (num_attributes, logits.shape[-1]), float("-inf"),
                          dtype=logits.dtype, device=logits.device)
    own_block = attribute[None, :] == torch.arange(num_attributes, device=logits.device)[:, None]  # (15, 45)
    expanded = torch.where(own_block, logits.unsqueeze(-2), expanded)
    return expanded.softmax(-1).sum(-2)


def argmax_one_hot(scores: torch.Tensor, schema: AttributeSchema) -> torch.Tensor:
    """(B, 45) scores -> (B, 45) with 1 at each attribute's highest-scoring class, 0 elsewhere."""
    probabilities = block_softmax(scores.float(), schema)
    attribute = block_index(schema, scores.device)
    block_max = torch.zeros(scores.shape[:-1] + (len(schema),), device=scores.device).scatter_reduce(
        -1, attribute.expand_as(probabilities), probabilities, reduce="amax", include_self=False
    )
    winners = probabilities >= block_max.gather(-1, attribute.expand_as(probabilities))
    # A tie inside a block keeps only its first class.
    first = winners.float().cumsum(-1) - _block_start_cumsum(winners.float(), attribute, len(schema))
    return (winners & (first == 1)).float()


def _block_start_cumsum(values: torch.Tensor, attribute: torch.Tensor, num_attributes: int) -> torch.Tensor:
    """For each position, the running sum of ``values`` over all earlier blocks."""
    block_totals = torch.zeros(values.shape[:-1] + (num_attributes,), device=values.device).scatter_add(
        -1, attribute.expand_as(values), values
    )
    before = block_totals.cumsum(-1) - block_totals
    return before.gather(-1, attribute.expand_as(values))


def known_label_mask(labels: torch.Tensor, schema: AttributeSchema) -> torch.Tensor:
    """(B, 15) class indices (-1 unknown) -> (B, 45) float mask, 0 over the blocks of unknown attributes."""
    return (labels >= 0).float().index_select(-1, block_index(schema, labels.device))
