"""Rasterisation of walkers over a static outdoor background: the per-frame hot path of the generator.

Owns the background texture of a camera (ray-cast once per view: paved walkway, grass, a ring of trees and
buildings, sky), the optional foreground post, the sensor-noise tile, and `rasterise`, which yields per frame
the RGB image and the label map of the walkers. Speed comes from doing per frame only what changes: the
illumination gain is one saturating scale of the cached background (cv2.convertScaleAbs), sensor noise is a
pre-generated tile added at a random offset (no fresh per-pixel random numbers), and walkers and their cast
shadows are drawn as filled convex polygons (hulls of sphere outlines) inside their bounding box only.

The label map says which walker part covers each pixel (0 = none, 1..63 = the subject's parts, 65.. = the
second walker's); masks and keypoint visibility are derived from it, so pixels and ground truth agree exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ragar_data.synth.camera import Camera
from ragar_data.synth.gait import WalkerGeometry

CIRCLE_POINTS = 20
FIXED_POINT_SHIFT = 4  # polygon vertices in 1/16 pixel
WALKER_LABELS = 64  # label range per walker
NOISE_OFFSET = 8  # the noise tile holds noise + NOISE_OFFSET; the gain table subtracts it again
NOISE_MARGIN = 48  # extra rows/columns of the noise tile, the range of its random offsets
_ANGLES = np.linspace(0.0, 2 * np.pi, CIRCLE_POINTS, endpoint=False)
_CIRCLE = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=-1)


def _value_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cells: int = 64) -> np.ndarray:
    """Smooth noise in [0, 1] at float coordinates (u, v) measured in grid cells; wraps every `cells`."""
    grid = rng.random((cells, cells), dtype=np.float32)
    return cv2.remap(grid, (u % cells).astype(np.float32), (v % cells).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def scene_background(camera: Camera, rng: np.random.Generator, wall_radius: float = 17.0) -> np.ndarray:
    """The (H, W, 3) uint8 RGB view of the empty scene from `camera` (before illumination and noise)."""
    H, W = camera.height, camera.width
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(camera.K).T @ camera.R
    origin = camera.centre
    with np.errstate(divide="ignore", invalid="ignore"):
        to_ground = np.where(rays[..., 2] < -1e-6, -origin[2] / rays[..., 2], np.inf)
    # the ring of trees and buildings around the scene: |origin_xy + s ray_xy| = wall_radius
    a = rays[..., 0] ** 2 + rays[..., 1] ** 2
    b = 2 * (origin[0] * rays[..., 0] + origin[1] * rays[..., 1])
    c = origin[0] ** 2 + origin[1] ** 2 - wall_radius ** 2
    to_wall = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * a)
    ground = to_ground < to_wall
    distance = np.where(ground, to_ground, to_wall)
    hit = origin + distance[..., None] * rays
    X, Y, Z = hit[..., 0], hit[..., 1], hit[..., 2]
    image = np.zeros((H, W, 3), dtype=np.float32)

    # ground: a paved walkway along the walk (|y| < 1.6 m), grass elsewhere
    fine = _value_noise(rng, X * 6.0, Y * 6.0)
    coarse = _value_noise(rng, X * 0.6, Y * 0.6)
    walkway = np.abs(Y) < 1.6
    tile = 0.45
    joints = (np.minimum((X / tile) % 1.0, (Y / tile + 0.5 * np.floor(X / tile)) % 1.0) < 0.05)
    paving = (np.array([168, 162, 150]) * (0.85 + 0.2 * coarse[..., None] + 0.1 * fine[..., None]))
    paving = np.where(joints[..., None], paving * 0.72, paving)
    grass = np.array([70, 112, 48]) * (0.7 + 0.35 * coarse[..., None] + 0.35 * fine[..., None])
    image = np.where((ground & walkway)[..., None], paving, image)
    image = np.where((ground & ~walkway)[..., None], grass, image)

    # the ring: trees and building facades below a varying skyline, sky above
    azimuth = np.arctan2(Y, X)
    ring_u = (azimuth + np.pi) / (2 * np.pi) * 64.0
    skyline = 5.0 + 6.0 * _value_noise(rng, ring_u * 0.5, np.zeros_like(ring_u))
    building = _value_noise(rng, ring_u * 0.25, np.full_like(ring_u, 7.0)) > 0.55
    leaves = _value_noise(rng, ring_u * 40.0, Z * 3.0)
    trees = np.array([40, 78, 38]) * (0.55 + 0.7 * leaves[..., None])
    windows = ((ring_u * 48.0) % 1.0 < 0.45) & ((Z / 1.4) % 1.0 < 0.5) & (Z > 1.0)
    facade = np.where(windows[..., None], np.array([70, 82, 98]), np.array([196, 184, 160]))
    facade = facade * (0.85 + 0.3 * _value_noise(rng, ring_u * 2, Z)[..., None])
    wall = np.where(building[..., None], facade, trees)
    sky_height = np.clip(np.arctan2(rays[..., 2], np.sqrt(a)) / 0.5, 0.0, 1.0)
    sky = np.array([205, 222, 240]) * (1 - sky_height[..., None]) + np.array([120, 160, 215]) * sky_height[..., None]
    on_wall = ~ground & (Z < skyline)
    image = np.where(on_wall[..., None], wall, image)
    image = np.where((~ground & ~on_wall)[..., None], sky, image)
    # aerial haze on the far ring, so the walker stands out as in a real outdoor view
    haze = np.clip(distance / 40.0, 0.0, 0.35)[..., None]
    image = image * (1 - haze) + np.array([200, 205, 210]) * haze
    return np.clip(image, 2 * NOISE_OFFSET, 255).astype(np.uint8)


def draw_post(background: np.ndarray, camera: Camera, base: np.ndarray, height: float, radius: float,
              colour=(62, 66, 60)) -> np.ndarray:
    """Paint a vertical post standing at `base` (x, y) into the background; return its (H, W) bool mask."""
    points = np.array([[base[0], base[1], 0.0], [base[0], base[1], height]])
    centres, radii, _ = camera.project_spheres(points, np.array([radius, radius]))
    outline = (centres[:, None, :] + radii[:, None, None] * _CIRCLE).reshape(-1, 2)
    hull = cv2.convexHull(np.round(outline * (1 << FIXED_POINT_SHIFT)).astype(np.int32))
    mask = np.zeros(background.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, cv2.LINE_8, FIXED_POINT_SHIFT)
    background[mask.astype(bool)] = colour
    return mask.astype(bool)


def draw_box(background: np.ndarray, camera: Camera, base: np.ndarray, size: tuple[float, float, float],
             yaw: float, colour) -> np.ndarray:
    """Paint a box standing on the ground at `base` (x, y), `size` (width, depth, height) m, turned by `yaw`
    radians, into the background as one flat colour; return its (H, W) bool mask."""
    width, depth, height = size
    corners = np.array([[sx * width / 2, sy * depth / 2, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0, height)])
    turn = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    pixels, _ = camera.project(corners @ turn.T + [base[0], base[1], 0.0])
    hull = cv2.convexHull(np.round(pixels * (1 << FIXED_POINT_SHIFT)).astype(np.int32))
    mask = np.zeros(background.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, cv2.LINE_8, FIXED_POINT_SHIFT)
    background[mask.astype(bool)] = colour
    return mask.astype(bool)


def noise_tile(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """(H + margin, W + margin, 3) uint8 Gaussian noise around NOISE_OFFSET, read at a random offset per frame."""
    noise = rng.normal(NOISE_OFFSET, sigma, size=(height + NOISE_MARGIN, width + NOISE_MARGIN, 3))
    return np.clip(np.round(noise), 0, 2 * NOISE_OFFSET).astype(np.uint8)


@dataclass
class WalkerView:
    """A walker as one camera sees it: projected sphere outlines and cast shadows, per frame."""

    geometry: WalkerGeometry
    outlines: np.ndarray  # (T, S, CIRCLE_POINTS, 2) fixed-point int32 outline points
    shadows: np.ndarray  # (T, S, CIRCLE_POINTS, 2) fixed-point int32 shadow outline points
    depths: np.ndarray  # (T, S) camera depth of the sphere centres
    palette: np.ndarray  # (num_parts, 3) RGB


def view_walker(geometry: WalkerGeometry, camera: Camera, sun: np.ndarray, palette: np.ndarray) -> WalkerView:
    """Project a walker's spheres and their cast shadows (sun: unit vector towards the sun) for all frames."""
    scale = 1 << FIXED_POINT_SHIFT
    centres, radii, depths = camera.project_spheres(geometry.centres, geometry.radii[None, :])
    outlines = centres[:, :, None, :] + radii[:, :, None, None] * _CIRCLE
    # a sphere's shadow on the ground: an ellipse, stretched along the sun's azimuth by 1 / sin(elevation)
    ground = geometry.centres - geometry.centres[..., 2:3] / sun[2] * sun
    along = np.array([sun[0], sun[1], 0.0]) / max(np.hypot(sun[0], sun[1]), 1e-6)
    across = np.array([-along[1], along[0], 0.0])
    r = geometry.radii[None, :, None, None]
    ring = (_CIRCLE[:, 0:1] * across + _CIRCLE[:, 1:2] * along / sun[2])  # (P, 3)
    shadow_points = ground[:, :, None, :] + r * ring
    shadow_points[..., 2] = 0.0
    shadow_pixels, _ = camera.project(shadow_points)
    return WalkerView(geometry, np.round(outlines * scale).astype(np.int32),
                      np.round(shadow_pixels * scale).astype(np.int32), depths, palette)


