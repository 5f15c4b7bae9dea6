"""Keypoint geometry shared by the pose backends: COCO-17 / H36M-17 layouts, top-down box -> crop affine
transforms (plain and UDP), the SimCC decoder (RTMPose) and the UDP + DARK heatmap decoder (ViTPose).

Every function is vectorised over a batch of boxes / keypoints and follows the mmpose 1.x conventions named in
its docstring, so that real checkpoints give the same numbers as upstream. Model loading lives in the backend
modules, not here.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ragar_data.errors import InputError

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# Left/right pairs of COCO-17, used to flip heatmaps back in flip test (upstream `flip_indices`).
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

H36M_KEYPOINTS = (
    "root", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "belly",
    "neck", "nose", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
    "right_wrist",
)
# MotionBERT `flip_data`: joints swapped when mirroring an H36M-17 pose.
H36M_LEFT = (4, 5, 6, 11, 12, 13)
H36M_RIGHT = (1, 2, 3, 14, 15, 16)


def flip_permutation(pairs, num_keypoints: int) -> np.ndarray:
    """Index array that swaps each left/right pair (applied after mirroring x)."""
    permutation = np.arange(num_keypoints)
    for left, right in pairs:
        permutation[left], permutation[right] = right, left
    return permutation


def coco_to_h36m(keypoints: np.ndarray) -> np.ndarray:
    """COCO-17 (..., 17, C) -> H36M-17 (..., 17, C), as MotionBERT's `coco2h36m` (lib/data/dataset_action.py):
    root = mid-hip, neck = mid-shoulder, belly = mid(root, neck), head = mid-eyes; every channel (x, y and
    confidence) is combined the same way."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape[-2] != 17:
        raise InputError(f"coco_to_h36m expects 17 COCO keypoints on axis -2, got shape {keypoints.shape}")
    h36m = np.zeros_like(keypoints)
    h36m[..., 0, :] = (keypoints[..., 11, :] + keypoints[..., 12, :]) * 0.5
    h36m[..., 1, :] = keypoints[..., 12, :]
    h36m[..., 2, :] = keypoints[..., 14, :]
    h36m[..., 3, :] = keypoints[..., 16, :]
    h36m[..., 4, :] = keypoints[..., 11, :]
    h36m[..., 5, :] = keypoints[..., 13, :]
    h36m[..., 6, :] = keypoints[..., 15, :]
    h36m[..., 8, :] = (keypoints[..., 5, :] + keypoints[..., 6, :]) * 0.5
    h36m[..., 7, :] = (h36m[..., 0, :] + h36m[..., 8, :]) * 0.5
    h36m[..., 9, :] = keypoints[..., 0, :]
    h36m[..., 10, :] = (keypoints[..., 1, :] + keypoints[..., 2, :]) * 0.5
    h36m[..., 11, :] = keypoints[..., 5, :]
    h36m[..., 12, :] = keypoints[..., 7, :]
    h36m[..., 13, :] = keypoints[..., 9, :]
    h36m[..., 14, :] = keypoints[..., 6, :]
    h36m[..., 15, :] = keypoints[..., 8, :]
    h36m[..., 16, :] = keypoints[..., 10, :]
    return h36m


