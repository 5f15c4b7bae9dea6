"""Person verification: which tracks of a clip are people, by a person detector looking at each track's box.

Owns: whether verification runs (`active_verification`: a preset's `verify.backend` runs when its model files
are present, or always when `verify.required`), sampling each track's frames and running the detector on the
track's box there (batched over tracks), the verdict per track, the subject choice among person tracks
(`choose_subject`), the per-frame whole-person check of the subject's frames (`check_frames`), joining fragments of the subject's person (a head tracked apart from the body), and the
person masks that keep people out of camera plates. Does not own the weights-free rule among tracks
(`subject.py`), the wording of quality reasons (`quality.py`) or the detector (`backends/blazepose_detect.py`).

A person detected in a track's window belongs to the track when its score is at least `min_score` and its hip
centre (BlazePose's detector keypoint 0) lies inside the track's box: a table, or a head alone, holds no hip
centre. A track is a person when that happens on at least `min_person_fraction` of its sampled frames; only
person tracks can be the subject. When no track is a person, the weights-free choice is kept so the row can be
inspected, and the quality filter fails it ("not a person").

Fragments: background subtraction may split one person into a head track and a body track.
- Two tracks that are not people alone, stacked one above the other on most frames they share, whose union
  the detector sees as a person, become one track (`join_split_people`): the detector needs the face and the
  hips in one window, which neither part gives alone.
- A track that is not a person, whose box lies inside the subject's person region (the detector's ROI: the
  full-body circle x 1.25) and is shorter than the subject's box on most sampled frames they share, and which
  moves with the subject, is a fragment of the subject (`join_fragments`): on the frames where both exist, the
  subject's box becomes the union of both.
Ends: the subject track's leading and trailing frames where its box holds no person are cut
(`trim_to_person`): a tracker may start a track on a table and hand it to the walker who passes it.
Several people: the sampled frames where the final subject box holds the hip centres of two or more people.
Every frame (`check_frames`, when `verify.frame_check`): the landmark model looks at the subject's box on each of
its frames. Leading and trailing frames where it sees no person are cut (`trim_to_checked`); a frame counts as
showing the person whole when the model sees a person whose head and a foot are present inside the image and
the box keeps off the image border (`whole_people`, `boxes_inside`). The quality stage leaves the other frames,
and those whose silhouette does not match the model's person mask, out of the silhouettes
(`quality.rejected_frames`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from functools import partial
from types import SimpleNamespace
from typing import Callable, Protocol

import numpy as np

from ragar_data.errors import ModelUnavailable
from ragar_data.pipelines.config import PipelineConfig, VerifyConfig, resolve_backend
from ragar_data.pipelines.subject import SubjectTrack, relink_merges, select_subject
from ragar_data.pipelines.track import Tracks

VERIFIERS = {"blazepose": "ragar_data.pipelines.backends.blazepose:BlazePoseVerifier"}  # backend -> class
VERIFIER_MODELS = {"blazepose": ("blazepose", "ai_edge_litert")}  # backend -> (registry entry, module it needs)
FRAGMENT_SHARE = 0.8  # sampled frames on which a fragment lies inside the subject's person region
FRAGMENT_DRIFT = 0.25  # how far (subject heights) a fragment may drift sideways relative to the subject
TRIM_IOU = 0.5  # see trim_to_person
TRIM_STEPS = 4  # bisection steps that place each edge of the person's frames between two sampled frames
SEVERAL_APART = 0.25  # hip centres closer than this many box heights are one person seen twice
WIDE_WINDOW = 5 / 3  # the second detector window, relative to the first (BlazePoseDetector's 1.5 -> 2.5 box sides)
BATCH_FRAMES = 8  # full-resolution frames stacked per detector call (about 50 MB at 1080p)
ROI_SIZE = 256  # the landmark model's input side (its person mask's side)
HEAD = (0,)  # BlazePose landmarks: the nose ...
FEET = (27, 28, 29, 30)  # ... and the ankles and heels (one foot present is enough: the other may be hidden)
BOX_MARGIN = 1.0  # pixels: a subject box this close to the image border holds a cut person (see boxes_inside)


class PersonDetector(Protocol):
    """What verification needs of a detector (`BlazePoseDetector` has both)."""

    def detect_in_boxes(self, frames: np.ndarray, boxes: np.ndarray) -> list:
        """frames (B, H, W, 3) RGB uint8, boxes (B, 4) -> B objects with `boxes` (N, 5) x1, y1, x2, y2, score,
        `keypoints` (N, K, 2) pixels (keypoint 0 = hip centre) and `rois` (N, 4) centre x, centre y, side, angle."""

    def detect_people(self, frames: np.ndarray) -> list:
        """The same for whole frames."""

    def landmarks_in_boxes(self, frames: np.ndarray, boxes: np.ndarray):
        """frames (B, H, W, 3), boxes (B, 4) -> the landmark model's `LandmarkResult` on each box's ROI
        (backends/blazepose.py): landmarks (B, 33, 5), pose_flag (B,), rois (B, 4), mask_logits (B, 256, 256)."""


# -------------------------------------------------------------------------------------------- switching on
def _missing(backend: str, models_dir) -> str | None:
    """Why `backend` cannot run here (a missing model file or package), or None."""
    from ragar_data import weights

    entry, module = VERIFIER_MODELS[backend]
    spec = weights.get_spec(entry)
    missing = spec.missing_files(weights.resolve_models_dir(models_dir))
    if missing:
        return f"missing {', '.join(str(p) for p in missing)} (`ragar-data models download {entry}` gets them)"
    if importlib.util.find_spec(module) is None:
        return f"the Python package {module} is not installed"
    return None


def active_verification(config: PipelineConfig, models_dir=None) -> PipelineConfig:
    """`config` with `verify.backend` cleared when verification is optional and cannot run here (its files or
    package are missing): the run then hashes and extracts as a preset without verification. A required
    verification that cannot run is an error naming what is missing."""
    backend = config.verify.backend
    if backend is None:
        return config
    if backend not in VERIFIERS:
        from ragar_data.errors import ConfigError

        raise ConfigError(f"unknown verify backend {backend!r}; known: {', '.join(sorted(VERIFIERS))}")
    problem = _missing(backend, models_dir)
    if problem is None:
        return config
    if config.verify.required:
        raise ModelUnavailable(f"person verification ({backend}) is required by this preset: {problem}")
    return replace(config, verify=replace(config.verify, backend=None))


def _preset_backend(preset: str | None) -> str | None:
    """The verify backend of the built-in preset named `preset` (None when there is no such preset or it has
    none): `active_verification` clears the backend of a run whose model files are missing."""
    from ragar_data.errors import RagarDataError
    from ragar_data.pipelines.config import load_preset

    try:
        return load_preset(preset).verify.backend if preset else None
    except (RagarDataError, OSError):
        return None


def build_verifier(config: VerifyConfig, models_dir=None, device: str = "cpu",
                   preset: str | None = None) -> tuple[object | None, str]:
    """The person detector for `config` (None when verification is off, or optional and unable to run here)
    and the run's line about it. `preset` (the run's preset name) lets the line of a run whose verification
    `active_verification` switched off name the missing files and the command that gets them."""
    problem = _missing(config.backend, models_dir) if config.backend in VERIFIER_MODELS else None
    if problem and config.required:
        raise ModelUnavailable(f"person verification ({config.backend}) is required by this preset: {problem}")
    if config.backend is None:
        wanted = _preset_backend(preset)
        problem = _missing(wanted, models_dir) if wanted in VERIFIER_MODELS else None
        if problem:
            return None, f"verify: no person verification ({wanted} cannot run here: {problem})"
        return None, "verify: no person verification (off in this preset)"
    if problem:
        return None, f"verify: no person verification ({config.backend} cannot run here: {problem})"
    detector = resolve_backend(VERIFIERS, config.backend, "verify")(models_dir=models_dir, device=device)
    return detector, (f"verify: person verification with {config.backend} on {config.frames_per_track} frames "
                      f"per track (a person on at least {config.min_person_fraction:.0%} of them)")


# ----------------------------------------------------------------------------------------------- verdicts
@dataclass
class TrackVerdict:
    """What the detector saw in one track's box on its sampled frames."""

    track_id: int
    sampled: int = 0
    person_frames: int = 0  # frames with at least one person belonging to the track
    several_frames: int = 0  # frames whose subject box holds two or more people (set for the subject)
    regions: dict = field(default_factory=dict)  # clip position -> (4,) x1, y1, x2, y2 of the best person's ROI
    hips: dict = field(default_factory=dict)  # clip position -> (N, 2) hip centres of every person seen there

    @property
    def person_fraction(self) -> float:
        return self.person_frames / self.sampled if self.sampled else 0.0

    @property
    def several_fraction(self) -> float:
        return self.several_frames / self.sampled if self.sampled else 0.0


