"""One synthetic sequence: the scene of a (subject, combination, condition, view) and its exact ground truth.

`stream_sequence` streams frames (for the video writer, so a 1080p sequence never sits in memory as a whole)
and fills the ground truth as it goes; `render_sequence` is the pure, in-memory form other modules' tests
call. The walk itself (body, gait, light) depends on (seed, subject, combination, condition) only, so the 10
views are 10 cameras filming the same walk, as in RA-GAR. The background and exposure depend on the view; the
optional post (placed to hide part of the walker), the optional passer-by (placed to cross behind it), the
optional static object (a person-sized box beside the path) and the noise offsets on the whole key. The
optional standing start holds the subject's first pose before the walk, in every view.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ragar_data.attributes import default_schema
from ragar_data.errors import InputError
from ragar_data.identity import SequenceKey
from ragar_data.synth.body import (
    own_labels, simulated_labels, subject_identity, walker_parameters, with_speed,
)
from ragar_data.synth.camera import Camera, view_camera
from ragar_data.synth.config import SynthConfig, stream
from ragar_data.synth.gait import WalkerGeometry, walker_geometry
from ragar_data.synth.render import (
    NOISE_MARGIN, WALKER_LABELS, draw_box, draw_post, noise_tile, rasterise, scene_background, view_walker,
)

@lru_cache(maxsize=16)
def _camera_scene(seed: int, view: int, width: int, height: int, distance: float, camera_height: float,
                  focal_scale: float) -> tuple[Camera, np.ndarray]:
    """Camera and background image of one view (shared by every sequence of that view)."""
    camera = view_camera(view, width, height, distance, camera_height, focal_scale)
    background = scene_background(camera, stream(seed, "background", view))
    background.setflags(write=False)
    return camera, background


def _place_post(config: SynthConfig, key: SequenceKey, camera: Camera, background: np.ndarray,
                subject: WalkerGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Partial occlusion: a post halfway between the camera and where the subject is at a random moment,
    a little to one side, so it hides part of the body for part of the sequence. Returns (background, mask)."""
    rng = stream(config.seed, "post", str(key))
    moment = int(rng.uniform(0.25, 0.75) * (len(subject.centres) - 1))
    target = subject.centres[moment, :, :2].mean(axis=0)
    towards = target - camera.centre[:2]
    across = np.array([-towards[1], towards[0]]) / np.linalg.norm(towards)
    base = camera.centre[:2] + towards * rng.uniform(0.45, 0.55) + across * rng.choice([-1, 1]) * rng.uniform(0.05, 0.2)
    background = background.copy()
    return background, draw_post(background, camera, base, height=2.6, radius=0.09)


def _place_static_object(config: SynthConfig, key: SequenceKey, camera: Camera, background: np.ndarray,
                         subject: WalkerGeometry) -> tuple[np.ndarray, np.ndarray]:
    """A person-sized box (a cabinet: 0.5 x 0.4 x 1.75 m) 0.9-1.3 m to the side of the subject's path, on the
    side away from the camera (so it never hides the subject), beside where the subject is at a random moment.
    Returns (background, its image box x1, y1, x2, y2)."""
    rng = stream(config.seed, "static object", str(key))
    pelvis = subject.h36m[:, 0, :2]
    moment = int(rng.uniform(0.2, 0.8) * (len(pelvis) - 1))
    along = pelvis[-1] - pelvis[0]
    along = along / max(np.linalg.norm(along), 1e-9)
    side = np.array([-along[1], along[0]])
    away = pelvis[moment] - camera.centre[:2]
    if abs(away @ side) > 0.2 * np.linalg.norm(away):  # lateral view: behind the path; frontal: either side
        side = side * np.sign(away @ side)
    else:
        side = side * rng.choice([-1.0, 1.0])
    base = pelvis[moment] + side * rng.uniform(0.9, 1.3)
    colour = rng.integers(60, 200, size=3)
    background = background.copy()
    mask = draw_box(background, camera, base, (0.5, 0.4, 1.75), float(rng.uniform(0, np.pi)), colour)
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    box = (np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], np.float32) if rows.size
           else np.full(4, np.nan, np.float32))
    return background, box


