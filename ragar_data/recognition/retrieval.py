"""Gallery/probe retrieval metrics as OpenGait's evaluation, and the paper's "with attribute" features.

- `part_distance` as upstream's ``cuda_dist`` with ``metric: euc`` (the default of every config, and what
  ``evaluate_Gait3D`` uses for its gallery/probe sets): per part the Euclidean distance, averaged over parts.
- `rank1_and_map` as upstream's ``compute_ACC_mAP`` / ``evaluate_rank`` without view exclusion: per probe the
  gallery sorted by distance (stable, so ties keep gallery order), Rank-1 = the nearest is the same identity,
  AP = mean of the precision at each correct match; both averaged over probes, in percent.
- `with_attributes`: the annotated 45-dim one-hot vector concatenated to every part's feature along the
  channel dimension (the paper: "concatenate ... along the channel dimension"), scaled by `attribute_scale`.

Owns no model and no data reading.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ragar_data.errors import InputError


def part_distance(probe: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(n, c, p) and (m, c, p) features -> (n, m) mean over parts of the per-part Euclidean distance."""
    if probe.ndim != 3 or gallery.ndim != 3 or probe.shape[1:] != gallery.shape[1:]:
        raise InputError(f"features must be (n, c, p) with equal c and p, got {probe.shape} and {gallery.shape}")
    p = probe.astype(np.float64).transpose(2, 0, 1)
    g = gallery.astype(np.float64).transpose(2, 0, 1)
    squared = (p ** 2).sum(-1)[:, :, None] + (g ** 2).sum(-1)[:, None, :] - 2 * p @ g.transpose(0, 2, 1)
    return np.sqrt(np.clip(squared, 0, None)).mean(0)


def rank1_and_map(distances: np.ndarray, probe_labels: Sequence, gallery_labels: Sequence) -> dict[str, float]:
    """Rank-1 and mAP (percent) of the probes; a probe with no match in the gallery counts 0 for Rank-1 and
    is left out of mAP, as upstream."""
    probe_labels, gallery_labels = np.asarray(probe_labels), np.asarray(gallery_labels)
    if distances.shape != (len(probe_labels), len(gallery_labels)):
        raise InputError(f"distances {distances.shape} do not match {len(probe_labels)} probes x "
                         f"{len(gallery_labels)} gallery items")
    order = np.argsort(distances, axis=1, kind="stable")
    matches = gallery_labels[order] == probe_labels[:, None]
    rank1 = matches[:, 0].mean()
    hits = matches.cumsum(1)
    precision = hits / np.arange(1, matches.shape[1] + 1)
    relevant = matches.sum(1)
    with_match = relevant > 0
    average_precision = (precision * matches).sum(1)[with_match] / relevant[with_match]
    mean_ap = average_precision.mean() if with_match.any() else 0.0
    return {"Rank-1": float(100 * rank1), "mAP": float(100 * mean_ap), "probes": int(len(probe_labels))}


def attribute_scale(features: np.ndarray, one_hot_norm: float) -> float:
    """The factor that gives the scaled one-hot vector the median per-part L2 norm of ``features`` (n, c, p):
    the attribute block then weighs about as much as the gait feature in each part's distance, whatever
    the model's feature scale."""
    return float(np.median(np.linalg.norm(features, axis=1)) / one_hot_norm)


def with_attributes(features: np.ndarray, one_hot: np.ndarray, scale: float) -> np.ndarray:
    """(n, c, p) features and (n, 45) one-hot labels -> (n, c + 45, p): the scaled labels joined to every part."""
    if one_hot.shape[0] != features.shape[0]:
        raise InputError(f"{one_hot.shape[0]} label vectors for {features.shape[0]} features")
    block = np.repeat((scale * one_hot.astype(features.dtype))[:, :, None], features.shape[2], axis=2)
    return np.concatenate([features, block], axis=1)


def breakdown(distances: np.ndarray, probe_labels: Sequence, gallery_labels: Sequence,
              probe_groups: Mapping[str, Sequence]) -> dict[str, dict[str, float]]:
    """Rank-1 and mAP of each probe subset: ``probe_groups`` maps a covariate name (e.g. "condition") to each
    probe's value; results are keyed "condition=nm"."""
    probe_labels = np.asarray(probe_labels)
    out = {}
    for covariate, values in probe_groups.items():
        values = np.asarray([str(v) for v in values])
        for value in sorted(set(values)):
            rows = values == value
            out[f"{covariate}={value}"] = rank1_and_map(distances[rows], probe_labels[rows], gallery_labels)
    return out