@dataclass
class Verification:
    """One clip's verdicts and what the subject choice made of them (read by the quality filter)."""

    verdicts: dict  # track id -> TrackVerdict
    people: set  # ids of person tracks
    joined: list = field(default_factory=list)  # fragment track ids joined into the subject's boxes
    trimmed: int = 0  # leading and trailing subject frames cut because no person was there
    frames: FrameChecks | None = None  # the per-frame whole-person check of the subject's frames


@dataclass
class FrameChecks:
    """The landmark model on each frame of the subject's track (row i = subject row i): `whole` (T',) bool, a
    person whose head and a foot are present inside the image; `person` (T',) bool, a person at all; `rois` (T', 4) the ROIs it looked at;
    `person_masks` (T', 8192) its person mask (probability > 0.5) in ROI space (256 x 256), bit-packed. A frame
    the model did not look at (`checked` False, see `check_frames`) holds its neighbours' verdicts and the nearest
    checked frame's mask, with that frame's ROI moved to its own box."""

    whole: np.ndarray
    rois: np.ndarray
    person_masks: np.ndarray
    person: np.ndarray  # (T',) bool: the model sees a person at all (pose flag >= min_pose_flag)
    checked: np.ndarray | None = None  # (T',) bool: the model looked at this frame (None: at every frame)

    def person_mask(self, row: int) -> np.ndarray:
        return np.unpackbits(self.person_masks[row])[:ROI_SIZE * ROI_SIZE].reshape(ROI_SIZE, ROI_SIZE).astype(bool)


