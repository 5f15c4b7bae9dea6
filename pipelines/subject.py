"""Subject stage (select): which track is the subject.

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

Swaps: before scoring, the tracks entering and leaving each merge of blobs are re-paired by motion and size
(`relink_merges`), since ByteTrack may carry an id onto the other walker when they separate.

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
                   merged_aspect: float = 1.35, stitch_gap: int = 30, stitch_iou: float = 0.5,
                   relink_window: int = 12, allowed: set[int] | None = None) -> SubjectTrack | None:
    """The subject's track by the rule in the module docstring, or None when no track qualifies. Identity
    swaps at merges (see `relink_merges`) are undone first, and gap rows taken from other tracks (see
    `stitch_gaps`) are reassigned to the subject's id, in `tracks` itself. `allowed` (track ids, e.g. those
    a person detector verified) limits the candidates; None = every track."""
    width, _ = image_size
    if relink_window > 0:
        relink_merges(tracks, relink_window)
    middle = (tracks.num_frames / 3.0, 2.0 * tracks.num_frames / 3.0)
    candidates = []
    for track_id in tracks.ids():
        frame, boxes = tracks.of(track_id)
        if len(frame) < min_frames or (allowed is not None and track_id not in allowed):
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


def relink_merges(tracks: Tracks, window: int = 12, max_cost: float = 1.0, max_event: int = 60) -> int:
    """Undo identity swaps where two walkers' blobs merge; returns how many track continuations were relabelled.

    While a passer-by overlaps the subject in the image, background subtraction sees one blob: the frames of
    such a *merge* have fewer boxes than the frames just before and after it. ByteTrack follows one id through
    the blob and may, once the walkers separate, continue that id on the other walker (and start a new id for
    the first). At each merge, the tracks that enter it are paired with the tracks that leave it by
    constant-velocity motion and size: each entering track's centre, fitted over its last `window` frames and
    extrapolated to where the leaving track starts (and the leaving track's, fitted over its first `window`
    frames, back to where the entering one ends), in box heights, plus the change in box height; the pairing
    with the least total error (scipy's assignment solver) wins, and pairs erring by more than `max_cost` stay
    apart. Each leaving track then carries the id of the track it continues. The blob's rows go to the nearest
    entering walker (the tallest box: in front, so the blob is mostly that walker) when it has no row of its own
    there."""
    from scipy.optimize import linear_sum_assignment

    if window <= 0 or len(tracks.frame) == 0:
        return 0
    counts = np.bincount(tracks.frame, minlength=tracks.num_frames)
    relabelled = 0
    for start, stop in _merges(counts, max_event):
        entering = _track_ends(tracks, range(max(0, start - window), start), before=True)
        leaving = _track_ends(tracks, range(stop + 1, min(tracks.num_frames, stop + 1 + window)), before=False)
        if len(entering) < 2 or not leaving:
            continue
        entering_ids, leaving_ids = list(entering), list(leaving)
        cost = np.asarray([[_continuation_error(entering[e], leaving[j]) for j in leaving_ids] for e in entering_ids])
        rows, cols = linear_sum_assignment(np.minimum(cost, max_cost))
        pairs = {leaving_ids[c]: entering_ids[r] for r, c in zip(rows, cols) if cost[r, c] <= max_cost}
        relabelled += _continue_ids(tracks, pairs, leaving, stop)
        if pairs:
            front = max(set(pairs.values()), key=lambda e: entering[e][2])
            _give_blob(tracks, front, set(entering) | set(leaving), start, stop)
    return relabelled


def _merges(counts: np.ndarray, max_event: int) -> list[tuple[int, int]]:
    """(start, stop) frame runs with fewer rows than the frame before them, after which the count recovers."""
    runs, position = [], 1
    while position < len(counts):
        before = counts[position - 1]
        if counts[position] >= before or before < 2:
            position += 1
            continue
        stop = position
        while stop + 1 < len(counts) and counts[stop + 1] < before:
            stop += 1
        if stop + 1 < len(counts) and stop - position + 1 <= max_event:
            runs.append((position, stop))
        position = stop + 1
    return runs


def _track_ends(tracks: Tracks, frames: range, before: bool) -> dict[int, tuple]:
    """{id: (frames, centres (n, 2), median height)} of the tracks with rows in `frames`, restricted to those
    rows, for tracks present at the edge next to the merge (its last frame before it, or first after)."""
    inside = (tracks.frame >= frames.start) & (tracks.frame < frames.stop)
    edge = frames.stop - 1 if before else frames.start
    ends = {}
    for track_id in np.unique(tracks.track_id[inside]):
        rows = np.flatnonzero(inside & (tracks.track_id == track_id))
        frame = tracks.frame[rows]
        if abs(int(frame.max() if before else frame.min()) - edge) > 2:
            continue
        boxes = tracks.boxes[rows]
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        ends[int(track_id)] = (frame, centres, float(np.median(boxes[:, 3] - boxes[:, 1])))
    return ends


def _extrapolate(frames: np.ndarray, centres: np.ndarray, at: int) -> np.ndarray:
    if len(frames) < 2 or frames.min() == frames.max():
        return centres[np.argmin(np.abs(frames - at))]
    slope, intercept = np.polyfit(frames.astype(np.float64), centres.astype(np.float64), 1)
    return slope * at + intercept


def _continuation_error(entering: tuple, leaving: tuple) -> float:
    """How badly `leaving` continues `entering`: the mean distance, in box heights, between each side's motion
    extrapolated across the merge and the other side's position there, plus the change of box height
    (|log ratio|: walkers at different depths differ in size, which a merge does not change)."""
    (in_frames, in_centres, in_height), (out_frames, out_centres, out_height) = entering, leaving
    last, first = int(in_frames.max()), int(out_frames.min())
    forward = np.linalg.norm(_extrapolate(in_frames, in_centres, first) - out_centres[np.argmin(out_frames)])
    backward = np.linalg.norm(_extrapolate(out_frames, out_centres, last) - in_centres[np.argmax(in_frames)])
    motion = (forward + backward) / 2 / max(1.0, (in_height + out_height) / 2)
    return float(motion + abs(np.log(max(out_height, 1.0) / max(in_height, 1.0))))


def _continue_ids(tracks: Tracks, pairs: dict[int, int], leaving: dict, stop: int) -> int:
    """Rows after the merge of each paired leaving track take the id it continues; an unpaired leaving track
    whose id is taken that way gets a new one."""
    later = tracks.frame > stop
    moves = {old: new for old, new in pairs.items() if old != new}
    targets = set(moves.values())
    for track_id in leaving:
        if track_id not in pairs and track_id in targets:
            moves[track_id] = int(tracks.track_id.max()) + 1 + len(moves)
    selected = {old: later & (tracks.track_id == old) for old in moves}  # all masks first: ids may swap
    for old, rows in selected.items():
        tracks.track_id[rows] = moves[old]
    return sum(1 for old in moves if old in pairs)


def _give_blob(tracks: Tracks, front: int, involved: set, start: int, stop: int) -> None:
    """Frames start..stop of the merge where `front` has no row: the merge's row (of a track in `involved`)
    becomes front's."""
    for position in range(start, stop + 1):
        rows = np.flatnonzero(tracks.frame == position)
        if (tracks.track_id[rows] == front).any():
            continue
        blob = [r for r in rows if int(tracks.track_id[r]) in involved]
        if blob:
            tracks.track_id[blob[0]] = front


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