def _stand_first(geometry: WalkerGeometry, frames: int) -> WalkerGeometry:
    """The walker holding its first pose for `frames` frames, then walking as before (the walk's end is cut)."""
    index = np.maximum(np.arange(len(geometry.centres)) - frames, 0)
    return WalkerGeometry(centres=geometry.centres[index], radii=geometry.radii, parts=geometry.parts,
                          coco=geometry.coco[index], h36m=geometry.h36m[index])


@lru_cache(maxsize=4)
def _noise(seed: int, width: int, height: int, sigma: float) -> np.ndarray:
    tile = noise_tile(stream(seed, "noise"), height, width, sigma)
    tile.setflags(write=False)
    return tile


def _palette(parts, identity, condition: str) -> np.ndarray:
    colours = {"skin": identity.skin, "hair": identity.hair_colour, "shirt": identity.shirt,
               "trousers": identity.trousers, "shoes": identity.shoes, "coat": identity.coat,
               "backpack": identity.backpack}
    return np.array([colours[part.colour] for part in parts], dtype=np.float64)


@dataclass
class Walk:
    """The world-level walk shared by all views of a (subject, combination, condition)."""

    walkers: list[WalkerGeometry]  # the subject (a passer-by is appended per view)
    palettes: list[np.ndarray]
    labels: np.ndarray
    sun: np.ndarray
    gains: np.ndarray  # (T,) illumination before the per-view exposure
    shade: float


def build_walk(config: SynthConfig, key: SequenceKey, labels: np.ndarray | None = None) -> Walk:
    """Subject (with `labels` overriding its annotation when given) and light."""
    schema = default_schema()
    if labels is None:
        labels = simulated_labels(config.seed, key.subject, key.combination, schema)
    labels = np.asarray(labels, dtype=np.int8)
    if labels.shape != (len(schema),):
        raise InputError(f"labels for {key}: expected ({len(schema)},) class indices, got shape {labels.shape}")
    frames, fps = config.num_frames, config.fps
    rng = stream(config.seed, "walk", key.subject, key.combination, key.condition)
    identity = subject_identity(config.seed, key.subject)
    parameters = with_speed(walker_parameters(labels, identity, schema), float(rng.normal(1.0, 0.03)))
    duration = frames / fps
    standing = min(int(round(config.standing_seconds * fps)), frames - 1)
    walking = (frames - standing) / fps  # the walk stays centred on the path's middle
    start = np.array([-0.5 * parameters.speed * walking, rng.uniform(-0.25, 0.25)])
    coat_length = float(stream(config.seed, "coat", key.subject, key.condition).uniform(0.1, 0.9))
    subject = walker_geometry(parameters, frames, fps, float(rng.random()), start, 0.0, key.condition, coat_length)
    if standing:
        subject = _stand_first(subject, standing)
    walkers = [subject]
    palettes = [_palette(subject.parts, identity, key.condition)]
    # light: a sunny or overcast walk; slow drift plus passing clouds within it
    base = rng.uniform(0.72, 1.18)
    time = np.arange(frames) / fps
    drift = rng.uniform(-0.12, 0.12) * (time / max(duration, 1e-9) - 0.5)
    clouds = rng.uniform(0.0, 0.05) * np.sin(2 * np.pi * time / rng.uniform(1.5, 6.0) + rng.uniform(0, 2 * np.pi))
    gains = base * (1.0 + drift + clouds)
    elevation, azimuth = np.radians(rng.uniform(30, 65)), np.radians(rng.uniform(0, 360))
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    shade = float(0.5 + 0.25 * (1.18 - base) / 0.46)  # brighter sun, darker shadow
    return Walk(walkers, palettes, labels, sun, gains, shade)