def sample_rows(count: int, samples: int) -> np.ndarray:
    """Indices of at most `samples` rows spread evenly over `count` rows (first and last included)."""
    return np.unique(np.linspace(0, count - 1, min(count, samples)).round().astype(int)) if count else np.zeros(0, int)


def roi_boxes(rois: np.ndarray) -> np.ndarray:
    """(N, 4) ROIs centre x, centre y, side, angle -> (N, 4) axis-aligned squares x1, y1, x2, y2 (unrotated)."""
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    half = rois[:, 2:3] / 2
    return np.concatenate([rois[:, :2] - half, rois[:, :2] + half], axis=1)


def _inside(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return (points[:, 0] >= box[0]) & (points[:, 0] <= box[2]) & (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])


def _grown(boxes: np.ndarray, factor: float) -> np.ndarray:
    centres, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * factor
    return np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)


def _merged(tight, wide=None) -> SimpleNamespace:
    """The people of the tight window and of the wide one (when it ran) as one (boxes (N, 5), keypoints
    (N, 4, 2), rois (N, 4)); `widened`: the wide window's people are in."""
    parts = (tight,) if wide is None else (tight, wide)
    return SimpleNamespace(widened=wide is not None, **{
        name: np.concatenate([np.asarray(getattr(part, name)).reshape(-1, *shape) for part in parts])
        for name, shape in (("boxes", (5,)), ("keypoints", (4, 2)), ("rois", (4,)))})


def _holds_person(people, box: np.ndarray, min_score: float) -> bool:
    """A person scoring at least `min_score` whose hip centre lies inside `box`."""
    scores = np.asarray(people.boxes, np.float64).reshape(-1, 5)[:, 4]
    hips = np.asarray(people.keypoints, np.float64).reshape(-1, 4, 2)[scores >= min_score, 0]
    return bool(_inside(hips, box).any())


def window_regions(boxes: np.ndarray, scale: float, image_size: tuple[int, int]) -> np.ndarray:
    """(B, 4) int x0, y0, x1, y1: the pixels a model reads in the upright square window of side `scale` times
    each box's long side about its centre (`rois_from_boxes`), 2 pixels more for bilinear sampling, inside the
    image."""
    from ragar_data.pipelines.backends.blazepose_detect import rois_from_boxes

    rois = rois_from_boxes(boxes, scale)
    centres, half = rois[:, :2], rois[:, 2:3] / 2
    low, high = np.floor(centres - half).astype(int) - 2, np.ceil(centres + half).astype(int) + 2
    width, height = image_size
    return np.concatenate([np.clip(low, 0, None), np.minimum(high, [width, height])], axis=1)


def _frames_at(positions: list, boxes: np.ndarray, frame_rgb, scale: float | None) -> np.ndarray:
    """(B, H, W, 3) full-resolution RGB frames at `positions`. From a `decode.FrameReader`, given the `scale` of
    the model's window around each box (the detector's `window_scales`), only each window's pixels are converted
    from the decoder's planes and the rest of the frame is left unset: the model reads its window only."""
    crop = getattr(frame_rgb, "rgb_crop", None)
    if crop is None or scale is None:
        whole = getattr(frame_rgb, "rgb", frame_rgb)
        return np.stack([whole(int(position)) for position in positions])
    size = (frame_rgb.info.width, frame_rgb.info.height)
    frames = np.empty((len(positions), size[1], size[0], 3), np.uint8)
    for frame, position, (x0, y0, x1, y1) in zip(frames, positions, window_regions(boxes, scale, size)):
        frame[y0:y1, x0:x1] = crop(int(position), x0, y0, x1, y1)
    return frames


def _window_scale(detector: PersonDetector, model: str) -> float | None:
    return getattr(detector, "window_scales", {}).get(model)


def _people_in(positions: list, boxes: np.ndarray, frame_rgb, detector: PersonDetector) -> list:
    """The detector's people in each box's own window, on the frames at `positions` (one call)."""
    return detector.detect_in_boxes(_frames_at(positions, boxes, frame_rgb, _window_scale(detector, "detect")),
                                    boxes)


