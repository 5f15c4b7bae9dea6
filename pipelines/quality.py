"""Quality stage: decide whether a sequence is usable and record why not.

A failing sequence is still written (quality_ok false, `quality_reasons` filled) so users can inspect and
filter it; only errors (unreadable video, a crashing stage) go to the failures log instead.

Every run checks the subject track's gaps and coverage, truncated masks and the number of silhouettes
(`assess_quality`). When person verification ran (`pipelines/verify.py`), `person_reasons` adds the failures
only a person model can tell: not a person, several people in the subject's box, no walking motion (static)
and fragmented masks, and too few frames showing one whole person ("no whole person"); frames that fail the
per-frame check (`verify.check_frames`: no whole person in the box, a silhouette that does not match the person
model's mask) or whose mask is in pieces are left out of the silhouettes (`rejected_frames`). Without
verification those are not checked (a weights-free run extracts exactly as before verification existed).
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


def mask_agreement(checks, masks) -> tuple[np.ndarray, np.ndarray]:
    """(T',) IoU of each subject frame's mask with the landmark model's person mask, and (T',) the ratio of their
    heights (rows spanned), compared in the model's ROI space (each crop warped into the 256 x 256 ROI, nearest
    neighbour); 0 where the silhouette is empty.
    `checks` is a `verify.FrameChecks` of the same frames as `masks` (a `SubjectMasks`)."""
    from ragar_data.pipelines.backends.blazepose_detect import pixel_index_matrices, roi_matrices

    size = int(round(np.sqrt(checks.person_masks.shape[1] * 8)))
    matrices = pixel_index_matrices(roi_matrices(checks.rois, size))
    ious, heights = np.zeros(len(masks), np.float64), np.zeros(len(masks), np.float64)
    for row, (crop, origin) in enumerate(zip(masks.crops, masks.origins)):
        if crop.size == 0:
            continue
        matrix = matrices[row].copy()
        matrix[:, 2] -= origin[:2]  # ROI pixel -> crop pixel
        mine = cv2.warpAffine(crop.astype(np.uint8), matrix, (size, size), flags=cv2.INTER_NEAREST |
                              cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        person = checks.person_mask(row)
        union = np.count_nonzero(mine | person)
        ious[row] = np.count_nonzero(mine & person) / union if union else 0.0
        heights[row] = _row_span(mine) / max(_row_span(person), 1)
    return ious, heights


def _row_span(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


def rejected_frames(verification, masks, verify: VerifyConfig, shares: np.ndarray | None = None) -> np.ndarray:
    """(T',) bool: subject frames left out of the silhouettes when verification ran: the mask is in pieces
    (largest part < `fragment_main_part` of it: a half-seen walker at the edge of a track), and, when the
    per-frame check ran (`verify.FrameChecks`), the landmark model sees no whole person in the subject's box
    (`verify.whole_people`), the mask overlaps its person mask by IoU < `min_mask_iou` (a box on floor tape,
    half a walker, a mask broken into pieces or grown over the background) or their heights differ by more than
    `max_height_ratio` (a pole joined to the head, the feet missing). All False without verification,
    so a weights-free run keeps the frames it always kept. `shares`: `main_part_fractions(masks.crops)` when the
    caller has them."""
    if verification is None or masks is None:
        return np.zeros(len(masks) if masks is not None else 0, bool)
    shares = main_part_fractions(masks.crops) if shares is None else shares
    rejected = shares < verify.fragment_main_part
    checks = verification.frames
    if checks is not None and len(checks.whole) == len(masks):
        ious, heights = mask_agreement(checks, masks)
        taller = np.maximum(heights, 1 / np.maximum(heights, 1e-6))
        rejected |= ~checks.whole | (ious < verify.min_mask_iou) | (taller > verify.max_height_ratio)
    return rejected


def person_reasons(verification, subject, masks, verify: VerifyConfig, select: SelectConfig,
                   shares: np.ndarray | None = None, rejected: np.ndarray | None = None) -> list[str]:
    """Reasons from person verification (module docstring); [] when it did not run or found no subject track.
    `verification` is a `verify.Verification`, `subject` a `subject.SubjectTrack`, `masks` its SubjectMasks;
    `shares` and `rejected`: `main_part_fractions` and `rejected_frames` of the masks when the caller has them."""
    if verification is None or subject is None:
        return []
    if masks is not None:
        shares = main_part_fractions(masks.crops) if shares is None else shares
        rejected = rejected_frames(verification, masks, verify, shares) if rejected is None else rejected
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
    checks = verification.frames
    if checks is not None and masks is not None and subject.track_id in verification.people:
        kept = int(np.count_nonzero(~rejected))
        if kept < verify.min_whole_frames:
            reasons.append(f"no whole person: on {kept} of {len(masks)} frames the person model sees one person whose "
                           f"head and a foot are inside the image and whose mask matches the silhouette (IoU >= "
                           f"{verify.min_mask_iou:.2f}, heights within x{verify.max_height_ratio:.2f}; at least {verify.min_whole_frames} frames)")
    if masks is not None and len(masks):
        fragmented = float(np.mean(shares < verify.fragment_main_part))
        if fragmented > verify.max_fragmented_fraction:
            reasons.append(f"fragmented mask: on {fragmented:.0%} of frames the largest part of the mask holds less "
                           f"than {verify.fragment_main_part:.0%} of it (at most {verify.max_fragmented_fraction:.0%}"
                           f" of frames)")
    return reasons
