"""Quality stage: decide whether a sequence is usable and record why not.

A failing sequence is still written (quality_ok false, `quality_reasons` filled) so users can inspect and
filter it; only errors (unreadable video, a crashing stage) go to the failures log instead.
"""
from __future__ import annotations

import numpy as np

from ragar_data.pipelines.config import QualityConfig


def longest_gap(positions: np.ndarray) -> int:
    """Longest run of missing frames between the first and last frame of a track."""
    if len(positions) < 2:
        return 0
    return int(np.diff(np.sort(positions)).max() - 1)


def assess_quality(*, positions: np.ndarray | None, truncated: np.ndarray, num_silhouettes: int,
                   config: QualityConfig) -> list[str]:
    """Reasons the sequence fails the quality filter; empty when it passes.

    positions: clip positions of the subject track's frames (None when no subject track was found);
    truncated: per subject frame, whether its mask touches the image border.
    """
    if positions is None or len(positions) == 0:
        return ["no subject track: no walking person was tracked"]
    reasons = []
    gap = longest_gap(positions)
    span = int(positions.max() - positions.min() + 1)
    coverage = len(positions) / span
    if gap > config.max_gap_frames:
        reasons.append(f"lost track: the subject is missing for {gap} consecutive frames "
                       f"(at most {config.max_gap_frames})")
    elif coverage < config.min_track_coverage:
        reasons.append(f"lost track: the subject track covers {coverage:.0%} of frames {int(positions.min())}-"
                       f"{int(positions.max())} (at least {config.min_track_coverage:.0%})")
    truncated_fraction = float(np.mean(truncated)) if len(truncated) else 0.0
    if truncated_fraction > config.max_truncated_fraction:
        reasons.append(f"truncated silhouettes: {truncated_fraction:.0%} of the subject's frames touch the image "
                       f"border (at most {config.max_truncated_fraction:.0%})")
    if num_silhouettes < config.min_valid_frames:
        reasons.append(f"too few valid frames: {num_silhouettes} silhouettes kept "
                       f"(at least {config.min_valid_frames})")
    return reasons
