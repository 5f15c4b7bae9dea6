"""Attribute labels of synthetic subjects, and their translation into body shape and gait parameters.

Owns: the label priors, the simulated combinations 1-2 (same body identity, some posture and motion attributes
changed, as RA-GAR's subjects imitated other gaits), and `walker_parameters(labels, identity)`: the graded
effect of every one of the 15 attributes. It does not move joints (`gait.py`) or draw anything (`render.py`).

Class indices follow `schemas/attributes.yaml` (order of `classes`); the generator refers to attributes by
name and checks the class counts it was written for, so a schema change fails loudly here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import SchemaError
from ragar_data.synth.config import SynthConfig, stream

# attribute name -> class prior (index order of the schema). Heights and hands are kept fairly balanced so that
# a few dozen subjects cover every class; gender-dependent hair is drawn separately.
PRIORS = {
    "gender": [0.5, 0.5],
    "age": [0.4, 0.35, 0.25],
    "height": [0.15, 0.2, 0.3, 0.2, 0.15],
    "body_mass": [0.2, 0.4, 0.25, 0.15],
    "hair": [0.15, 0.45, 0.2, 0.2],
    "forward_head_position": [0.7, 0.3],
    "uneven_shoulders": [0.6, 0.2, 0.2],
    "humpback": [0.75, 0.25],
    "hands": [0.5, 0.26, 0.12, 0.12],
    "arm_swing_direction": [0.4, 0.15, 0.15, 0.15, 0.15],
    "arm_swing_amplitude": [0.65, 0.35],
    "upper_arm_movement": [0.6, 0.4],
    "toe": [0.5, 0.25, 0.25],
    "drag_feet": [0.75, 0.25],
    "limping": [0.75, 0.25],
}
HAIR_BY_GENDER = ([0.25, 0.55, 0.1, 0.1], [0.03, 0.27, 0.35, 0.35])  # male, female
# attributes a subject can act out in the simulated combinations (A6-A15); A1-A5 are the body itself
ACTABLE = ("forward_head_position", "uneven_shoulders", "humpback", "hands", "arm_swing_direction",
           "arm_swing_amplitude", "upper_arm_movement", "toe", "drag_feet", "limping")
# stature bands (m) of the 5 height classes, with gaps so that a class is a visible step
STATURE_BANDS = ((1.48, 1.56), (1.58, 1.66), (1.68, 1.76), (1.78, 1.86), (1.88, 1.97))


def check_schema(schema: AttributeSchema) -> None:
    """The generator renders exactly the attributes and class counts it knows; anything else is an error."""
    expected = {name: len(prior) for name, prior in PRIORS.items()}
    found = dict(zip(schema.names, schema.num_classes))
    if found != expected:
        raise SchemaError(f"the synthetic generator renders attributes {expected}, but the schema has {found}; "
                          "update ragar_data/synth/body.py for the new schema")


def _draw(rng: np.random.Generator, prior) -> int:
    return int(rng.choice(len(prior), p=np.asarray(prior) / np.sum(prior)))


def own_labels(seed: int, subject: str, schema: AttributeSchema | None = None) -> np.ndarray:
    """Labels of combination 0 (the subject's own gait)."""
    schema = schema or default_schema()
    check_schema(schema)
    rng = stream(seed, "labels", subject)
    labels = np.zeros(len(schema), dtype=np.int8)
    for index, name in enumerate(schema.names):
        labels[index] = _draw(rng, PRIORS[name])
    labels[schema.names.index("hair")] = _draw(rng, HAIR_BY_GENDER[labels[schema.names.index("gender")]])
    return labels


def simulated_labels(seed: int, subject: str, combination: int, schema: AttributeSchema | None = None) -> np.ndarray:
    """Labels of a simulated combination: 3-5 actable attributes of the own labels changed to another class."""
    schema = schema or default_schema()
    labels = own_labels(seed, subject, schema)
    if combination == 0:
        return labels
    rng = stream(seed, "combination", subject, combination)
    changed = rng.choice(len(ACTABLE), size=int(rng.integers(3, 6)), replace=False)
    for position in sorted(changed):
        attribute = schema[ACTABLE[position]]
        index = schema.names.index(attribute.name)
        others = [k for k in range(attribute.num_classes) if k != labels[index]]
        labels[index] = others[int(rng.integers(len(others)))]
    return labels


def subject_attributes(config: SynthConfig, schema: AttributeSchema | None = None) -> dict[tuple[str, int], np.ndarray]:
    """(subject id, combination) -> (15,) int8 class indices for every subject and combination of `config`."""
    schema = schema or default_schema()
    return {(subject, combination): simulated_labels(config.seed, subject, combination, schema)
            for subject in config.subject_ids for combination in config.combinations}


@dataclass(frozen=True)
class Identity:
    """What stays the same for a subject across combinations and conditions: body variation and clothes."""

    stature_position: float  # 0..1 inside the height class band
    shoulder_scale: float
    hip_scale: float
    girth_scale: float
    leg_ratio_offset: float
    head_scale: float
    speed_scale: float
    arm_scale: float
    step_width: float
    affected_side: int  # +1 right, -1 left: the limping leg
    skin: tuple
    hair_colour: tuple
    shirt: tuple
    trousers: tuple
    shoes: tuple
    coat: tuple
    backpack: tuple


def _colour(rng, low, high) -> tuple:
    return tuple(int(v) for v in rng.integers(low, high, size=3))


def subject_identity(seed: int, subject: str) -> Identity:
    rng = stream(seed, "identity", subject)
    skin_tone = rng.uniform(0.35, 1.0)
    skin = tuple(int(v) for v in np.array([224, 172, 138]) * skin_tone + np.array([20, 15, 10]))
    shirt_palette = [(180, 40, 40), (40, 70, 160), (230, 230, 225), (40, 120, 60), (200, 160, 40),
                     (90, 90, 95), (120, 50, 130), (30, 30, 35), (210, 110, 60)]
    trousers_palette = [(40, 45, 70), (30, 30, 30), (110, 100, 80), (70, 80, 110), (150, 140, 120)]
    return Identity(
        stature_position=float(rng.uniform(0.0, 1.0)),
        shoulder_scale=float(rng.normal(1.0, 0.035)),
        hip_scale=float(rng.normal(1.0, 0.035)),
        girth_scale=float(rng.normal(1.0, 0.04)),
        leg_ratio_offset=float(rng.normal(0.0, 0.006)),
        head_scale=float(rng.normal(1.0, 0.03)),
        speed_scale=float(rng.normal(1.0, 0.06)),
        arm_scale=float(rng.normal(1.0, 0.1)),
        step_width=float(rng.uniform(0.02, 0.06)),
        affected_side=int(rng.choice([-1, 1])),
        skin=skin,
        hair_colour=_colour(rng, 15, 90) if rng.random() < 0.8 else _colour(rng, 120, 200),
        shirt=shirt_palette[int(rng.integers(len(shirt_palette)))],
        trousers=trousers_palette[int(rng.integers(len(trousers_palette)))],
        shoes=_colour(rng, 10, 70),
        coat=_colour(rng, 40, 170),
        backpack=_colour(rng, 20, 150),
    )


@dataclass(frozen=True)
class WalkerParameters:
    """Shape (metres) and motion (degrees, Hz, m/s) of one walker; the graded result of its 15 labels."""

    # shape
    stature: float
    leg_fraction: float  # hip joint height / stature
    head_radius: float
    shoulder_half_width: float
    hip_half_width: float
    girth: float  # limb and torso radius multiplier
    belly: float  # forward belly protrusion (m)
    hair: int  # 0 bald, 1 short, 2 shoulder-length, 3 ponytail
    head_forward: float  # head centre ahead of the shoulders (m)
    shoulder_tilt: float  # left shoulder minus right shoulder height (m)
    hump: float  # upper-back kyphosis 0..1
    hand_pose: int  # 0 open, 1 fist, 2 in pockets, 3 behind the back
    # motion
    speed: float
    cadence: float  # steps per second
    trunk_lean: float  # forward lean (deg)
    knee_bend: float  # extra knee flexion through the cycle (deg), older walkers
    arm_amplitude: float  # shoulder swing half-amplitude (deg)
    arm_offset: float  # shoulder swing centre (deg, + forward)
    arm_abduction: float  # arm held away from the body (deg)
    arm_cross: float  # forearm swings across the body when forward (deg, + inward)
    upper_arm_still: float  # 0 swinging from the shoulder .. 1 only the forearm swings
    toe_yaw: float  # foot yaw (deg, + outward)
    swing_knee_peak: float  # knee flexion in swing (deg); low = dragging feet
    swing_toe_pitch: float  # toe pitch in swing (deg, + toe up)
    limp: float  # 0..1 asymmetry of the affected leg
    affected_side: int
    hip_sway: float  # pelvis lateral sway (m)
    step_width: float


def walker_parameters(labels: np.ndarray, identity: Identity, schema: AttributeSchema | None = None) -> WalkerParameters:
    """The body and gait of a walker with these (15,) class indices and this identity."""
    schema = schema or default_schema()
    check_schema(schema)
    a = {name: int(labels[i]) for i, name in enumerate(schema.names)}
    female = a["gender"] == 1
    low, high = STATURE_BANDS[a["height"]]
    stature = low + (high - low) * identity.stature_position
    relative = stature / 1.72
    # taller people have relatively longer legs and smaller heads (anthropometric trend): visible after the
    # silhouette is normalised to a fixed height, where absolute stature is lost
    leg_fraction = 0.515 + 0.06 * (stature - 1.72) + identity.leg_ratio_offset
    head_radius = 0.098 * relative ** 0.35 * identity.head_scale
    mass_girth = (0.78, 1.0, 1.25, 1.52)[a["body_mass"]]
    girth = mass_girth * identity.girth_scale
    shoulder_half = (0.205 if not female else 0.172) * relative ** 0.6 * identity.shoulder_scale
    hip_half = (0.082 if not female else 0.102) * relative ** 0.6 * identity.hip_scale
    age = a["age"]
    # age: older walkers are slower, take shorter steps, stoop and keep their knees bent
    speed = (1.45, 1.25, 0.98)[age] * identity.speed_scale
    cadence = (1.92, 1.85, 1.7)[age] * (0.97 + 0.06 * identity.stature_position) / relative ** 0.3
    amplitude = (30.0, 10.0)[a["arm_swing_amplitude"]] * identity.arm_scale * (1.1, 0.95, 0.8)[age]
    # arm swing direction: a swing centre moved forward or backward, an abducted swing, or a forearm
    # crossing in front of the body; offsets in degrees so the direction shows at small amplitudes too
    direction = a["arm_swing_direction"]
    arm_offset = 4.0 + {3: 0.5 * amplitude + 20.0, 4: -0.5 * amplitude - 18.0}.get(direction, 0.0)
    arm_abduction = 6.0 + {1: -5.0, 2: 26.0}.get(direction, 0.0) + 4.0 * (girth - 1.0) * 4
    arm_cross = {1: 50.0, 2: -14.0}.get(direction, 0.0)
    return WalkerParameters(
        stature=stature, leg_fraction=leg_fraction, head_radius=head_radius,
        shoulder_half_width=shoulder_half, hip_half_width=hip_half, girth=girth,
        belly=max(0.0, (girth - 1.05)) * 0.22,
        hair=a["hair"],
        head_forward=(0.012, 0.085)[a["forward_head_position"]],
        shoulder_tilt=(0.0, 0.055, -0.055)[a["uneven_shoulders"]],
        hump=(0.0, 1.0)[a["humpback"]],
        hand_pose=a["hands"],
        speed=speed, cadence=cadence,
        trunk_lean=(1.0, 6.0, 14.0)[age],
        knee_bend=(0.0, 5.0, 14.0)[age],
        arm_amplitude=amplitude, arm_offset=arm_offset, arm_abduction=arm_abduction, arm_cross=arm_cross,
        upper_arm_still=(0.0, 0.85)[a["upper_arm_movement"]],
        toe_yaw=(6.0, -22.0, 30.0)[a["toe"]],
        swing_knee_peak=(62.0, 28.0)[a["drag_feet"]],
        swing_toe_pitch=(12.0, -14.0)[a["drag_feet"]],
        limp=(0.0, 1.0)[a["limping"]],
        affected_side=identity.affected_side,
        hip_sway=(0.022 if not female else 0.035),
        step_width=identity.step_width,
    )


def with_speed(parameters: WalkerParameters, scale: float) -> WalkerParameters:
    return replace(parameters, speed=parameters.speed * scale, cadence=parameters.cadence * scale ** 0.5)
