"""The paper's "Classification" baseline (Table 5): the CLIP-GAR visual encoder with attribute heads trained
directly, no text.

Head: the p part features are flattened, batch-normalised (as OpenGait's BNNeck) and mapped linearly to the
45 class logits in schema one-hot order. Loss (``loss="bce"``, default): one binary cross-entropy per class,
as OpenGait's RA-GAR linear probe (one binary head per class) and as the paper's 0.5-threshold metrics
suggest; ``loss="ce"`` trains a softmax cross-entropy within each attribute's block instead.
GaitGraph and GAR-Net are not implemented.
"""
from __future__ import annotations

import torch
from torch import nn

from ragar_data.attributes import AttributeSchema
from ragar_data.errors import InputError
from ragar_data.models.deepgaitv2 import DeepGaitV2Encoder

CLASSIFICATION_LOSSES = ("bce", "ce")


class AttributeClassifier(nn.Module):
    def __init__(self, visual: DeepGaitV2Encoder, schema: AttributeSchema, loss: str = "bce"):
        super().__init__()
        if loss not in CLASSIFICATION_LOSSES:
            raise InputError(f"classification loss must be one of {CLASSIFICATION_LOSSES}, got {loss!r}")
        self.schema = schema
        self.loss = loss
        self.visual = visual
        features = visual.out_channels * visual.parts
        self.neck = nn.BatchNorm1d(features)
        self.classifier = nn.Linear(features, schema.total_classes)

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W) -> (B, 45) logits."""
        return self.classifier(self.neck(self.visual(silhouettes, lengths).flatten(1)))
