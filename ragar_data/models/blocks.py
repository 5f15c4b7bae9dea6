"""Building blocks shared by the silhouette models (the part of OpenGait's ``modules.py`` they need).

Owns: per-frame application of 2D layers to clips, the temporal max over each sequence's valid frames, the
horizontal pooling pyramid and OpenGait's conv-per-strip ("focal" / "local") convolution. Does not own any
model; each model file composes these.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ragar_data.errors import InputError


def per_frame(module: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame: (B, C, T, H, W) -> (B, C', T, H', W') (OpenGait's SetBlockWrapper)."""
    batch, channels, frames, height, width = clips.shape
    out = module(clips.transpose(1, 2).reshape(batch * frames, channels, height, width))
    return out.reshape(batch, frames, *out.shape[1:]).transpose(1, 2).contiguous()


def valid_frames(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B,) lengths -> bool (B, frames), True on each sequence's frames before its end."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def temporal_max(clips: torch.Tensor, lengths: torch.Tensor | None = None, dim: int = 2) -> torch.Tensor:
    """Max over time (OpenGait's TP / set pooling); padded frames after a sequence's end never win."""
    if lengths is not None:
        valid = valid_frames(lengths.to(clips.device), clips.shape[dim])
        shape = [1] * clips.dim()
        shape[0], shape[dim] = valid.shape
        clips = clips.masked_fill(~valid.reshape(shape), torch.finfo(clips.dtype).min)
    return clips.amax(dim=dim)


def horizontal_pyramid(feature_map: torch.Tensor, bins: Sequence[int] = (16,)) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, sum(bins)): for each bin count b the map is cut into b equal strips (in
    row-major order, as upstream's ``view``), each pooled by mean + max (OpenGait's HorizontalPoolingPyramid)."""
    batch, channels = feature_map.shape[:2]
    pooled = []
    for count in bins:
        strips = feature_map.reshape(batch, channels, count, -1)
        pooled.append(strips.mean(-1) + strips.amax(-1))
    return torch.cat(pooled, -1)


def strip_convolution(conv: nn.Module, inputs: torch.Tensor, halving: int, height_dim: int) -> torch.Tensor:
    """``conv`` applied to each of 2**halving horizontal strips separately, strips joined again (OpenGait's
    FocalConv2d and GaitGL's local branch): no receptive field crosses a strip border."""
    if halving == 0:
        return conv(inputs)
    strips = 2 ** halving
    height = inputs.shape[height_dim]
    if height % strips:
        raise InputError(f"feature height {height} does not split into {strips} strips")
    moved = inputs.movedim(height_dim, 1)  # (B, H, ...)
    batch, rest = moved.shape[0], moved.shape[2:]
    stacked = moved.reshape(batch * strips, height // strips, *rest).movedim(1, height_dim)
    out = conv(stacked).movedim(height_dim, 1)
    out = out.reshape(batch, strips * out.shape[1], *out.shape[2:])
    return out.movedim(1, height_dim)


def basic_conv2d(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """OpenGait's BasicConv2d: stride 1, 'same' padding, no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False)