def _second_walker(config: SynthConfig, key: SequenceKey, camera: Camera,
                   subject: WalkerGeometry) -> tuple[WalkerGeometry, np.ndarray]:
    """A passer-by for tracking tests: walks across this camera's view 2.5-4.5 m behind the subject (seen from
    the camera) and passes behind it once, at a random moment, moving against the subject's image motion.
    Per camera, so it never hides the subject (the subject hides it) and every view gets one crossing."""
    schema = default_schema()
    rng = stream(config.seed, "second walker", str(key))
    identity = subject_identity(config.seed, f"passer-by {key}")
    parameters = walker_parameters(own_labels(config.seed, f"passer-by {key}", schema), identity, schema)
    parameters = with_speed(parameters, 1.15)  # a brisk passer-by: the crossing is over in about a second
    frames, fps = config.num_frames, config.fps
    moment = int(rng.uniform(0.3, 0.7) * (frames - 1))
    pelvis = subject.h36m[:, 0, :2]
    away = pelvis[moment] - camera.centre[:2]
    away = away / np.linalg.norm(away)
    across = np.array([-away[1], away[0]])
    subject_motion = pelvis[-1] - pelvis[0]
    side = -1.0 if subject_motion @ across > 0 else 1.0
    if abs(subject_motion @ across) < 0.2:  # walking towards or away from the camera: either way
        side = float(rng.choice([-1.0, 1.0]))
    angle = np.arctan2(across[1], across[0]) + np.radians(rng.uniform(-20, 20))
    heading = np.array([np.cos(angle), np.sin(angle)]) * side
    crossing = pelvis[moment] + away * rng.uniform(2.5, 4.5)
    start = crossing - heading * parameters.speed * moment / fps
    geometry = walker_geometry(parameters, frames, fps, float(rng.random()), start,
                               float(np.degrees(np.arctan2(heading[1], heading[0]))), "nm-01")
    return geometry, _palette(geometry.parts, identity, "nm-01")


def stream_sequence(config: SynthConfig, key: SequenceKey, labels: np.ndarray | None = None):
    """(frames iterator, ground truth dict). The dict's per-frame arrays are filled while the iterator runs
    and are complete once it is exhausted. Masks are kept bit-packed: (T, H, ceil(W/8)) uint8."""
    walk = build_walk(config, key, labels)
    camera, background = _camera_scene(config.seed, key.view, config.width, config.height,
                                       config.camera_distance, config.camera_height, config.focal_scale)
    occluder = None
    if config.occlusion:
        background, occluder = _place_post(config, key, camera, background, walk.walkers[0])
    if config.distractors:
        passer_by, palette = _second_walker(config, key, camera, walk.walkers[0])
        walk.walkers.append(passer_by)
        walk.palettes.append(palette)
    static_box = None
    if config.static_object:
        background, static_box = _place_static_object(config, key, camera, background, walk.walkers[0])
    views = [view_walker(w, camera, walk.sun, palette) for w, palette in zip(walk.walkers, walk.palettes)]
    rng = stream(config.seed, "frames", str(key))
    exposure = rng.uniform(0.93, 1.07)
    gains = (walk.gains * exposure).astype(np.float32)
    noise = _noise(config.seed, config.width, config.height, config.noise_sigma)
    offsets = rng.integers(0, NOISE_MARGIN + 1, size=(len(gains), 2))
    T, H, W = len(gains), config.height, config.width
    packed_width = (W + 7) // 8
    truth = {
        "frame_index": np.arange(T, dtype=np.int32),
        "boxes": np.full((T, 4), np.nan, dtype=np.float32),
        "masks_packed": np.zeros((T, H, packed_width), dtype=np.uint8),
        "mask_shape": np.array([H, W], dtype=np.int32),
        "K": camera.K.astype(np.float64), "R": camera.R.astype(np.float64), "t": camera.t.astype(np.float64),
        "labels": walk.labels.copy(),
        "illumination": gains,
        "view": np.int32(key.view),
        "fps": np.int32(config.fps),
    }
    subject = walk.walkers[0]
    pixels, _ = camera.project(subject.coco)
    truth["keypoints_2d"] = np.concatenate([pixels, np.zeros(pixels.shape[:-1] + (1,))], axis=-1).astype(np.float32)
    truth["keypoints_3d"] = camera.to_camera(subject.h36m).astype(np.float32)
    if static_box is not None:
        truth["static_object_box"] = static_box
    if config.distractors:
        truth["distractor_boxes"] = np.full((T, 4), np.nan, dtype=np.float32)
        truth["distractor_masks_packed"] = np.zeros((T, H, packed_width), dtype=np.uint8)

    def frames():
        for t, layers in enumerate(rasterise(views, background, occluder, gains, walk.shade, noise, offsets)):
            y0, x0 = layers.origin
            for name, low in (("", 0), ("distractor_", WALKER_LABELS)):
                if f"{name}boxes" not in truth:
                    continue
                mask = (layers.labels > low) & (layers.labels <= low + WALKER_LABELS)
                _store_mask(truth, name, t, mask, y0, x0, W)
            _keypoint_visibility(truth, t, layers, W, H)
            yield layers.image

    return frames(), truth


