"""Visual check of one extracted sequence: boxes, track ids, mask outline and keypoints drawn over its frames.

The only place (besides the synthetic generator's raw videos) where RGB frames are written, and only on explicit
request (`ragar-data viz KEY --videos DIR --out strip.png|clip.mp4`). Reads the run's shards and side data (tracks
always; masks when the run kept them with `--keep-masks`). A clip plays at the source's frame rate. It sits
beside the extraction stages because it decodes the source video with the decode stage.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ragar_data.atomic import atomic_path
from ragar_data.errors import InputError, RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.pipelines.decode import PyAVDecoder, decode_clip
from ragar_data.run_state import current_run
from ragar_data.shards import ShardDataset

# COCO-17 limbs (pairs of keypoint indices) for drawing the skeleton
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                 (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
SUBJECT, OTHER, OUTLINE, JOINT = (40, 220, 40), (170, 170, 170), (255, 220, 0), (255, 60, 60)


def draw_frame(frame: np.ndarray, *, subject_box=None, subject_id=None, other_boxes=(), other_ids=(), mask=None,
               keypoints=None, min_score: float = 0.3) -> np.ndarray:
    """A copy of `frame` (H, W, 3) RGB with the overlays drawn; line widths follow the frame size."""
    image = frame.copy()
    thickness = max(1, round(image.shape[0] / 360))
    for box, track_id in zip(other_boxes, other_ids):
        x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
        cv2.rectangle(image, (x1, y1), (x2, y2), OTHER, thickness)
        cv2.putText(image, str(int(track_id)), (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness,
                    OTHER, thickness)
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(image, contours, -1, OUTLINE, thickness)
    if subject_box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in subject_box[:4])
        cv2.rectangle(image, (x1, y1), (x2, y2), SUBJECT, thickness + 1)
        cv2.putText(image, f"subject {subject_id}", (x1, max(10, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * thickness, SUBJECT, thickness)
    if keypoints is not None:
        points = np.asarray(keypoints, np.float32)
        for a, b in COCO_SKELETON:
            if points[a, 2] >= min_score and points[b, 2] >= min_score:
                cv2.line(image, tuple(int(v) for v in points[a, :2]), tuple(int(v) for v in points[b, :2]), JOINT,
                         thickness)
        for x, y, score in points:
            if score >= min_score:
                cv2.circle(image, (int(x), int(y)), thickness + 1, JOINT, -1)
    return image


def _find_video(videos: Path, key: SequenceKey, source: str | None) -> Path:
    candidates = [videos / source] if source else []
    candidates += [videos / key.raw_video_relpath(suffix) for suffix in (".mp4", ".avi", ".mkv", ".mov")]
    for path in candidates:
        if path.is_file():
            return path
    raise RagarDataError(f"video of {key} not found under {videos} (tried {', '.join(map(str, candidates))})")


def overlay_frames(run_dir: str | Path, key: str, videos: str | Path) -> tuple[list[np.ndarray], list[int], float]:
    """Frames of the subject's track with overlays, their source frame indices and the source's frame rate."""
    run_dir, videos = Path(run_dir), Path(videos)
    dataset = ShardDataset(run_dir)
    if key not in dataset:
        raise RagarDataError(f"sequence {key} is not in {run_dir} ({len(dataset)} sequences)")
    record = dataset.read_record(key, ["frame_index", "boxes", "track_id", "keypoints_2d", "source", "fps"])
    if len(record["frame_index"]) == 0:
        raise RagarDataError(f"{key}: no subject track was found, nothing to draw")
    folder, _ = current_run(run_dir)
    tracks, masks = folder.read_tracks(key), folder.read_masks(key)
    path = _find_video(videos, SequenceKey.parse(key), record["source"])
    first, last = int(record["frame_index"].min()), int(record["frame_index"].max())
    clip = decode_clip(path, PyAVDecoder(), start_frame=first, end_frame=last + 1, work_width=0)
    where = {int(f): i for i, f in enumerate(clip.frame_index)}
    images, indices = [], []
    for row, frame_index in enumerate(record["frame_index"]):
        others, other_ids = (), ()
        if tracks is not None:
            here = (tracks["frame_index"] == frame_index) & (tracks["track_id"] != record["track_id"])
            others, other_ids = tracks["boxes"][here], tracks["track_id"][here]
        images.append(draw_frame(
            clip.rgb(where[int(frame_index)]), subject_box=record["boxes"][row], subject_id=record["track_id"],
            other_boxes=others, other_ids=other_ids, mask=masks.full(row) if masks is not None else None,
            keypoints=record["keypoints_2d"][row] if record["keypoints_2d"] is not None else None))
        indices.append(int(frame_index))
    return images, indices, float(record["fps"])


def write_visualisation(run_dir: str | Path, key: str, videos: str | Path, out: str | Path, *, frames: int = 8,
                        height: int = 360) -> Path:
    """`out` .png: a strip of `frames` evenly spaced frames, `height` pixels tall; .mp4: every subject frame."""
    out = Path(out)
    images, indices, fps = overlay_frames(run_dir, key, videos)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        picks = np.unique(np.linspace(0, len(images) - 1, min(frames, len(images))).round().astype(int))
        scale = height / images[0].shape[0]
        tiles = []
        for pick in picks:
            tile = cv2.resize(images[pick], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cv2.putText(tile, f"frame {indices[pick]}", (5, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1)
            tiles.append(tile)
        with atomic_path(out) as temporary:
            if not cv2.imwrite(str(temporary), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR)):
                raise RagarDataError(f"{out}: could not write the PNG")
    elif out.suffix.lower() == ".mp4":
        from fractions import Fraction

        from ragar_data.synth.video import write_video

        height_px, width_px = images[0].shape[:2]
        # as a fraction: 29.97 fps sources are 30000/1001
        write_video(out, images, Fraction(fps).limit_denominator(1001), width_px, height_px)
    else:
        raise InputError(f"{out}: write a .png strip or an .mp4 clip")
    return out