def _detect(items: list, frame_rgb, detector: PersonDetector, min_score: float | None = None) -> list:
    """The detector on (position, box) items, `BATCH_FRAMES` full frames per call, in the detector's own window
    around each box and in one `WIDE_WINDOW` times larger, the people of both together: in the tight window
    another face may outscore a face seen head-on (the detector keeps one person per face region; a walker
    facing the camera needs the wide window for the person's region even where the tight one holds a person).
    With `min_score`, the wide window only where the tight one shows no person of the box (`_holds_person`):
    whether each item holds a person is the same, and `_widen` adds the wide window's people to the others
    (`widened` says which items have them). `frame_rgb`: position -> RGB frame, or a `decode.FrameReader`."""
    found = []
    for start in range(0, len(items), BATCH_FRAMES):
        positions = [position for position, _ in items[start:start + BATCH_FRAMES]]
        boxes = np.stack([box for _, box in items[start:start + BATCH_FRAMES]]).astype(np.float32)
        tight = _people_in(positions, boxes, frame_rgb, detector)
        wide = [i for i, people in enumerate(tight)
                if min_score is None or not _holds_person(people, boxes[i], min_score)]
        seen = dict(zip(wide, _people_in([positions[i] for i in wide], _grown(boxes[wide], WIDE_WINDOW),
                                         frame_rgb, detector))) if wide else {}
        found += [_merged(people, seen.get(i)) for i, people in enumerate(tight)]
    return found


def _widen(items: list, found: list, frame_rgb, detector: PersonDetector) -> list:
    """`found` (from `_detect` with `min_score`) with the wide window's people added where they were left out:
    what `_detect` without `min_score` gives."""
    missing, widened = [i for i, people in enumerate(found) if not people.widened], list(found)
    for start in range(0, len(missing), BATCH_FRAMES):
        rows = missing[start:start + BATCH_FRAMES]
        boxes = np.stack([items[i][1] for i in rows]).astype(np.float32)
        wide = _people_in([items[i][0] for i in rows], _grown(boxes, WIDE_WINDOW), frame_rgb, detector)
        for i, people in zip(rows, wide):
            widened[i] = _merged(found[i], people)
    return widened


def _verdict(track_id: int, items: list, found: list, min_score: float) -> TrackVerdict:
    """A track's verdict from the detector's people in its box on each sampled (position, box)."""
    verdict = TrackVerdict(track_id, sampled=len(items))
    for (position, box), people in zip(items, found):
        scores = np.asarray(people.boxes, np.float64).reshape(-1, 5)[:, 4]
        confident = np.flatnonzero(scores >= min_score)
        hips = np.asarray(people.keypoints, np.float64)[confident, 0] if len(confident) else np.zeros((0, 2))
        verdict.hips[position] = hips
        inside = confident[_inside(hips, box)]
        if len(inside):
            verdict.person_frames += 1
            best = inside[np.argmax(scores[inside])]
            verdict.regions[position] = roi_boxes(np.asarray(people.rois)[best:best + 1])[0]
    return verdict


def verify_tracks(tracks: Tracks, frame_rgb: Callable[[int], np.ndarray], detector: PersonDetector,
                  config: VerifyConfig, min_frames: int, samples: dict | None = None) -> dict[int, TrackVerdict]:
    """Verdicts of the `max_tracks` longest tracks with at least `min_frames` frames; `frame_rgb(position)` gives
    a full-resolution RGB frame of the clip. The detector sees every sampled (frame, box) in batches, in the
    wide window only where the tight one shows no person (`_detect` with `min_score`): whether a track is a
    person is decided as with both windows everywhere, and `subject_verdict` completes the subject's verdict,
    the only one whose regions and hips are read. `samples` (given): track id -> (items, found) is filled."""
    lengths = {t: int((tracks.track_id == t).sum()) for t in tracks.ids()}
    checked = sorted((t for t, n in lengths.items() if n >= min_frames), key=lambda t: (-lengths[t], t))
    checked = checked[:config.max_tracks]
    items = {}
    for track_id in checked:
        frame, boxes = tracks.of(track_id)
        items[track_id] = [(int(frame[r]), boxes[r]) for r in sample_rows(len(frame), config.frames_per_track)]
    flat = [item for track_id in checked for item in items[track_id]]
    found, verdicts, start = _detect(flat, frame_rgb, detector, config.min_score), {}, 0
    for track_id in checked:
        count = len(items[track_id])
        verdicts[track_id] = _verdict(track_id, items[track_id], found[start:start + count], config.min_score)
        if samples is not None:
            samples[track_id] = (items[track_id], found[start:start + count])
        start += count
    return verdicts


def subject_verdict(track_id: int, samples: dict, frame_rgb, detector: PersonDetector,
                    min_score: float) -> TrackVerdict:
    """The verdict of track `track_id` from its `verify_tracks` samples with the wide window's people added
    everywhere (`_widen`): what looking in both windows on every sample gives."""
    items, found = samples[track_id]
    return _verdict(track_id, items, _widen(items, found, frame_rgb, detector), min_score)


