"""Quality stage: decide whether a sequence is usable and record why not.

A failing sequence is still written (quality_ok false, `quality_reasons` filled) so users can inspect and
filter it; only errors (unreadable video, a crashing stage) go to the failures log instead.

Every run checks the subject track's gaps and coverage, truncated masks and the number of silhouettes
(`assess_quality`). When person verification ran (`pipelines/verify.py`), `person_reasons` adds the failures
only a person model can tell: not a person, several people in the subject's box, no walking motion (static)
and fragmented masks; single fragmented frames are then left out of the silhouettes (`fragmented_frames`). Without verification those are not checked (a weights-free run extracts exactly as
before verification existed).
"""
from __future__ import annotations

import cv2
import numpy as np

from ragar_data.pipelines.config import QualityConfig, SelectConfig, VerifyConfig


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


def main_part_fractions(crops: list) -> np.ndarray:
    """(T,) share of each bool mask's pixels in its largest 8-connected part (1 for an empty mask)."""
    shares = np.ones(len(crops), np.float64)
    for index, crop in enumerate(crops):  # one OpenCV call per frame: a few µs on a subject crop
        if crop.size == 0:
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(crop.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        if count > 1 and areas.sum() > 0:
            shares[index] = areas.max() / areas.sum()
    return shares


def fragmented_frames(verification, masks, verify: VerifyConfig) -> np.ndarray:
    """(T',) bool: subject frames whose mask is in pieces (largest part < `fragment_main_part` of it), left out of
    the silhouettes when verification ran (a half-seen walker at the edge of a track); all False otherwise, so a
    weights-free run keeps the frames it always kept."""
    if verification is None or masks is None:
        return np.zeros(len(masks) if masks is not None else 0, bool)
    return main_part_fractions(masks.crops) < verify.fragment_main_part


def person_reasons(verification, subject, masks, verify: VerifyConfig, select: SelectConfig) -> list[str]:
    """Reasons from person verification (module docstring); [] when it did not run or found no subject track.
    `verification` is a `verify.Verification`, `subject` a `subject.SubjectTrack`, `masks` its SubjectMasks."""
    if verification is None or subject is None:
        return []
    reasons = []
    verdict = verification.verdicts.get(subject.track_id)
    if subject.track_id not in verification.people:
        seen = f"on {verdict.person_frames} of {verdict.sampled} sampled frames" if verdict else "(track not checked)"
        reasons.append(f"not a person: the person detector saw a person in the subject track {seen} "
                       f"(at least {verify.min_person_fraction:.0%})")
    elif verdict.several_fraction >= verify.several_fraction:
        reasons.append(f"several people: the subject track holds two or more people on {verdict.several_frames} of "
                       f"{verdict.sampled} sampled frames (fewer than {verify.several_fraction:.0%})")
    if not subject.walking:
        reasons.append(f"static: no walking motion (the subject's box moves less than {select.walking_displacement} "
                       f"box heights and changes height by less than {select.walking_scale_change:.0%})")
    if masks is not None and len(masks):
        fragmented = float(np.mean(main_part_fractions(masks.crops) < verify.fragment_main_part))
        if fragmented > verify.max_fragmented_fraction:
            reasons.append(f"fragmented mask: on {fragmented:.0%} of frames the largest part of the mask holds less "
                           f"than {verify.fragment_main_part:.0%} of it (at most {verify.max_fragmented_fraction:.0%}"
                           f" of frames)")
    return reasons
