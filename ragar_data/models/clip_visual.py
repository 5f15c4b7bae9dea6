"""CLIP's own image encoder as an attribute recogniser: the "CLIP visual encoder" rows of the paper's Table 5.

Each silhouette frame (64x44, [0, 1]) is padded to a square, resized to CLIP's 224x224, repeated to three
channels and normalised with CLIP's mean and std; the RN50 image encoder (open_clip ``RN50-quickgelu``, OpenAI's
weights) embeds it; the frame embeddings of a sequence are averaged over its valid frames (temporal pooling);
the cosine with each of the 45 class sentences, times CLIP's logit scale, gives 45 logits, and the best class per
attribute is the prediction (metrics mode "argmax", as a CE classifier). Zero-shot: the pretrained encoder as is.
Fine-tuned: the image encoder trained with a softmax cross-entropy within each attribute's block (CLIP's
zero-shot classifier trained as a classifier) at the paper's lr 5e-5; the text features stay frozen.

Owns the model and how it is built from a weights file. Does not own training (`ragar_data.training.trainer`
with the classification task) nor the text sentences (`ragar_data.attributes`). Weights are loaded as
`ragar_data.models.text_encoders` loads them: a TorchScript file only when it is one of OpenAI's published files,
anything else with ``weights_only=True``. Not in the model registry: it needs a weights file and text features,
which the registry's constructors (schema and loss only) do not take.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import InputError, ModelUnavailable
from ragar_data.models.text_encoders import (CLIP_MODEL, _is_torchscript, check_torchscript_trusted,
                                             encode_with_model)

KIND = "clip_visual"  # the checkpoint kind (`ragar_data.training.build.model_from_checkpoint`)
IMAGE_SIZE = 224
FRAME_CHUNK = 64  # frames per pass through the image encoder, to bound activation memory


def load_open_clip(weights: str | Path, model_name: str = CLIP_MODEL) -> nn.Module:
    """The open_clip model ``model_name`` with the weights of a local file (OpenAI's RN50.pt or a state dict)."""
    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise ModelUnavailable(
            f"CLIP visual encoder: weights file not found at {weights}; get OpenAI's RN50.pt with "
            "`ragar-data models download clip-rn50`, or pass the path of an open_clip RN50 state dict")
    import open_clip

    torchscript = _is_torchscript(weights)
    if torchscript:
        check_torchscript_trusted(weights)  # loading TorchScript runs the code stored in the archive
    return open_clip.create_model(model_name, pretrained=str(weights), weights_only=not torchscript, device="cpu")


def random_image_encoder(model_name: str = CLIP_MODEL) -> nn.Module:
    """An untrained image encoder of the architecture (to load a checkpoint's state into)."""
    import open_clip

    return open_clip.create_model(model_name, pretrained=None, device="cpu").visual


class ClipVisualRecogniser(nn.Module):
    """CLIP's image encoder, temporal mean pooling and cosine with the 45 frozen class text features.

    ``forward`` returns (B, 45) logits: logit_scale x cosine. ``loss = "ce"`` and ``input_field`` let the shared
    classification task train it and the shared inference decide it (per-attribute argmax).
    """

    loss = "ce"
    input_field = "silhouettes"

    def __init__(self, image_encoder: nn.Module, text_features: torch.Tensor, schema: AttributeSchema,
                 logit_scale: float = 100.0):
        super().__init__()
        if text_features.shape[0] != schema.total_classes:
            raise InputError(f"text features have {text_features.shape[0]} rows, the schema has "
                             f"{schema.total_classes} classes")
        self.schema = schema
        self.visual = image_encoder
        self.register_buffer("text_features", nn.functional.normalize(text_features.float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        mean, std = _clip_normalisation(image_encoder)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def images(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W) silhouettes in [0, 1] -> (N, 3, 224, 224) CLIP inputs (zero-padded to a square first, so the
        body keeps its proportions)."""
        height, width = frames.shape[-2:]
        side = max(height, width)
        left, top = (side - width) // 2, (side - height) // 2
        square = nn.functional.pad(frames[:, None], (left, side - width - left, top, side - height - top))
        resized = nn.functional.interpolate(square, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                                            align_corners=False)
        return (resized.expand(-1, 3, -1, -1) - self.pixel_mean) / self.pixel_std

    def sequence_embeddings(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W) -> (B, d): the mean of the frame embeddings over each sequence's valid frames."""
        batch, steps = silhouettes.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.int64, device=silhouettes.device)
        valid = torch.arange(steps, device=silhouettes.device)[None, :] < lengths[:, None]
        frames = silhouettes[valid]  # (sum of lengths, H, W): padded frames never reach the encoder
        owner = torch.arange(batch, device=silhouettes.device)[:, None].expand(batch, steps)[valid]
        embedded = torch.cat([self.visual(self.images(chunk)) for chunk in frames.split(FRAME_CHUNK)])
        summed = embedded.new_zeros(batch, embedded.shape[1]).index_add(0, owner, embedded)
        return summed / lengths.clamp(min=1)[:, None].to(summed.dtype)

    def forward(self, silhouettes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        pooled = nn.functional.normalize(self.sequence_embeddings(silhouettes, lengths).float(), dim=-1)
        return self.logit_scale * pooled @ self.text_features.T


def _clip_normalisation(image_encoder: nn.Module) -> tuple[tuple, tuple]:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean = getattr(image_encoder, "image_mean", None) or OPENAI_DATASET_MEAN
    std = getattr(image_encoder, "image_std", None) or OPENAI_DATASET_STD
    return tuple(mean), tuple(std)


def pretrained_recogniser(weights: str | Path, schema: AttributeSchema | None = None) -> ClipVisualRecogniser:
    """The zero-shot recogniser from a CLIP weights file: its image encoder, its logit scale and its text
    encoder's features of the schema's 45 sentences."""
    import open_clip

    schema = schema or default_schema()
    model = load_open_clip(weights)
    text_features = encode_with_model(model, open_clip.get_tokenizer(CLIP_MODEL), schema.sentences())
    scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
    return ClipVisualRecogniser(model.visual, text_features, schema, scale)


def recogniser_for_state(state: dict, schema: AttributeSchema | None = None) -> ClipVisualRecogniser:
    """An untrained recogniser shaped to take ``state`` (a checkpoint's model state)."""
    if "text_features" not in state:
        raise InputError("a clip_visual checkpoint without text_features")
    return ClipVisualRecogniser(random_image_encoder(), torch.zeros_like(state["text_features"]),
                                schema or default_schema())
