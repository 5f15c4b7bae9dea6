"""Contact sheet of a synthetic subject: one frame per view (columns) and condition (rows), as a PNG.

An explicit visualisation (RGB allowed): the middle frame of each sequence, the ground-truth box drawn in
green and the visible COCO keypoints as small red dots, labelled with view and condition.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ragar_data.atomic import atomic_write_bytes
from ragar_data.identity import SequenceKey
from ragar_data.synth.config import SynthConfig
from ragar_data.synth.sequence import stream_sequence


def middle_frame(config: SynthConfig, key: SequenceKey) -> tuple[np.ndarray, dict]:
    frames, truth = stream_sequence(config, key)
    middle = config.num_frames // 2
    for index, frame in enumerate(frames):
        if index == middle:
            chosen = frame.copy()
    return chosen, {"box": truth["boxes"][middle], "keypoints": truth["keypoints_2d"][middle]}


def contact_sheet(config: SynthConfig, subject: str | None = None, combination: int | None = None,
                  thumb_width: int = 320) -> np.ndarray:
    """(rows*h, cols*w, 3) uint8 RGB grid for one subject and combination."""
    subject = subject or config.subject_ids[0]
    combination = config.combinations[0] if combination is None else combination
    scale = thumb_width / config.width
    thumb_height = int(round(config.height * scale))
    rows = []
    for condition in config.conditions:
        row = []
        for view in config.views:
            frame, truth = middle_frame(config, SequenceKey(subject, combination, condition, view))
            thumb = cv2.resize(frame, (thumb_width, thumb_height), interpolation=cv2.INTER_AREA)
            box = truth["box"]
            if np.isfinite(box).all():
                x1, y1, x2, y2 = np.round(box * scale).astype(int)
                cv2.rectangle(thumb, (x1, y1), (x2 - 1, y2 - 1), (0, 220, 0), 1)
            for x, y, visible in truth["keypoints"]:
                if visible:
                    cv2.circle(thumb, (int(round(x * scale)), int(round(y * scale))), 1, (230, 0, 0), -1)
            cv2.putText(thumb, f"{condition} {view:03d}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1, cv2.LINE_AA)
            row.append(thumb)
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def write_preview(path: str | Path, config: SynthConfig, subject: str | None = None,
                  combination: int | None = None) -> Path:
    """Write the contact sheet PNG atomically."""
    path = Path(path)
    sheet = contact_sheet(config, subject, combination)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())
    return path