# --------------------------------------------------------------------------------------------- boxes & affine
def boxes_to_center_scale(boxes: np.ndarray, input_size: tuple[int, int], padding: float = 1.25):
    """(N, 4) x1, y1, x2, y2 -> centres (N, 2) and scales (N, 2) in pixels, as mmpose `bbox_xyxy2cs` with
    padding 1.25, then `_fix_aspect_ratio` to the model input aspect (width / height): the shorter side grows."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    centers = np.stack([(boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5], axis=1)
    scales = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1) * padding
    aspect = input_size[0] / input_size[1]
    width, height = scales[:, 0], scales[:, 1]
    wider = width > height * aspect
    scales = np.stack([np.where(wider, width, height * aspect), np.where(wider, width / aspect, height)], axis=1)
    # A degenerate box (zero size) would give a singular warp: keep at least one pixel.
    return centers.astype(np.float32), np.maximum(scales, 1.0).astype(np.float32)


def warp_matrices(centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int], udp: bool) -> np.ndarray:
    """(N, 2, 3) image -> model-input affine matrices without rotation.

    Plain (mmpose `get_warp_matrix`, RTMPose): the box centre maps to the input centre and the box width to the
    input width. UDP (mmpose `get_udp_warp_matrix`, ViTPose): the box edges map to pixel centres 0 and size-1."""
    width, height = input_size
    if udp:
        factor = np.stack([(width - 1) / scales[:, 0], (height - 1) / scales[:, 1]], axis=1)
        offset = factor * (0.5 * scales - centers)
    else:
        factor = np.repeat((width / scales[:, 0])[:, None], 2, axis=1)
        offset = np.array([width * 0.5, height * 0.5]) - factor * centers
    matrices = np.zeros((len(centers), 2, 3), dtype=np.float64)
    matrices[:, 0, 0] = factor[:, 0]
    matrices[:, 1, 1] = factor[:, 1]
    matrices[:, :, 2] = offset
    return matrices


def crop_boxes(frames: np.ndarray, matrices: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Warp each frame through its matrix into an (N, H, W, 3) batch (bilinear, zero border, as mmpose
    `TopdownAffine`). One cv2 call per crop: the warp itself is the vectorised unit."""
    width, height = input_size
    crops = np.empty((len(frames), height, width, frames.shape[-1]), dtype=frames.dtype)
    for index, (frame, matrix) in enumerate(zip(frames, matrices)):
        crops[index] = cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR)
    return crops


def input_to_image(keypoints: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                   input_size: tuple[int, int]) -> np.ndarray:
    """Model-input pixel coordinates (N, K, 2) -> source image pixels, as mmpose `TopdownPoseEstimator`:
    x / input_size * scale + centre - scale / 2 (the inverse of the plain warp)."""
    size = np.asarray(input_size, dtype=np.float64)
    return (keypoints / size * scales[:, None, :] + centers[:, None, :] - 0.5 * scales[:, None, :]).astype(np.float32)


# -------------------------------------------------------------------------------------------------- SimCC
def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0):
    """RTMPose SimCC decoding (mmpose `SimCCLabel.decode`, `get_simcc_maximum`): location = argmax / split
    ratio in model-input pixels, score = the smaller of the two maxima (raw logits); a keypoint whose score is
    <= 0 gets location -1. Returns keypoints (N, K, 2) float32, scores (N, K) float32."""
    simcc_x = np.asarray(simcc_x, dtype=np.float32)
    simcc_y = np.asarray(simcc_y, dtype=np.float32)
    x_locations = simcc_x.argmax(axis=-1)
    y_locations = simcc_y.argmax(axis=-1)
    scores = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    keypoints = np.stack([x_locations, y_locations], axis=-1).astype(np.float32)
    keypoints[scores <= 0] = -1
    keypoints[scores > 0] /= split_ratio
    return keypoints, scores


# ----------------------------------------------------------------------------------------- heatmaps (UDP)
def heatmap_maximum(heatmaps: torch.Tensor):
    """Integer argmax (N, K, 2) x, y and max value (N, K) of (N, K, H, W) heatmaps; locations of maxima <= 0
    are -1 (mmpose `get_heatmap_maximum`)."""
    batch, joints, height, width = heatmaps.shape
    values, flat = heatmaps.reshape(batch, joints, -1).max(dim=-1)
    locations = torch.stack([flat % width, torch.div(flat, width, rounding_mode="floor")], dim=-1).to(heatmaps.dtype)
    locations[values <= 0] = -1
    return locations, values