# ------------------------------------------------------------------------------------------ split people
def _stacked(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """(n,) bool: boxes of two tracks on the same frames look like parts of one body: they overlap
    horizontally by half the narrower width and are at most the taller height apart vertically (a coat
    the colour of the background may leave only the head and the legs)."""
    overlap = np.minimum(upper[:, 2], lower[:, 2]) - np.maximum(upper[:, 0], lower[:, 0])
    width = np.minimum(upper[:, 2] - upper[:, 0], lower[:, 2] - lower[:, 0])
    gap = np.maximum(upper[:, 1], lower[:, 1]) - np.minimum(upper[:, 3], lower[:, 3])
    height = np.maximum(upper[:, 3] - upper[:, 1], lower[:, 3] - lower[:, 1])
    return (overlap >= 0.5 * width) & (gap <= height)


def merge_tracks(tracks: Tracks, keep: int, other: int) -> None:
    """Track `other` becomes part of `keep`, in `tracks`: on frames both have, `keep`'s box becomes the union of
    both and `other`'s row goes; elsewhere `other`'s rows take `keep`'s id."""
    rows_keep = {int(tracks.frame[r]): r for r in np.flatnonzero(tracks.track_id == keep)}
    drop = []
    for row in np.flatnonzero(tracks.track_id == other):
        mine = rows_keep.get(int(tracks.frame[row]))
        if mine is None:
            tracks.track_id[row] = keep
            continue
        tracks.boxes[mine, :2] = np.minimum(tracks.boxes[mine, :2], tracks.boxes[row, :2])
        tracks.boxes[mine, 2:] = np.maximum(tracks.boxes[mine, 2:], tracks.boxes[row, 2:])
        drop.append(row)
    kept = np.ones(len(tracks.frame), bool)
    kept[drop] = False
    tracks.frame, tracks.track_id = tracks.frame[kept], tracks.track_id[kept]
    tracks.boxes, tracks.scores = tracks.boxes[kept], tracks.scores[kept]


def join_split_people(tracks: Tracks, frame_rgb: Callable, detector: PersonDetector, verdicts: dict,
                      config: VerifyConfig, min_frames: int) -> list[tuple[int, int]]:
    """Two tracks that are not people alone (a head and a body that background subtraction split) but whose
    boxes are stacked on most shared frames (`_stacked`) and whose union the detector sees as a person, become
    one track (`merge_tracks`, the longer keeps its id) with the union's verdict; returns the (kept, merged)
    pairs. Each track joins at most once."""
    alone = [t for t, v in verdicts.items() if v.person_fraction < config.min_person_fraction]
    joined, used = [], set()
    for position, first in enumerate(alone):
        for second in alone[position + 1:]:
            if first in used or second in used:
                continue
            frames_a, boxes_a = tracks.of(first)
            frames_b, boxes_b = tracks.of(second)
            shared, rows_a, rows_b = np.intersect1d(frames_a, frames_b, return_indices=True)
            if len(shared) < min_frames or _stacked(boxes_a[rows_a], boxes_b[rows_b]).mean() < 0.8:
                continue
            union = np.concatenate([np.minimum(boxes_a[rows_a, :2], boxes_b[rows_b, :2]),
                                    np.maximum(boxes_a[rows_a, 2:], boxes_b[rows_b, 2:])], axis=1)
            items = [(int(shared[r]), union[r]) for r in sample_rows(len(shared), config.frames_per_track)]
            keep, other = (first, second) if len(frames_a) >= len(frames_b) else (second, first)
            verdict = _verdict(keep, items, _detect(items, frame_rgb, detector), config.min_score)
            if verdict.person_fraction < config.min_person_fraction:
                continue
            merge_tracks(tracks, keep, other)
            verdicts[keep] = verdict
            verdicts.pop(other)
            used |= {first, second}
            joined.append((keep, other))
    return joined


# --------------------------------------------------------------------------------------- subject choice
def choose_subject(tracks: Tracks, image_size: tuple[int, int], frame_rgb: Callable[[int], np.ndarray],
                   detector: PersonDetector | None, config: PipelineConfig) -> tuple[SubjectTrack | None,
                                                                                      Verification | None]:
    """The subject track and the clip's verification (None without a detector: the weights-free choice)."""
    select = vars(config.select)
    if detector is None:
        return select_subject(tracks, image_size, **select), None
    if select["relink_window"] > 0:  # before verification: verdicts are per track id
        relink_merges(tracks, select["relink_window"])
    samples = {}
    verdicts = verify_tracks(tracks, frame_rgb, detector, config.verify, config.select.min_frames, samples)
    split = join_split_people(tracks, frame_rgb, detector, verdicts, config.verify, config.select.min_frames)
    for joined in split:  # their verdicts are the union's now, seen in both windows
        samples.pop(joined[0], None)
    people = {t for t, v in verdicts.items() if v.person_fraction >= config.verify.min_person_fraction}
    subject = select_subject(tracks, image_size, **{**select, "relink_window": 0}, allowed=people or None)
    if subject is not None and subject.track_id in samples:
        verdicts[subject.track_id] = subject_verdict(subject.track_id, samples, frame_rgb, detector,
                                                     config.verify.min_score)
    verification = Verification(verdicts, people, [other for _, other in split])
    if subject is not None and subject.track_id in people:
        verification.joined += join_fragments(tracks, subject, verification, config.verify.fragment_cover)
        verification.trimmed = trim_to_person(subject, verdicts[subject.track_id], frame_rgb, detector,
                                              config.verify.min_score)
        count_several(verdicts[subject.track_id], subject)
        if config.verify.frame_check:
            verification.frames = check_frames(subject, frame_rgb, detector, config.verify)
            verification.trimmed += trim_to_checked(subject, verification.frames)
    return subject, verification


# --------------------------------------------------------------------------------- per-frame whole person
def whole_people(landmarks: np.ndarray, pose_flag: np.ndarray, image_size: tuple[int, int],
                 config: VerifyConfig) -> np.ndarray:
    """(B,) bool: the landmark model sees a person (pose flag >= `min_pose_flag`) whose head (nose) and at
    least one foot (ankle or heel) are present (presence >= `min_landmark_presence`) and inside the image.
    landmarks (B, 33, 5) x, y, z, visibility, presence."""
    width, height = image_size

    def seen(points: np.ndarray) -> np.ndarray:
        inside = (points[..., 0] >= 0) & (points[..., 0] < width) & (points[..., 1] >= 0) & (points[..., 1] < height)
        return inside & (points[..., 4] >= config.min_landmark_presence)

    landmarks = np.asarray(landmarks, np.float64)
    head, feet = seen(landmarks[:, HEAD]).all(axis=1), seen(landmarks[:, FEET]).any(axis=1)
    return (np.asarray(pose_flag) >= config.min_pose_flag) & head & feet


def boxes_inside(boxes: np.ndarray, image_size: tuple[int, int], margin: float = BOX_MARGIN) -> np.ndarray:
    """(B,) bool: each box x1, y1, x2, y2 keeps `margin` pixels from every image border (a box that reaches the
    border holds a person cut by it, even where the landmark model guesses the hidden feet inside the image)."""
    width, height = image_size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return ((boxes[:, 0] >= margin) & (boxes[:, 1] >= margin) & (boxes[:, 2] <= width - margin)
            & (boxes[:, 3] <= height - margin))


def _landmark_rows(rows: np.ndarray, subject: SubjectTrack, frame_rgb: Callable, detector: PersonDetector,
                   config: VerifyConfig) -> tuple:
    """The landmark model on the subject's box at `rows` (ascending, not empty), `BATCH_FRAMES` frames per call,
    in clip order (a clip read again from the video is decoded once): (seen whole, person, rois, packed person
    masks, the image size)."""
    seen, person, rois, masks, size = [], [], [], [], None
    scale = _window_scale(detector, "landmarks")
    for start in range(0, len(rows), BATCH_FRAMES):
        batch = rows[start:start + BATCH_FRAMES]
        frames = _frames_at(subject.frame[batch].tolist(), subject.boxes[batch], frame_rgb, scale)
        result = detector.landmarks_in_boxes(frames, subject.boxes[batch])
        size = (frames.shape[2], frames.shape[1])
        seen.append(whole_people(result.landmarks, result.pose_flag, size, config))
        person.append(np.asarray(result.pose_flag) >= config.min_pose_flag)
        rois.append(np.asarray(result.rois, np.float64).reshape(-1, 4))
        masks.append(np.packbits(np.asarray(result.mask_logits).reshape(len(frames), -1) > 0, axis=1))
    return np.concatenate(seen), np.concatenate(person), np.concatenate(rois), np.concatenate(masks), size


def _differing_gaps(checked: np.ndarray, verdicts: np.ndarray) -> np.ndarray:
    """Unchecked rows lying between two consecutive checked rows whose verdicts (rows of `verdicts`) differ."""
    ends = np.flatnonzero(checked)
    rows = [np.arange(a + 1, b) for a, b in zip(ends[:-1], ends[1:])
            if b - a > 1 and (verdicts[a] != verdicts[b]).any()]
    return np.concatenate(rows).astype(int) if rows else np.zeros(0, int)


def _nearest_checked(checked: np.ndarray) -> np.ndarray:
    """(T',) for each row the nearest checked row (the earlier one on ties)."""
    ends = np.flatnonzero(checked)
    after = np.clip(np.searchsorted(ends, np.arange(len(checked))), 0, len(ends) - 1)
    before = np.clip(after - 1, 0, len(ends) - 1)
    rows = np.arange(len(checked))
    use_before = np.abs(rows - ends[before]) <= np.abs(ends[after] - rows)
    return np.where(use_before, ends[before], ends[after])


def _moved_rois(rois: np.ndarray, boxes: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Each row's ROI from its source row's: shifted by the box centre's motion, scaled by the box height's."""
    boxes = np.asarray(boxes, np.float64)
    centres, heights = (boxes[:, :2] + boxes[:, 2:]) / 2, np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    moved = rois[source].copy()
    moved[:, :2] += centres - centres[source]
    moved[:, 2] *= heights / heights[source]
    return moved


def check_frames(subject: SubjectTrack, frame_rgb: Callable, detector: PersonDetector,
                 config: VerifyConfig) -> FrameChecks:
    """The landmark model on the subject's box every `frame_stride` frames (first and last included), then on
    every frame between two checked ones whose verdicts (a person at all; a whole person) differ: the edges of
    the frames with a (whole) person are placed exactly as by checking every frame. A frame left unchecked lies
    between two checked frames that agree, and takes their verdict; it is `whole` when they saw a whole person
    and its own box keeps off the image border (`boxes_inside`). Its silhouette is compared with the nearest
    checked frame's person mask, moved and scaled with the subject's box (`quality.mask_agreement`)."""
    count = len(subject.frame)
    if count == 0:
        return FrameChecks(np.zeros(0, bool), np.zeros((0, 4)), np.zeros((0, ROI_SIZE * ROI_SIZE // 8), np.uint8),
                           np.zeros(0, bool), np.zeros(0, bool))
    seen, person = np.zeros(count, bool), np.zeros(count, bool)
    rois, masks = np.zeros((count, 4)), np.zeros((count, ROI_SIZE * ROI_SIZE // 8), np.uint8)
    checked, size = np.zeros(count, bool), None

    def look(rows: np.ndarray) -> None:
        nonlocal size
        if len(rows):
            seen[rows], person[rows], rois[rows], masks[rows], size = _landmark_rows(rows, subject, frame_rgb,
                                                                                   detector, config)
            checked[rows] = True

    look(np.unique(np.r_[np.arange(0, count, config.frame_stride), count - 1]))
    look(_differing_gaps(checked, np.stack([seen, person], axis=1)))
    source = _nearest_checked(checked)
    whole = seen[source] & boxes_inside(subject.boxes, size)
    rois = np.where(checked[:, None], rois, _moved_rois(rois, subject.boxes, source))
    return FrameChecks(whole, rois, masks[source], person[source], checked)


def trim_to_checked(subject: SubjectTrack, checks: FrameChecks) -> int:
    """Cut the subject's leading and trailing frames on which the landmark model sees no person in the box at
    all (the track began on floor tape or half a walker before the walker filled its box), from `subject` and
    `checks` alike; returns how many were cut. Frames without a person between two with one stay (and are left
    out of the silhouettes, `quality.rejected_frames`)."""
    seen = np.flatnonzero(checks.person)
    if len(seen) == 0:
        return 0
    rows = slice(int(seen[0]), int(seen[-1]) + 1)
    cut = len(subject.frame) - (rows.stop - rows.start)
    subject.frame, subject.boxes = subject.frame[rows], subject.boxes[rows]
    checks.whole, checks.rois = checks.whole[rows], checks.rois[rows]
    checks.person_masks, checks.person = checks.person_masks[rows], checks.person[rows]
    if checks.checked is not None:
        checks.checked = checks.checked[rows]
    return cut


def _is_person(subject: SubjectTrack, row: int, frame_rgb: Callable, detector: PersonDetector,
               min_score: float) -> bool:
    box = subject.boxes[row]
    people = _detect([(int(subject.frame[row]), box)], frame_rgb, detector)[0]
    scores = np.asarray(people.boxes, np.float64).reshape(-1, 5)[:, 4]
    hips = np.asarray(people.keypoints, np.float64)[scores >= min_score, 0] if (scores >= min_score).any() else []
    return bool(len(hips) and _inside(hips, box).any())


def _moved(box: np.ndarray, other: np.ndarray) -> bool:
    """Two boxes of a track overlap by less than `TRIM_IOU`: the track moved onto or off something else."""
    low, high = np.maximum(box[:2], other[:2]), np.minimum(box[2:], other[2:])
    inter = float(np.prod(np.clip(high - low, 0, None)))
    union = float(np.prod(box[2:] - box[:2]) + np.prod(other[2:] - other[:2])) - inter
    return inter < TRIM_IOU * max(union, 1e-6)


def _person_edge(inside: int, outside: int, person: Callable[[int], bool], steps: int) -> int:
    """Bisect between row `inside` (a person) and row `outside` (none), at most `steps` detector calls: the row
    nearest `outside` found to hold a person."""
    for _ in range(steps):
        if abs(outside - inside) <= 1:
            break
        middle = (inside + outside) // 2
        inside, outside = (middle, outside) if person(middle) else (inside, middle)
    return inside


def trim_to_person(subject: SubjectTrack, verdict: TrackVerdict, frame_rgb: Callable, detector: PersonDetector,
                   min_score: float, steps: int = TRIM_STEPS) -> int:
    """Cut the subject's leading and trailing frames where its box holds no person (a track that starts on a
    table or ends on a corner blob before or after the walker); returns how many frames were cut. An end is cut
    only when the last sampled box without a person overlaps the nearest one with a person by IoU < `TRIM_IOU`
    (the track moved from another object onto the person); the edge lies
    between the last sampled frame without a person and the first with one (and likewise at the end), found by
    bisection with at most `steps` more detector calls on each side."""
    rows = {int(p): i for i, p in enumerate(subject.frame)}
    sampled = sorted(p for p in verdict.hips if p in rows)
    # against the final boxes: `select_subject` may have moved a merged box off the person
    positive = [p for p in sampled if _inside(verdict.hips[p], subject.boxes[rows[p]]).any()]
    if not positive:
        return 0
    person = partial(_is_person, subject, frame_rgb=frame_rgb, detector=detector, min_score=min_score)
    start, stop = rows[positive[0]], rows[positive[-1]]
    before, after = [p for p in sampled if p < positive[0]], [p for p in sampled if p > positive[-1]]
    # a box that stays where the person's is (a walker the detector missed, far away or head-on) is not cut
    before = before if before and _moved(subject.boxes[rows[before[-1]]], subject.boxes[start]) else []
    after = after if after and _moved(subject.boxes[rows[after[0]]], subject.boxes[stop]) else []
    # rows[before[-1]] and rows[after[0]] hold no person, `start` and `stop` do
    start = _person_edge(start, rows[before[-1]], person, steps) if before else 0
    stop = _person_edge(stop, rows[after[0]], person, steps) if after else len(subject.frame) - 1
    cut = len(subject.frame) - (stop + 1 - start)
    subject.frame, subject.boxes = subject.frame[start:stop + 1], subject.boxes[start:stop + 1]
    return cut


def count_several(verdict: TrackVerdict, subject: SubjectTrack, min_apart: float = SEVERAL_APART) -> None:
    """Sampled frames whose final subject box (after `select_subject` narrowed merged blobs) holds the hip
    centres of two or more people at least `min_apart` box heights apart (closer ones are the detector's
    second guess at the same person): the track covers several people there."""
    rows = {int(p): i for i, p in enumerate(subject.frame)}
    several = 0
    for position, hips in verdict.hips.items():
        if position not in rows:
            continue
        box = subject.boxes[rows[position]]
        inside = hips[_inside(hips, box)]
        if len(inside) >= 2:
            spread = np.ptp(inside, axis=0).max() / max(float(box[3] - box[1]), 1.0)
            several += int(spread >= min_apart)
    verdict.several_frames = several


def _covered(box: np.ndarray, region: np.ndarray) -> float:
    """Fraction of `box`'s area inside `region` (both x1, y1, x2, y2)."""
    low, high = np.maximum(box[:2], region[:2]), np.minimum(box[2:], region[2:])
    area = max(float(np.prod(box[2:] - box[:2])), 1e-6)
    return float(np.prod(np.clip(high - low, 0, None))) / area


def _moves_with(subject_boxes: np.ndarray, boxes: np.ndarray) -> bool:
    """The horizontal offset between the two boxes' centres stays within `FRAGMENT_DRIFT` subject heights of
    its median on every shared frame: a head moves with its body, a table the walker passes does not."""
    offsets = (boxes[:, 0] + boxes[:, 2] - subject_boxes[:, 0] - subject_boxes[:, 2]) / 2
    height = max(float(np.median(subject_boxes[:, 3] - subject_boxes[:, 1])), 1.0)
    return bool(np.abs(offsets - np.median(offsets)).max() <= FRAGMENT_DRIFT * height)


def join_fragments(tracks: Tracks, subject: SubjectTrack, verification: Verification, cover: float) -> list[int]:
    """Ids of the fragment tracks (module docstring) joined into `subject.boxes` (changed in place)."""
    regions = verification.verdicts[subject.track_id].regions
    own = {int(p): i for i, p in enumerate(subject.frame)}
    joined = []
    for track_id in tracks.ids():
        if track_id == subject.track_id or track_id in verification.people:
            continue
        frame, boxes = tracks.of(track_id)
        rows = {int(p): i for i, p in enumerate(frame)}
        shared = [p for p in regions if p in rows and p in own]
        inside = [_covered(boxes[rows[p]], regions[p]) >= cover and
                  boxes[rows[p], 3] - boxes[rows[p], 1] < subject.boxes[own[p], 3] - subject.boxes[own[p], 1]
                  for p in shared]
        if not shared or np.mean(inside) < FRAGMENT_SHARE:
            continue
        both = [(own[p], rows[p]) for p in rows if p in own]
        mine, theirs = (np.asarray(i, int) for i in zip(*both))
        if not _moves_with(subject.boxes[mine], boxes[theirs]):
            continue
        subject.boxes[mine, :2] = np.minimum(subject.boxes[mine, :2], boxes[theirs, :2])
        subject.boxes[mine, 2:] = np.maximum(subject.boxes[mine, 2:], boxes[theirs, 2:])
        joined.append(track_id)
    return joined


# ------------------------------------------------------------------------------------------------ plates
def plate_person_masks(detector: PersonDetector, min_score: float) -> Callable[[np.ndarray], np.ndarray]:
    """A function (k, h, w, 3) RGB samples -> (k, h, w) bool, True inside the region (ROI square) of every person
    the detector finds in the whole sample: those pixels are left out of the camera plate."""
    def person_masks(samples: np.ndarray) -> np.ndarray:
        masks = np.zeros(samples.shape[:3], bool)
        height, width = samples.shape[1:3]
        for start in range(0, len(samples), BATCH_FRAMES):
            for offset, people in enumerate(detector.detect_people(samples[start:start + BATCH_FRAMES])):
                keep = np.asarray(people.boxes)[:, 4] >= min_score if len(people.boxes) else np.zeros(0, bool)
                for x1, y1, x2, y2 in roi_boxes(np.asarray(people.rois)[keep]):
                    masks[start + offset, max(0, int(y1)):min(height, int(np.ceil(y2))),
                          max(0, int(x1)):min(width, int(np.ceil(x2)))] = True
        return masks

    return person_masks