@dataclass
class FrameLayers:
    """One rendered frame: the RGB image and the label map inside the drawn box."""

    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (y1 - y0, x1 - x0) uint8 label map of the walkers (occluder pixels set to 0)
    origin: tuple[int, int]  # (y0, x0) of the label map in the frame


def _crop_box(walkers: list[WalkerView], t: int, width: int, height: int) -> tuple[int, int, int, int]:
    points = np.concatenate([np.concatenate([w.outlines[t].reshape(-1, 2), w.shadows[t].reshape(-1, 2)])
                             for w in walkers]) >> FIXED_POINT_SHIFT
    x0, y0 = np.clip(points.min(axis=0) - 1, 0, [width, height])
    x1, y1 = np.clip(points.max(axis=0) + 2, 0, [width, height])
    return int(y0), int(y1), int(x0), int(x1)


def rasterise(walkers: list[WalkerView], background: np.ndarray, occluder: np.ndarray | None,
              gains: np.ndarray, shade: float, noise: np.ndarray, noise_offsets: np.ndarray):
    """Yield a `FrameLayers` per frame. Walker k's parts get labels k*64 + 1 + part index."""
    H, W = background.shape[:2]
    shift = FIXED_POINT_SHIFT
    uncovered = None if occluder is None else np.where(occluder, 0, 255).astype(np.uint8)
    palette = np.zeros((256, 3), dtype=np.float64)
    for k, walker in enumerate(walkers):
        palette[k * WALKER_LABELS + 1: k * WALKER_LABELS + 1 + len(walker.palette)] = walker.palette
    for t, gain in enumerate(gains):
        # illumination gain and the noise tile's offset in one saturating pass (background >= NOISE_OFFSET)
        image = cv2.convertScaleAbs(background, alpha=float(gain), beta=-NOISE_OFFSET)
        y0, y1, x0, x1 = _crop_box(walkers, t, W, H)
        labels = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=np.uint8)
        if labels.size:
            offset = np.array([x0, y0]) << shift
            shadow = np.zeros_like(labels)
            order = []
            for k, walker in enumerate(walkers):
                for index, part in enumerate(walker.geometry.parts):
                    depth = walker.depths[t, part.spheres].mean() + part.depth_bias
                    order.append((depth, k * WALKER_LABELS + 1 + index, walker, part))
                    hull = cv2.convexHull(walker.shadows[t, part.spheres].reshape(-1, 2) - offset)
                    cv2.fillConvexPoly(shadow, hull, 255, cv2.LINE_8, shift)
            order.sort(key=lambda item: -item[0])  # painter's algorithm: far parts first
            for _, label, walker, part in order:
                hull = cv2.convexHull(walker.outlines[t, part.spheres].reshape(-1, 2) - offset)
                cv2.fillConvexPoly(labels, hull, int(label), cv2.LINE_8, shift)
            if uncovered is not None:
                cv2.bitwise_and(labels, uncovered[y0:y1, x0:x1], dst=labels)
                cv2.bitwise_and(shadow, uncovered[y0:y1, x0:x1], dst=shadow)
            crop = image[y0:y1, x0:x1]
            # cast shadow on the ground where no walker is drawn
            cv2.bitwise_and(shadow, cv2.compare(labels, 0, cv2.CMP_EQ), dst=shadow)
            cv2.copyTo(cv2.convertScaleAbs(crop, alpha=shade), shadow, crop)
            colours = np.abs(np.round(palette * gain) - NOISE_OFFSET).clip(0, 255).astype(np.uint8)
            painted = cv2.LUT(cv2.merge([labels, labels, labels]), colours.reshape(1, 256, 3))
            cv2.copyTo(painted, labels, crop)
        oy, ox = noise_offsets[t]
        cv2.add(image, noise[oy:oy + H, ox:ox + W], dst=image)
        yield FrameLayers(image=image, labels=labels, origin=(y0, x0))
