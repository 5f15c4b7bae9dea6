"""The attribute head every baseline shares, and the paper's "Classification" baseline (Table 5).

The paper turns gait recognition models into attribute recognisers by "adjusting the classification head and
loss function": each backbone keeps its layers up to its identity heads, and `AttributeClassifier` puts the
attribute head on its features. Head: the backbone's features (part features (B, C, p), or an embedding
(B, C) with p = 1) are flattened, batch-normalised (as OpenGait's BNNeck) and mapped linearly to the 45 class
logits in schema one-hot order. Loss (``loss="bce"``, default): one binary cross-entropy per class, as
OpenGait's RA-GAR linear probe (one binary head per class) and as the paper's 0.5-threshold metrics suggest;
``loss="ce"`` trains a softmax cross-entropy within each attribute's block instead.

The registered models (one file per family, `ragar_data.models.registry`) all return an
`AttributeClassifier`; ``train classification`` builds the CLIP-GAR visual encoder from the config instead.
"""
from __future__ import annotations

import torch
from torch import nn

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import InputError

CLASSIFICATION_LOSSES = ("bce", "ce")


class AttributeClassifier(nn.Module):
    """``visual`` (any backbone with ``out_channels`` and ``parts``) + BN + linear head to 45 logits.

    ``input_field`` names the batch field the backbone reads ("silhouettes" or "keypoints_2d").
    """

    def __init__(self, visual: nn.Module, schema: AttributeSchema, loss: str = "bce",
                 input_field: str = "silhouettes"):
        super().__init__()
        if loss not in CLASSIFICATION_LOSSES:
            raise InputError(f"classification loss must be one of {CLASSIFICATION_LOSSES}, got {loss!r}")
        self.schema = schema
        self.loss = loss
        self.input_field = input_field
        self.visual = visual
        features = visual.out_channels * visual.parts
        self.neck = nn.BatchNorm1d(features)
        self.classifier = nn.Linear(features, schema.total_classes)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W) silhouettes or (B, T, 17, 3) keypoints -> (B, 45) logits."""
        return self.classifier(self.neck(self.visual(inputs, lengths).flatten(1)))


def scaled(channels, width: float) -> tuple[int, ...]:
    """Channel widths times ``width`` (at least 1 each): the ``width`` option of the larger silhouette models,
    used by the CPU benchmark config; 1.0 keeps upstream's widths (and parameter counts)."""
    if width <= 0:
        raise InputError(f"width must be > 0, got {width}")
    return tuple(max(1, round(c * width)) for c in channels)


def attribute_model(visual: nn.Module, schema: AttributeSchema | None = None, loss: str = "bce",
                    input_field: str = "silhouettes") -> AttributeClassifier:
    """What every registered constructor returns: ``visual`` with the attribute head."""
    return AttributeClassifier(visual, schema or default_schema(), loss, input_field)
