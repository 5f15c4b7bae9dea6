"""Settings of the synthetic generator (`SynthConfig`) and the seeded random streams derived from them.

Every random quantity of the generator comes from `stream(config.seed, *tags)`: a numpy Generator seeded with a
SeedSequence built from the seed and string tags (subject, combination, condition, view, purpose). Streams are
independent of call order, process and thread count, so any sequence renders the same alone or in a batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields

import numpy as np

from ragar_data.errors import ConfigError
from ragar_data.identity import COMBINATIONS, CONDITIONS, VIEWS


@dataclass(frozen=True)
class SynthConfig:
    """What to render. Defaults mirror RA-GAR: 1920x1080, 30 fps, 10 views, 3 combinations, 8 conditions."""

    subjects: int = 2
    seed: int = 0
    views: tuple[int, ...] = VIEWS
    combinations: tuple[int, ...] = COMBINATIONS
    conditions: tuple[str, ...] = CONDITIONS
    seconds: float = 3.0
    width: int = 1920
    height: int = 1080
    fps: int = 30
    distractors: int = 0  # 0 or 1: a second walker crossing the scene
    occlusion: bool = False  # a post in front of the path of every camera
    # cameras: RA-GAR's cameras stand 1.3 m high; the path passes `camera_distance` m from each of them
    camera_height: float = 1.3
    camera_distance: float = 6.5
    focal_scale: float = 2.0  # focal length in units of the frame height (vertical field of view 28 deg)
    noise_sigma: float = 2.5  # sensor noise, grey levels
    # video encoding (PyAV)
    codec: str = "libx264"
    crf: int = 20
    preset: str = "ultrafast"  # x264 preset; veryfast gives ~5x smaller files at ~1/3 the speed
    first_subject: int = 1

    def __post_init__(self):
        object.__setattr__(self, "views", tuple(int(v) for v in self.views))
        object.__setattr__(self, "combinations", tuple(int(c) for c in self.combinations))
        object.__setattr__(self, "conditions", tuple(str(c) for c in self.conditions))
        problems = []
        if self.subjects < 1:
            problems.append(f"subjects must be >= 1, got {self.subjects}")
        if not self.views or any(not 0 <= v < 360 for v in self.views):
            problems.append(f"views must be angles 0..359 degrees, got {self.views}")
        if not self.combinations or any(c not in COMBINATIONS for c in self.combinations):
            problems.append(f"combinations must be a subset of {COMBINATIONS}, got {self.combinations}")
        if not self.conditions or any(c not in CONDITIONS for c in self.conditions):
            problems.append(f"conditions must be a subset of {CONDITIONS}, got {self.conditions}")
        if self.seconds <= 0 or self.fps < 1:
            problems.append(f"seconds and fps must be positive, got {self.seconds}, {self.fps}")
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            problems.append(f"width and height must be even and >= 32 (H.264 yuv420p), got {self.width}x{self.height}")
        if self.distractors not in (0, 1):
            problems.append(f"distractors must be 0 or 1, got {self.distractors}")
        if problems:
            raise ConfigError("invalid SynthConfig: " + "; ".join(problems))

    @classmethod
    def small(cls, **overrides) -> SynthConfig:
        """Tiny settings for tests: 2 subjects, 320x180, 2 views (0 and 90 deg), 1 second, 2 conditions."""
        settings = dict(subjects=2, views=(0, 90), conditions=("nm-01", "bg-01"), seconds=1.0,
                        width=320, height=180, fps=30)
        settings.update(overrides)
        return cls(**settings)

    @property
    def num_frames(self) -> int:
        return max(1, int(round(self.seconds * self.fps)))

    @property
    def subject_ids(self) -> list[str]:
        return [f"{i:03d}" for i in range(self.first_subject, self.first_subject + self.subjects)]

    def to_dict(self) -> dict:
        document = asdict(self)
        for name in ("views", "combinations", "conditions"):
            document[name] = list(document[name])
        return document

    @classmethod
    def from_dict(cls, document: dict) -> SynthConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise ConfigError(f"unknown SynthConfig fields {unknown}; known: {sorted(known)}")
        return cls(**document)


def stream(seed: int, *tags) -> np.random.Generator:
    """A random Generator for (seed, tags), stable across machines, processes and Python hash seeds."""
    digest = hashlib.sha256("/".join(str(t) for t in tags).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, *words]))
