"""Settings of the synthetic generator (`SynthConfig`) and the seeded random streams derived from them.

Every random quantity of the generator comes from `stream(config.seed, *tags)`: a numpy Generator seeded with a
SeedSequence built from the seed and string tags (subject, combination, condition, view, purpose). Streams are
independent of call order, process and thread count, so any sequence renders the same alone or in a batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from ragar_data.identity import COMBINATIONS, CONDITIONS, VIEWS
from ragar_data.typed_config import build, check, setting


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


@dataclass(frozen=True)
class SynthConfig:
    """What to render. Defaults mirror RA-GAR: 1920x1080, 30 fps, 10 views, 3 combinations, 8 conditions.
    Types and bounds are checked on construction (`ragar_data.typed_config`); a bad value is a `ConfigError`
    (also a ValueError) naming the field."""

    subjects: int = setting(2, min=1)
    seed: int = setting(0, min=0)
    views: tuple[int, ...] = setting(VIEWS, min=0, max=359)  # angles in degrees
    combinations: tuple[int, ...] = setting(COMBINATIONS, choices=COMBINATIONS)
    conditions: tuple[str, ...] = setting(CONDITIONS, choices=CONDITIONS)
    seconds: float = setting(3.0, above=0.0)
    width: int = setting(1920, min=32)  # even (H.264 yuv420p)
    height: int = setting(1080, min=32)  # even
    fps: int = setting(30, min=1)
    distractors: int = setting(0, choices=(0, 1))  # 0 or 1: a second walker crossing the scene
    occlusion: bool = False  # a post in front of the path of every camera
    # selection tests: a person-sized box (a cabinet) standing beside the path, at another place in every
    # sequence (so a camera's background plate does not hold it), and seconds the subject stands still (one
    # held pose) before it starts walking
    static_object: bool = False
    standing_seconds: float = setting(0.0, min=0.0)
    # cameras: RA-GAR's cameras stand 1.3 m high; the path passes `camera_distance` m from each of them
    camera_height: float = setting(1.3, above=0.0)
    camera_distance: float = setting(6.5, above=0.0)
    # focal length in units of the frame height (vertical field of view 28 deg)
    focal_scale: float = setting(2.0, above=0.0)
    noise_sigma: float = setting(2.5, min=0.0)  # sensor noise, grey levels
    # video encoding (PyAV)
    codec: str = "libx264"
    crf: int = setting(20, min=0, max=51)  # x264's constant rate factor range
    preset: str = "ultrafast"  # x264 preset; veryfast gives ~5x smaller files at ~1/3 the speed
    first_subject: int = setting(1, min=0)

    def __post_init__(self):
        check(self)

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        for name, values in (("views", self.views), ("combinations", self.combinations),
                             ("conditions", self.conditions)):
            if not values:
                problems.append((name, "must not be empty"))
        for name in ("width", "height"):
            if getattr(self, name) % 2:
                problems.append((name, f"must be even (H.264 yuv420p), found {getattr(self, name)}"))
        if self.standing_seconds and self.standing_seconds >= self.seconds:
            problems.append(("standing_seconds", f"must be shorter than seconds ({self.seconds}), found "
                                                 f"{self.standing_seconds}"))
        if self.codec == "libx264" and self.preset not in X264_PRESETS:
            problems.append(("preset", f"must be an x264 preset ({', '.join(X264_PRESETS)}), found {self.preset!r}"))
        return problems

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
    def from_dict(cls, document: dict, source: str = "SynthConfig") -> SynthConfig:
        """The config of `to_dict()` (e.g. `synth.json`'s "config"); `source` names it in errors."""
        return build(cls, document, source)


def stream(seed: int, *tags) -> np.random.Generator:
    """A random Generator for (seed, tags), stable across machines, processes and Python hash seeds."""
    digest = hashlib.sha256("/".join(str(t) for t in tags).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, *words]))
