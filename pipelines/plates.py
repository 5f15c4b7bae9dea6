"""Per-camera background plates: the background of a fixed camera estimated across all its sequences of a run.

A per-sequence temporal median fails where the walker covers the same pixels for most of the sequence (frontal
and back views: the walker stays in the image centre). RA-GAR's cameras are fixed, so every sequence of a camera
shows the same background, and walkers of different sequences wear different clothes and are at different places
at the same moment: across sequences the background is the value seen most often. A camera is a view (the view
folder of the raw layout, the `view` column of a manifest).

Estimation (deterministic, at the detector's working resolution):
1. at most `max_sequences` sequences of the camera, spread over its key-sorted list, each give
   `frames_per_sequence` frames spread over the sequence;
2. each sample is divided by its illumination gain against the median of all samples (slow illumination drift
   and per-sequence exposure);
3. per pixel, the mode: the sample with the most other samples within `tolerance` grey levels (RMS over
   channels), chosen on 4x4 blocks, and the plate is the mean of the samples within `tolerance` of it;
4. the mode is trusted only where it has enough support among the samples and more than half of the subjects
   see it (in at least `SEQUENCE_SHARE` of the samples of one of their sequences): one subject's sequences share
   clothes, and when each starts with the subject standing at the same mark (a frontal camera), its standing
   body is the mode of the samples without being the background;
5. where the mode is not trusted (every walker covers the region at every sampled moment, or a standing start),
   a value seen there in enough samples is taken if it is the one nearest to the trusted plate inpainted over the
   region and within `tolerance` of it (the pavement beside the standing legs); the rest is inpainted from its
   surroundings.
With person verification (`pipelines/verify.py`), the pixels where the person detector finds someone in a sample
are left out of that sample's vote and mean (`person_masks`): people standing still in front of the background
in most samples no longer become part of it. Where that leaves under `MIN_VOTERS` of the samples (a frontal
view: the walker covers the image centre in almost every sample), every sample votes there as without it:
the few samples left would be those where the detector missed the walker.

Plates are part of the run state: stored in `OUT/extract/<hash>/backgrounds/<view>.npz` with the keys they were
estimated from, reused by reruns and resumed runs, recomputed when the set of sequences changes. A camera with
fewer than `min_sequences` sequences gets no plate (its sequences use the per-sequence model).
"""
from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from ragar_data.pipelines.decode import PyAVDecoder, VideoInfo, decode_clip, from_av, reduced_rgb, work_scale
from ragar_data.pipelines.detect import brightness_grid

PLATE_FOLDER = "backgrounds"
MIN_VOTERS = 0.25  # share of samples that must remain at a block after leaving out people (module docstring)
SEQUENCE_SHARE = 0.25  # share of a sequence's samples near a block's mode for the sequence to see it


def camera_of(unit) -> int:
    """Camera identity of a work unit: its view angle (one fixed camera per view folder)."""
    return int(unit.key.view)


def sample_sequence(unit, decoder, work_width: int, frames_per_sequence: int) -> np.ndarray:
    """(k, h, w, 3) uint8 reduced-resolution frames spread over one sequence.

    With PyAV and a known frame count, only the sampled frames are converted to RGB and resized (the others
    are decoded and dropped: a third of the cost of a full decode); otherwise the whole clip is decoded."""
    if isinstance(decoder, PyAVDecoder):
        samples = _sample_with_pyav(Path(unit.video), unit.start_frame, unit.end_frame, work_width,
                                    frames_per_sequence, decoder)
        if samples is not None:
            return samples
    clip = decode_clip(unit.video, decoder, start_frame=unit.start_frame, end_frame=unit.end_frame,
                       work_width=work_width, keep_frames=False)
    count = len(clip.small)
    positions = np.unique(np.linspace(0, count - 1, min(count, frames_per_sequence)).round().astype(int))
    return clip.small[positions]


