"""Pinhole cameras of the synthetic scene and projection of points and spheres.

View convention (as CASIA-B / RA-GAR angles): the view angle is the azimuth of the camera around the walk,
measured from the walking direction, counter-clockwise seen from above (towards the walker's left side):
  0 deg = the walker comes straight towards the camera (front view), 90 deg = the camera sees the walker's
  left side and the walker crosses the image from right to left, 180 deg = walking straight away (back view),
  270 deg = the right side, crossing from left to right; 36, 72, ... are the oblique views in between.
Every camera stands `camera_height` (1.3 m, as RA-GAR) above the ground, `camera_distance` from the middle of
the walk, looks at a point 0.85 m above it (slightly down), and has square pixels and a centred principal
point. World frame: x = walking direction, y = the walker's left, z up, origin on the ground mid-walk.
Camera frame (OpenCV): x right, y down, z forward; X_cam = R @ X_world + t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOOK_AT_HEIGHT = 0.85


@dataclass(frozen=True)
class Camera:
    K: np.ndarray  # (3, 3) intrinsics, pixels
    R: np.ndarray  # (3, 3) world -> camera rotation
    t: np.ndarray  # (3,) world -> camera translation, metres
    width: int
    height: int

    @property
    def centre(self) -> np.ndarray:
        """Camera position in world coordinates."""
        return -self.R.T @ self.t

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera coordinates (metres)."""
        return points @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) world points -> (..., 2) pixel coordinates (pixel centres at integers) and depth (...)."""
        camera_points = self.to_camera(points)
        depth = camera_points[..., 2]
        safe = np.maximum(depth, 1e-3)
        pixels = np.stack([
            self.K[0, 0] * camera_points[..., 0] / safe + self.K[0, 2],
            self.K[1, 1] * camera_points[..., 1] / safe + self.K[1, 2],
        ], axis=-1)
        return pixels, depth

    def project_spheres(self, centres: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sphere centres (..., 3) and radii -> image centres (..., 2), image radii (...), depths (...).

        The outline of a sphere under perspective is an ellipse close to a circle of radius f r / z for the
        distances and field of view used here; the generator defines its surface by these circles."""
        pixels, depth = self.project(centres)
        return pixels, self.K[0, 0] * radii / np.maximum(depth, 1e-3), depth


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def view_camera(view_deg: float, width: int, height: int, distance: float, camera_height: float,
                focal_scale: float) -> Camera:
    """The camera of one view angle (see the module docstring for the convention)."""
    azimuth = np.radians(view_deg)
    position = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), camera_height])
    R = look_at(position, np.array([0.0, 0.0, LOOK_AT_HEIGHT]))
    focal = focal_scale * height
    K = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=R, t=-R @ position, width=width, height=height)
