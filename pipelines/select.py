"""Select stage: which track is the subject.

The rule, in order:
1. a track needs at least `min_frames` frames;
2. a track *walks* when its box centre moves by at least `walking_displacement` box heights between its first
   and last quarter, or its box height changes by at least `walking_scale_change` (a walker approaching or
   leaving a frontal camera);
3. the subject is the track with the highest
       length x (1 + walking_bonus if it walks) x (1 - centrality_weight x (1 - centrality)),
   where length = track frames / clip frames and centrality = 1 - mean horizontal distance of the box centre
   from the image centre, in half image widths, over the middle third of the clip (0 when the track is not
   there then). Ties go to the lower track id.

Gaps: frames inside a short gap of the subject's track that another track took (a merged blob handed to the
passer-by's track for a few frames) go back to the subject (`stitch_gaps`).

Merged blobs: background subtraction returns one blob while a passer-by overlaps the subject in the image, and
the subject's detection box then spans both. Such frames (box width/height above `merged_aspect` times the
track's median) get the subject's box back: centre interpolated from the unmerged frames around them, width the
90th percentile of the unmerged widths/heights times the box height, so the silhouette crop leaves the passer-by out.

RA-GAR's cameras are aimed at the middle of the subject's path and a sequence is cut around the subject's walk,
so the subject passes the image centre mid-sequence, while a passer-by crosses elsewhere or at another time.
Length demotes short fragments (a jittering fragment may look like walking), walking demotes static clutter
(a flag, a parked bicycle), and mid-sequence centrality separates two walkers who are both there throughout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragar_data.pipelines.track import Tracks


@dataclass
class SubjectTrack:
    track_id: int
    frame: np.ndarray  # (T',) positions in the clip
    boxes: np.ndarray  # (T', 4)
    score: float
    walking: bool


def _walks(boxes: np.ndarray, displacement: float, scale_change: float) -> bool:
    quarter = max(1, len(boxes) // 4)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    heights = boxes[:, 3] - boxes[:, 1]
    start, end = centres[:quarter].mean(axis=0), centres[-quarter:].mean(axis=0)
    height = max(float(np.median(heights)), 1.0)
    start_height, end_height = heights[:quarter].mean(), heights[-quarter:].mean()
    moved = np.linalg.norm(end - start) / height
    scaled = abs(end_height - start_height) / max(min(start_height, end_height), 1.0)
    return bool(moved >= displacement or scaled >= scale_change)


def select_subject(tracks: Tracks, image_size: tuple[int, int], *, min_frames: int = 5,
                   walking_displacement: float = 0.25, walking_scale_change: float = 0.1,
                   walking_bonus: float = 0.5, centrality_weight: float = 1.0,
                   merged_aspect: float = 1.35, stitch_gap: int = 30, stitch_iou: float = 0.5) -> SubjectTrack | None:
    """The subject's track by the rule in the module docstring, or None when no track qualifies. Gap rows
    taken from other tracks (see `stitch_gaps`) are reassigned to the subject's id in `tracks` itself."""
    width, _ = image_size
    middle = (tracks.num_frames / 3.0, 2.0 * tracks.num_frames / 3.0)
    candidates = []
    for track_id in tracks.ids():
        frame, boxes = tracks.of(track_id)
        if len(frame) < min_frames:
            continue
        in_middle = (frame >= middle[0]) & (frame <= middle[1])
        offsets = np.abs((boxes[in_middle, 0] + boxes[in_middle, 2]) / 2 - width / 2) / (width / 2)
        centrality = float(np.clip(1.0 - offsets.mean(), 0.0, 1.0)) if in_middle.any() else 0.0
        walking = _walks(boxes, walking_displacement, walking_scale_change)
        score = (len(frame) / max(tracks.num_frames, 1) * (1.0 + walking_bonus * walking)
                 * (1.0 - centrality_weight * (1.0 - centrality)))
        candidates.append(SubjectTrack(track_id, frame, boxes, score, walking))
    if not candidates:
        return None
    subject = max(candidates, key=lambda c: (c.score, -c.track_id))
    if stitch_gap > 0 and stitch_gaps(tracks, subject.track_id, stitch_gap, stitch_iou):
        subject.frame, subject.boxes = tracks.of(subject.track_id)
    if merged_aspect > 0:
        subject.boxes = unmerged_boxes(subject.frame, subject.boxes, merged_aspect)
    return subject


def stitch_gaps(tracks: Tracks, subject_id: int, max_gap: int, min_iou: float) -> int:
    """Give the subject's track back the frames another track took from it inside a gap; returns how many.

    While a passer-by's blob merges with the subject's, ByteTrack may hand the merged detection to the
    passer-by's (predicted) track for a few frames and back afterwards: an identity switch there and back. In a
    gap of at most `max_gap` frames of the subject's track, a row of another track whose box overlaps the
    subject's box interpolated across the gap with IoU >= `min_iou` is the subject's (the best one per frame)."""
    from ragar_data.qa import box_iou

    frame, boxes = tracks.of(subject_id)
    if len(frame) < 2:
        return 0
    stitched = 0
    for before, after in zip(np.flatnonzero(np.diff(frame) > 1), np.flatnonzero(np.diff(frame) > 1) + 1):
        start, stop = int(frame[before]), int(frame[after])
        if stop - start - 1 > max_gap:
            continue
        for position in range(start + 1, stop):
            weight = (position - start) / (stop - start)
            expected = (1 - weight) * boxes[before] + weight * boxes[after]
            rows = np.flatnonzero((tracks.frame == position) & (tracks.track_id != subject_id))
            if rows.size == 0:
                continue
            overlaps = box_iou(expected[None], tracks.boxes[rows])[0]
            if overlaps.max() >= min_iou:
                tracks.track_id[rows[overlaps.argmax()]] = subject_id
                stitched += 1
    return stitched


def unmerged_boxes(frame: np.ndarray, boxes: np.ndarray, merged_aspect: float) -> np.ndarray:
    """Boxes with the merged frames (see the module docstring) replaced by the subject's own box."""
    boxes = np.asarray(boxes, np.float32).copy()
    widths, heights = boxes[:, 2] - boxes[:, 0], np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    aspects = widths / heights
    merged = aspects > merged_aspect * float(np.median(aspects))
    if not merged.any() or merged.all():
        return boxes
    centres = (boxes[:, 0] + boxes[:, 2]) / 2
    centre = np.interp(frame[merged], frame[~merged], centres[~merged])
    width = np.minimum(widths[merged], float(np.percentile(aspects[~merged], 90)) * heights[merged])
    boxes[merged, 0], boxes[merged, 2] = centre - width / 2, centre + width / 2
    return boxes
