"""CLIP-GAR: visual encoder V, frozen text features T, the align head θ and the fusion transformer.

Choices where the paper is not explicit (each configurable where it matters):
- How the p parts enter s(x, π): θ (a 1x1 convolution, i.e. one linear map shared by all parts) maps each
  part feature to d; s is the mean over parts of the per-part cosine similarity with each class sentence
  (``part_similarity="mean"``). ``"pooled"`` averages the projected parts first and takes one cosine.
- τ: CLIP's learnable log-scale, initialised at log(1/0.07) and clamped to at most 100 (CLIP's cap).
- Fusion tokens: [φ(f_t) + e_text (45 tokens, schema one-hot order), f_v + e_vis + e_pos (p tokens)];
  f_t are the L2-normalised text features, f_v the raw part features (not θ-projected). Encoder blocks are
  ``nn.TransformerEncoderLayer`` with 8 heads, FFN 4c, dropout 0.1, GELU, pre-norm (the paper gives only
  "1 block"). Heads: one binary head (a weight vector and a bias) per class, head k reading output token k.
- Predictions: the align stage alone predicts per attribute the class of highest s; the fusion stage gives
  45 sigmoid scores.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ragar_data.attributes import AttributeSchema
from ragar_data.errors import InputError
from ragar_data.models.deepgaitv2 import DeepGaitV2Encoder
from ragar_data.models.text_encoders import TextFeatures

PART_SIMILARITIES = ("mean", "pooled")


class AlignHead(nn.Module):
    """θ: part features (B, c, p) -> similarities s (B, 45) with the text features, and the learnable scale 1/τ."""

    def __init__(self, visual_channels: int, text_dim: int, part_similarity: str = "mean",
                 logit_scale_init: float = math.log(1 / 0.07)):
        super().__init__()
        if part_similarity not in PART_SIMILARITIES:
            raise InputError(f"part_similarity must be one of {PART_SIMILARITIES}, got {part_similarity!r}")
        self.theta = nn.Conv1d(visual_channels, text_dim, kernel_size=1)
        self.part_similarity = part_similarity
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)

    def forward(self, part_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        projected = self.theta(part_features)  # (B, d, p)
        text = nn.functional.normalize(text_features, dim=-1)
        if self.part_similarity == "pooled":
            return nn.functional.normalize(projected.mean(-1), dim=-1) @ text.T
        per_part = torch.einsum("bdp,kd->bkp", nn.functional.normalize(projected, dim=1), text)
        return per_part.mean(-1)


class FusionHead(nn.Module):
    """Text tokens and part tokens through a transformer encoder; one binary head per class (45 logits)."""

    def __init__(self, visual_channels: int, text_dim: int, num_classes: int, parts: int,
                 depth: int = 1, heads: int = 8, mlp_ratio: float = 4.0, dropout: float = 0.1):
        super().__init__()
        c = visual_channels
        self.num_classes = num_classes
        self.phi = nn.Conv1d(text_dim, c, kernel_size=1)
        self.e_text = nn.Parameter(torch.zeros(1, 1, c))
        self.e_vis = nn.Parameter(torch.zeros(1, 1, c))
        self.e_pos = nn.Parameter(torch.zeros(1, parts, c))
        for embedding in (self.e_text, self.e_vis, self.e_pos):
            nn.init.trunc_normal_(embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            c, heads, int(c * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c)
        self.head_weight = nn.Parameter(torch.empty(num_classes, c))
        self.head_bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.trunc_normal_(self.head_weight, std=0.02)

    def tokens(self, part_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(B, c, p), (45, d) -> (B, 45 + p, c): text tokens first, in schema one-hot order."""
        batch = part_features.shape[0]
        text_tokens = self.phi(text_features.T.unsqueeze(0)).transpose(1, 2) + self.e_text  # (1, 45, c)
        visual_tokens = part_features.transpose(1, 2) + self.e_vis + self.e_pos  # (B, p, c)
        return torch.cat([text_tokens.expand(batch, -1, -1), visual_tokens], dim=1)

    def forward(self, part_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        encoded = self.norm(self.encoder(self.tokens(part_features, text_features)))
        class_tokens = encoded[:, : self.num_classes]  # token k belongs to class k
        return torch.einsum("bkc,kc->bk", class_tokens, self.head_weight) + self.head_bias


class CLIPGAR(nn.Module):
    """V + T + θ (align) + fusion head. ``forward`` returns the output of the requested stage."""

    def __init__(self, visual: DeepGaitV2Encoder, text: TextFeatures, schema: AttributeSchema,
                 part_similarity: str = "mean", fusion_depth: int = 1, fusion_heads: int = 8,
                 fusion_mlp_ratio: float = 4.0, fusion_dropout: float = 0.1):
        super().__init__()
        if text.embeddings.shape[0] != schema.total_classes:
            raise InputError(
                f"text features have {text.embeddings.shape[0]} rows, the schema has {schema.total_classes} classes"
            )
        self.schema = schema
        self.visual = visual
        self.text = text
        self.align_head = AlignHead(visual.out_channels, text.dim, part_similarity)
        self.fusion_head = FusionHead(
            visual.out_channels, text.dim, schema.total_classes, visual.parts,
            fusion_depth, fusion_heads, fusion_mlp_ratio, fusion_dropout,
        )

    def align_similarity(self, silhouettes, lengths=None) -> torch.Tensor:
        """s(x, π): (B, 45) cosine similarities (not yet scaled by 1/τ)."""
        return self.align_head(self.visual(silhouettes, lengths), self.text())

    def fusion_logits(self, silhouettes, lengths=None) -> torch.Tensor:
        # In the fusion stage V is frozen: skip its autograd graph.
        visual_trains = any(p.requires_grad for p in self.visual.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and visual_trains):
            part_features = self.visual(silhouettes, lengths)
        return self.fusion_head(part_features, self.text())

    def forward(self, silhouettes, lengths=None, stage: str = "fusion") -> torch.Tensor:
        if stage == "align":
            return self.align_similarity(silhouettes, lengths)
        if stage == "fusion":
            return self.fusion_logits(silhouettes, lengths)
        raise InputError(f"stage must be 'align' or 'fusion', got {stage!r}")