def _gaussian_blur(heatmaps: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-padded Gaussian blur that keeps each heatmap's maximum (mmpose `gaussian_blur`; cv2's sigma for
    sigma=0: 0.3 * ((k - 1) / 2 - 1) + 0.8)."""
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(kernel_size, dtype=heatmaps.dtype, device=heatmaps.device) - (kernel_size - 1) / 2
    kernel_1d = torch.exp(-(taps ** 2) / (2 * sigma ** 2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch * joints, 1, height, width)
    original_max = flat.amax(dim=(2, 3), keepdim=True)
    pad = kernel_size // 2
    blurred = F.conv2d(flat, kernel_1d.view(1, 1, 1, -1), padding=(0, pad))
    blurred = F.conv2d(blurred, kernel_1d.view(1, 1, -1, 1), padding=(pad, 0))
    blurred = blurred * original_max / blurred.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return blurred.reshape(batch, joints, height, width)


def refine_dark_udp(locations: torch.Tensor, heatmaps: torch.Tensor, kernel_size: int = 11) -> torch.Tensor:
    """Sub-pixel refinement of integer maxima (mmpose `refine_keypoints_dark_udp`): blur, clip to
    [1e-3, 50], log, then one Newton step with central-difference gradient and Hessian on the edge-padded map."""
    batch, joints, height, width = heatmaps.shape
    log_maps = torch.log(_gaussian_blur(heatmaps, kernel_size).clamp(1e-3, 50.0))
    padded = F.pad(log_maps.reshape(batch * joints, 1, height, width), (1, 1, 1, 1), mode="replicate")
    padded = padded.reshape(batch, joints, height + 2, width + 2)
    x = locations[..., 0].long().clamp(0, width - 1) + 1
    y = locations[..., 1].long().clamp(0, height - 1) + 1
    batch_index = torch.arange(batch, device=heatmaps.device)[:, None]
    joint_index = torch.arange(joints, device=heatmaps.device)[None, :]

    def at(dx: int, dy: int) -> torch.Tensor:
        return padded[batch_index, joint_index, y + dy, x + dx]

    center = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = at(1, 0) - 2 * center + at(-1, 0)
    dyy = at(0, 1) - 2 * center + at(0, -1)
    dxy = 0.5 * (at(1, 1) - at(1, 0) - at(0, 1) + center + center - at(-1, 0) - at(0, -1) + at(-1, -1))
    hessian = torch.stack([torch.stack([dxx, dxy], -1), torch.stack([dxy, dyy], -1)], -2)
    # The tiny ridge keeps a flat (constant) heatmap solvable, as upstream's + eps on the diagonal.
    hessian = hessian + torch.eye(2, dtype=hessian.dtype, device=hessian.device) * torch.finfo(hessian.dtype).eps
    gradient = torch.stack([dx, dy], -1).unsqueeze(-1)
    step = torch.linalg.solve(hessian, gradient).squeeze(-1)
    refined = locations - step
    valid = (locations[..., 0] >= 0)[..., None]
    return torch.where(valid, refined, locations)


def decode_heatmaps_udp(heatmaps, input_size: tuple[int, int], kernel_size: int = 11, refine: bool = True):
    """ViTPose heatmap decoding (mmpose `UDPHeatmap.decode`): argmax, DARK-UDP refinement, then
    heatmap pixels -> model-input pixels by x / (W_hm - 1) * W_in (UDP keeps the end pixels aligned).
    Returns keypoints (N, K, 2) float32 in input pixels and scores (N, K) float32 (heatmap maxima)."""
    heatmaps = torch.as_tensor(heatmaps, dtype=torch.float32)
    batch, joints, height, width = heatmaps.shape
    locations, scores = heatmap_maximum(heatmaps)
    if refine:
        locations = refine_dark_udp(locations, heatmaps, kernel_size)
    scale = torch.tensor([input_size[0] / (width - 1), input_size[1] / (height - 1)], dtype=torch.float32)
    keypoints = locations * scale
    return keypoints.numpy().astype(np.float32), scores.numpy().astype(np.float32)