def _sample_with_pyav(path: Path, start: int, end: int | None, work_width: int, count: int,
                      decoder: PyAVDecoder):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = int(stream.frames or 0)
        if total <= 0:
            return None
        stop = min(total, end) if end is not None else total
        if stop <= start:
            return None
        wanted = set((start + np.unique(np.linspace(0, stop - start - 1, min(stop - start, count)).round()
                                        .astype(int))).tolist())
        stream.thread_type, stream.thread_count = "AUTO", decoder.threads
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        info = VideoInfo(width, height, 0.0, decoder.layout_for(width, height))  # the clips' own reduction
        scale = work_scale(width, work_width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        samples = []
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                samples.append(reduced_rgb(from_av(frame, info.layout), info, size))
            if index + 1 >= stop:
                break
    return np.stack(samples) if len(samples) == len(wanted) else None


def sample_gains(samples: np.ndarray, step: int = 4) -> np.ndarray:
    """(n,) brightness of each sample relative to the per-pixel median of all samples (pixel grid of `step`)."""
    grid = brightness_grid(samples, step)
    reference = np.median(grid, axis=0) + 1.0
    return np.clip(np.median((grid / reference).reshape(len(samples), -1), axis=1), 0.2, 5.0).astype(np.float32)


def plate_from_samples(samples: np.ndarray, tolerance: float = 14.0, min_support: float = 0.35,
                       exclude: np.ndarray | None = None, sequences: np.ndarray | None = None,
                       subjects: np.ndarray | None = None) -> np.ndarray:
    """(h, w, 3) uint8 per-pixel mode of gain-normalised samples (n, h, w, 3) uint8; see the module docstring.

    Where even the mode is seen in under `min_support` of the samples that may vote there, or (with `sequences`
    and `subjects`, (n,) the sequence and the subject of each sample; by default each sequence is a subject of
    its own) by no more than half of the subjects that vote there, the mode is not trusted (a region that
    walkers cover at every sampled moment, or a walker standing at the same mark in the sequences of one
    subject): a value seen there that agrees with the plate around it is taken instead, and what is left is
    inpainted from its surroundings (Telea). `exclude` (n, h, w) bool: pixels (people) that do not vote; a 4x4
    block touching one is left out of that sample's vote."""
    gains = sample_gains(samples)
    normalised = np.stack([cv2.convertScaleAbs(s, alpha=1.0 / float(g)) for s, g in zip(samples, gains)])
    count, height, width, _ = normalised.shape
    coarse_size = (max(1, width // 4), max(1, height // 4))
    coarse = np.stack([cv2.resize(s, coarse_size, interpolation=cv2.INTER_AREA) for s in normalised])
    coarse = coarse.astype(np.float32).reshape(count, -1, 3)
    limit = 3.0 * tolerance * tolerance  # squared distance summed over the three channels
    voters = np.ones(coarse.shape[:2], bool)
    if exclude is not None:
        voters = np.stack([cv2.resize(e.astype(np.float32), coarse_size, interpolation=cv2.INTER_AREA) == 0
                           for e in np.asarray(exclude, bool)]).reshape(count, -1)
        voters[:, voters.sum(axis=0) < MIN_VOTERS * count] = True
    support = np.zeros((count, coarse.shape[1]), np.int32)
    for index in range(count):  # n passes over (n, h/4, w/4, 3): the mode is chosen on 4x4 blocks
        support[index] = (_near(coarse, coarse[index], limit) & voters).sum(axis=0)
    support[~voters] = -1  # a left-out sample is no candidate either
    winner = support.argmax(axis=0)  # ties: the earliest sample (deterministic)
    enough = np.maximum(min_support * voters.sum(axis=0), 1e-9)
    reliable = support[winner, np.arange(len(winner))] >= enough
    if sequences is not None:
        members = _near(coarse, _at(coarse, winner), limit) & voters
        reliable &= _seen_by_most_subjects(members, voters, np.asarray(sequences),
                                           np.asarray(sequences if subjects is None else subjects))
    if not reliable.all():
        winner, reliable = _agree_with_surroundings(coarse, support, winner, reliable, enough, limit, coarse_size)
    # the block's background samples: those near the mode; the plate is their mean, trimmed once per pixel
    # (a limb or a shadow edge inside a block that matched as a whole)
    block_members = _near(coarse, _at(coarse, winner), limit) & voters
    block_members = block_members.reshape(count, coarse_size[1], coarse_size[0]).astype(np.uint8)
    upsampled = [cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in block_members]
    plate = _trimmed_mean(normalised, upsampled, limit)
    unknown = cv2.resize((~reliable).reshape(coarse_size[1], coarse_size[0]).astype(np.uint8), (width, height),
                         interpolation=cv2.INTER_NEAREST)
    if unknown.any():
        plate = cv2.inpaint(plate, cv2.dilate(unknown, np.ones((3, 3), np.uint8)), 3, cv2.INPAINT_TELEA)
    return plate


def _near(coarse: np.ndarray, values: np.ndarray, limit: float) -> np.ndarray:
    """(n, p) bool: block values of (n, p, 3) `coarse` within squared distance `limit` of (p, 3) `values`."""
    difference = coarse - values
    return np.einsum("npc,npc->np", difference, difference) <= limit


def _at(coarse: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """(p, 3) the value of sample `chosen[p]` at each block p."""
    return coarse[chosen, np.arange(len(chosen))]


def _seen_by_most_subjects(members: np.ndarray, voters: np.ndarray, sequences: np.ndarray,
                           subjects: np.ndarray) -> np.ndarray:
    """(p,) bool: blocks where more than half of the subjects that vote there see the mode (`members`) in one of
    their sequences, in at least `SEQUENCE_SHARE` of its voting samples.

    The background is the same in every sequence of a camera, whoever walks; one subject's sequences share
    clothes and, when each starts with the subject standing at the same mark, its standing body too. A single
    sample near the mode does not count: a block half covered by a dark leg can average to the colour of light
    trousers."""
    names = np.unique(subjects)
    seen = np.zeros((len(names), members.shape[1]), bool)
    voting = np.zeros((len(names), members.shape[1]), bool)
    for sequence in np.unique(sequences):
        own = sequences == sequence
        row = np.searchsorted(names, subjects[own][0])
        own_voters = voters[own].sum(axis=0)
        seen[row] |= (own_voters > 0) & (members[own].sum(axis=0) >= np.maximum(1, SEQUENCE_SHARE * own_voters))
        voting[row] |= own_voters > 0
    return 2 * seen.sum(axis=0) > voting.sum(axis=0)


def _agree_with_surroundings(coarse: np.ndarray, support: np.ndarray, winner: np.ndarray, reliable: np.ndarray,
                             enough: np.ndarray, limit: float, coarse_size: tuple[int, int]):
    """(winner, reliable) where an untrusted block takes the value seen there by at least `enough` samples that is
    nearest to the trusted plate inpainted over it, if within the tolerance: e.g. the pavement beside a standing
    walker's legs, seen by as many subjects as the legs themselves. Blocks with no such value stay untrusted."""
    blocks = np.clip(np.round(_at(coarse, winner)), 0, 255).astype(np.uint8)
    shape = (coarse_size[1], coarse_size[0])
    untrusted = (~reliable).reshape(shape).astype(np.uint8)
    guess = cv2.inpaint(blocks.reshape(*shape, 3), untrusted, 3, cv2.INPAINT_TELEA)
    difference = coarse - guess.reshape(-1, 3).astype(np.float32)
    distance = np.einsum("npc,npc->np", difference, difference)
    distance[support < enough] = np.inf
    candidate = distance.argmin(axis=0)  # ties: the earliest sample (deterministic)
    taken = ~reliable & (distance[candidate, np.arange(len(candidate))] <= limit)
    return np.where(taken, candidate, winner), reliable | taken


def _trimmed_mean(normalised: np.ndarray, members: list, limit: float) -> np.ndarray:
    """(h, w, 3) uint8 mean of each pixel's member samples, then again without those far from that mean."""
    height, width = normalised.shape[1:3]
    plate = None
    for _ in range(2):
        total = np.zeros((height, width, 3), np.float32)
        counted = np.zeros((height, width), np.float32)
        for sample, member in zip(normalised, members):
            if plate is not None:
                pixel_difference = sample.astype(np.float32) - plate
                member = member & (np.einsum("hwc,hwc->hw", pixel_difference, pixel_difference) <= limit)
                member = member.astype(np.uint8)
            cv2.accumulate(sample.astype(np.float32), total, mask=member)
            counted += member
        mean = total / np.maximum(counted, 1)[..., None]
        plate = mean if plate is None else np.where(counted[..., None] > 0, mean, plate)
    return np.clip(np.round(plate), 0, 255).astype(np.uint8)


def _read_plate(path: Path, keys: list[str]) -> np.ndarray | None:
    if not path.is_file():
        return None
    with np.load(path) as stored:
        if [str(k) for k in stored["keys"]] != keys:
            return None
        return stored["plate"].copy()


def _write_plate(path: Path, plate: np.ndarray, keys: list[str]) -> None:
    from ragar_data.shards import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, plate=plate, keys=np.asarray(keys))
    atomic_write_bytes(path, buffer.getvalue())


def _sample_or_error(unit, decoder, work_width: int, frames_per_sequence: int):
    try:
        return sample_sequence(unit, decoder, work_width, frames_per_sequence)
    except Exception as error:  # the main pass reports this sequence's failure; the plate goes on without it
        return error


def camera_plates(units: list, folder: Path, decoder, *, work_width: int, min_sequences: int = 4,
                  max_sequences: int = 16, frames_per_sequence: int = 8, tolerance: float = 14.0,
                  map_function=map, log=print, person_masks=None) -> dict[int, np.ndarray]:
    """{camera: plate} for every camera of `units` with at least `min_sequences` sequences; plates already in
    `folder` for the same sequences are reused. A sequence that cannot be decoded, or whose size differs from
    the camera's majority, is left out of the plate (the main pass reports its error). `map_function` (e.g. a
    process pool's map) samples the sequences; plates do not depend on it. `person_masks` ((k, h, w, 3) samples
    -> (k, h, w) bool, e.g. `verify.plate_person_masks`) marks pixels of people to leave out."""
    by_camera = defaultdict(list)
    for unit in sorted(units, key=lambda u: u.key):
        by_camera[camera_of(unit)].append(unit)
    plates, todo = {}, {}
    for camera, members in sorted(by_camera.items()):
        if len(members) < min_sequences:
            continue
        chosen = [members[i] for i in np.unique(np.linspace(0, len(members) - 1, min(len(members), max_sequences))
                                                .round().astype(int))]
        keys = [str(u.key) for u in chosen]
        path = Path(folder) / PLATE_FOLDER / f"{camera:03d}.npz"
        plate = _read_plate(path, keys)
        if plate is None:
            todo[camera] = (chosen, keys, path)
        else:
            plates[camera] = plate
    flat = [(camera, unit) for camera, (chosen, _, _) in todo.items() for unit in chosen]
    if flat:
        log(f"estimating camera plates from {len(flat)} sequences of {len(todo)} camera(s)"
            + (", leaving out the people the person detector finds..." if person_masks else "..."))
    sampled = list(map_function(_sample_or_error, [u for _, u in flat], [decoder] * len(flat),
                                [work_width] * len(flat), [frames_per_sequence] * len(flat)))
    for camera, (chosen, keys, path) in todo.items():
        kept = []
        for (owner, unit), result in zip(flat, sampled):
            if owner != camera:
                continue
            if isinstance(result, Exception):
                log(f"background plate of camera {camera}: {unit.key} left out: {result}")
            else:
                kept.append((unit, result))
        shapes = [s.shape[1:] for _, s in kept]
        if not shapes:
            continue
        common = max(set(shapes), key=lambda s: (shapes.count(s), s))
        kept = [(unit, s) for unit, s in kept if s.shape[1:] == common]
        if len(kept) < min_sequences:
            continue
        samples = np.concatenate([s for _, s in kept])
        sequences = np.repeat(np.arange(len(kept)), [len(s) for _, s in kept])
        subjects = np.repeat([unit.key.subject for unit, _ in kept], [len(s) for _, s in kept])
        plate = plate_from_samples(samples, tolerance, exclude=person_masks(samples) if person_masks else None,
                                   sequences=sequences, subjects=subjects)
        _write_plate(path, plate, keys)
        plates[camera] = plate
    return dict(sorted(plates.items()))