def _store_mask(truth: dict, name: str, t: int, mask: np.ndarray, y0: int, x0: int, width: int) -> None:
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return
    truth[f"{name}boxes"][t] = (x0 + columns[0], y0 + rows[0], x0 + columns[-1] + 1, y0 + rows[-1] + 1)
    band = np.zeros((mask.shape[0], width), dtype=bool)
    band[:, x0:x0 + mask.shape[1]] = mask
    truth[f"{name}masks_packed"][t, y0:y0 + mask.shape[0]] = np.packbits(band, axis=-1)


def _keypoint_visibility(truth: dict, t: int, layers, width: int, height: int) -> None:
    """A keypoint is visible when its pixel (pixel centres at integers) shows the subject: inside the frame
    and not hidden by the post or the second walker. Self-occlusion does not count (the mask is the union)."""
    keypoints = truth["keypoints_2d"][t]
    columns = np.round(keypoints[:, 0]).astype(np.int64)
    rows = np.round(keypoints[:, 1]).astype(np.int64)
    y0, x0 = layers.origin
    h, w = layers.labels.shape
    inside = (rows >= y0) & (rows < y0 + h) & (columns >= x0) & (columns < x0 + w)
    inside &= (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
    label = np.zeros(len(keypoints), dtype=np.int64)
    label[inside] = layers.labels[rows[inside] - y0, columns[inside] - x0]
    keypoints[:, 2] = ((label > 0) & (label <= WALKER_LABELS)).astype(np.float32)


def unpack_masks(packed: np.ndarray, shape) -> np.ndarray:
    """(T, H, ceil(W/8)) bit-packed masks -> (T, H, W) bool."""
    return np.unpackbits(packed, axis=-1, count=int(shape[1])).astype(bool)


def render_sequence(config: SynthConfig, key: SequenceKey, labels: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Frames (T, H, W, 3) uint8 RGB and the ground truth of one sequence, in memory, deterministic from
    (config, key). `labels` (15,) overrides the subject's annotated class indices (for effect studies).
    The ground truth has `masks` unpacked to (T, H, W) bool, as `load_ground_truth` returns it."""
    frames, truth = stream_sequence(config, key, labels)
    video = np.stack(list(frames))
    return video, unpacked(truth)


def unpacked(truth: dict) -> dict:
    """The ground truth with bit-packed mask arrays replaced by (T, H, W) bool `masks`/`distractor_masks`."""
    result = {k: v for k, v in truth.items() if not k.endswith("masks_packed")}
    for name in ("", "distractor_"):
        if f"{name}masks_packed" in truth:
            result[f"{name}masks"] = unpack_masks(truth[f"{name}masks_packed"], truth["mask_shape"])
    return result


def render_masks(config: SynthConfig, key: SequenceKey, labels: np.ndarray | None = None) -> np.ndarray:
    """Only the subject's (T, H, W) bool masks (frames are still rendered: the label map is the mask)."""
    frames, truth = stream_sequence(config, key, labels)
    for _ in frames:
        pass
    return unpack_masks(truth["masks_packed"], truth["mask_shape"])
