"""A parametric gait cycle driving an articulated body made of spheres, in world coordinates (metres, z up).

Owns the kinematics: joint angles as smooth periodic functions of the gait phase, forward kinematics of legs,
trunk and head, two-link inverse kinematics for hands in pockets or behind the back, ground contact (the
pelvis height keeps the lowest foot on the ground, which gives the vertical bob), and the body surface as
parts, each the convex hull of a few spheres (a limb is a tapered capsule: the hull of two spheres). It also
places the COCO-17 and H36M-17 joints on that body. Everything is vectorised over the frames.

Walker frame: x forward, y to the walker's left, z up. Projection and drawing are elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragar_data.synth.body import WalkerParameters

RIGHT, LEFT = -1, 1  # sign of the walker-frame y axis on that side


@dataclass(frozen=True)
class Part:
    name: str
    spheres: np.ndarray  # indices into WalkerGeometry.centres
    colour: str  # palette key: skin, hair, shirt, trousers, shoes, coat, backpack
    depth_bias: float = 0.0  # metres added to the part's depth when ordering for painting


@dataclass
class WalkerGeometry:
    centres: np.ndarray  # (T, S, 3) sphere centres, world metres
    radii: np.ndarray  # (S,) sphere radii, metres
    parts: list[Part]
    coco: np.ndarray  # (T, 17, 3) COCO-17 joints, world
    h36m: np.ndarray  # (T, 17, 3) H36M-17 joints, world


class _Spheres:
    """Collects spheres (T,3 centres, radius) and parts made of them."""

    def __init__(self, frames: int):
        self.frames = frames
        self.centres: list[np.ndarray] = []
        self.radii: list[float] = []
        self.parts: list[Part] = []

    def add(self, centre: np.ndarray, radius: float) -> int:
        self.centres.append(np.broadcast_to(centre, (self.frames, 3)))
        self.radii.append(float(radius))
        return len(self.radii) - 1

    def part(self, name: str, spheres: list[tuple[np.ndarray, float]], colour: str, depth_bias: float = 0.0):
        indices = np.array([self.add(c, r) for c, r in spheres], dtype=np.int64)
        self.parts.append(Part(name, indices, colour, depth_bias))


def _bump(phase: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A periodic Gaussian bump of the gait phase (period 1)."""
    delta = (phase - centre + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (delta / width) ** 2)


def _sagittal(angle_deg: np.ndarray, lateral_deg: np.ndarray | float, side: int) -> np.ndarray:
    """Unit vector hanging down, swung forward by `angle` and out to `side` by `lateral` (degrees)."""
    a, b = np.radians(angle_deg), np.radians(lateral_deg)
    a, b = np.broadcast_arrays(a, b)
    return np.stack([np.sin(a) * np.cos(b), side * np.sin(b), -np.cos(a) * np.cos(b)], axis=-1)


def _lean(offset: np.ndarray, lean_deg: np.ndarray, roll_deg: np.ndarray | float = 0.0) -> np.ndarray:
    """Rotate upright-frame offsets (T,3) by a forward lean (about y) and a sideways roll (about x)."""
    a = np.radians(lean_deg)[:, None]
    x, y, z = offset[..., 0], offset[..., 1], offset[..., 2]
    x, z = x * np.cos(a[:, 0]) + z * np.sin(a[:, 0]), -x * np.sin(a[:, 0]) + z * np.cos(a[:, 0])
    r = np.radians(np.broadcast_to(roll_deg, a[:, 0].shape))
    y, z = y * np.cos(r) - z * np.sin(r), y * np.sin(r) + z * np.cos(r)
    return np.stack([x, y, z], axis=-1)


def _two_link(shoulder, target, upper, lower, pole) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist of an arm reaching `target` from `shoulder`, the elbow bending towards `pole`."""
    reach = target - shoulder
    distance = np.linalg.norm(reach, axis=-1, keepdims=True)
    axis = reach / np.maximum(distance, 1e-9)
    distance = np.clip(distance, abs(upper - lower) + 1e-3, upper + lower - 1e-3)
    along = (upper ** 2 - lower ** 2 + distance ** 2) / (2 * distance)
    height = np.sqrt(np.maximum(upper ** 2 - along ** 2, 0.0))
    pole = np.broadcast_to(pole, reach.shape)
    pole = pole - np.sum(pole * axis, axis=-1, keepdims=True) * axis
    pole = pole / np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-9)
    return shoulder + along * axis + height * pole, shoulder + distance * axis


def walker_geometry(p: WalkerParameters, frames: int, fps: float, phase0: float, start: np.ndarray,
                    heading_deg: float, condition: str, coat_length: float = 0.5) -> WalkerGeometry:
    """Spheres, parts and joints of a walker for `frames` frames, starting at `start` (x, y) and walking
    along `heading_deg` (0 = world +x). `condition` is nm/bg/cl; `coat_length` 0..1 (hip to knee) for cl."""
    group = condition[:2]
    time = np.arange(frames) / fps
    cycle = p.cadence / 2.0  # gait cycles per second (one cycle = two steps)
    phase = phase0 + cycle * time
    S = p.stature
    g = p.girth
    thigh, shank = 0.245 * S * p.leg_fraction / 0.53, 0.246 * S * p.leg_fraction / 0.53
    ankle_height, foot_length = 0.039 * S, 0.152 * S
    upper_arm, forearm, hand_length = 0.186 * S, 0.146 * S, 0.085 * S
    leg_length = thigh + shank
    step_length = p.speed / p.cadence
    hip_amplitude = np.degrees(np.arcsin(np.clip(0.5 * step_length / leg_length, 0.05, 0.7)))
    # limping: the affected leg is stiff and effectively shorter, its stance is hurried (phase warp), the trunk
    # leans over it; ground contact then drops the pelvis on that side
    side_phase = {}
    for side in (RIGHT, LEFT):
        leg_phase = phase + (0.0 if side == RIGHT else 0.5)
        if p.limp and side == p.affected_side:
            leg_phase = leg_phase + 0.06 * p.limp * np.sin(2 * np.pi * leg_phase) / (2 * np.pi) * 2
        side_phase[side] = leg_phase % 1.0
    affected = side_phase[p.affected_side]
    pelvis_yaw = 4.0 * np.sin(2 * np.pi * phase)
    sway = p.hip_sway * np.sin(2 * np.pi * phase) + p.limp * 0.03 * p.affected_side * _bump(affected, 0.3, 0.15)
    roll = p.limp * 7.0 * p.affected_side * _bump(affected, 0.3, 0.15)

    legs = {}
    for side in (RIGHT, LEFT):
        q = side_phase[side]
        stiff = p.limp if side == p.affected_side else 0.0
        hip_flex = 6.0 + hip_amplitude * np.cos(2 * np.pi * q) * (1.0 - 0.25 * stiff)
        knee = (4.0 + p.knee_bend + 14.0 * (1 - stiff) * _bump(q, 0.13, 0.07)
                + (p.swing_knee_peak * (1 - 0.6 * stiff) - 4.0) * _bump(q, 0.72, 0.1))
        abduct = 2.0 + stiff * 10.0 * _bump(q, 0.72, 0.12)  # circumduction of the stiff leg
        foot_pitch = 12.0 * _bump(q, 0.0, 0.05) - 38.0 * _bump(q, 0.58, 0.07) + p.swing_toe_pitch * _bump(q, 0.83, 0.08)
        yaw = np.radians(pelvis_yaw)
        hip = np.stack([-side * p.hip_half_width * np.sin(yaw), side * p.hip_half_width * np.cos(yaw),
                        np.zeros(frames)], axis=-1)
        shorter = 1.0 - 0.045 * stiff
        knee_point = hip + thigh * shorter * _sagittal(hip_flex, abduct, side)
        ankle = knee_point + shank * _sagittal(hip_flex - knee, abduct, side)
        pitch = np.radians(foot_pitch)
        turn = np.radians(side * p.toe_yaw)  # + outward: the right foot turns towards -y
        def foot_point(forward, down):
            x = forward * np.cos(pitch) - (-down) * np.sin(pitch)
            z = forward * np.sin(pitch) + (-down) * np.cos(pitch)
            return ankle + np.stack([x * np.cos(turn), x * np.sin(turn), z], axis=-1)
        heel = foot_point(-0.22 * foot_length, 0.6 * ankle_height)
        toe = foot_point(0.72 * foot_length, 0.75 * ankle_height)
        legs[side] = dict(hip=hip, knee=knee_point, ankle=ankle, heel=heel, toe=toe, phase=q)

    sole = 0.032 * g ** 0.3
    lowest = np.min(np.stack([legs[s][k][:, 2] for s in (RIGHT, LEFT) for k in ("heel", "toe")]), axis=0)
    pelvis_height = sole - lowest
    heading = np.radians(heading_deg)
    travel = p.speed * time * (1.0 + 0.02 * np.sin(4 * np.pi * phase))
    origin = np.stack([np.zeros(frames), sway, pelvis_height], axis=-1)

    # trunk: pelvis -> mid spine (lean) -> shoulder centre (lean + upper-back kyphosis)
    trunk_length = (0.818 - p.leg_fraction) * S
    lean = p.trunk_lean + 1.5 * np.sin(4 * np.pi * phase)
    upper_lean = lean + 22.0 * p.hump
    mid_spine = origin + _lean(np.tile([0.0, 0.0, 0.5 * trunk_length], (frames, 1)), lean, roll)
    shoulder_centre = mid_spine + _lean(np.tile([0.0, 0.0, 0.5 * trunk_length], (frames, 1)), upper_lean, roll)
    shoulder_yaw = np.radians(-1.6 * pelvis_yaw)
    shoulders = {}
    for side in (RIGHT, LEFT):
        height = 0.5 * p.shoulder_tilt * side
        offset = np.stack([-side * p.shoulder_half_width * np.sin(shoulder_yaw),
                           side * p.shoulder_half_width * np.cos(shoulder_yaw), np.full(frames, height)], axis=-1)
        shoulders[side] = shoulder_centre + _lean(offset, np.zeros(frames), roll)
    neck_base = shoulder_centre + np.array([0.0, 0.0, 0.02])
    head_centre = neck_base + np.stack([
        np.full(frames, p.head_forward + 0.05 * p.hump), np.zeros(frames),
        np.full(frames, 0.055 * S + 0.9 * p.head_radius - 0.025 * p.hump)], axis=-1)

    # arms: the shoulder swings opposite to the same-side leg; an arm held still swings only from the elbow
    arms = {}
    for side in (RIGHT, LEFT):
        forward = np.cos(2 * np.pi * (side_phase[side] + 0.5))  # +1 arm fully forward
        shoulder_swing = p.arm_amplitude * (1.0 - p.upper_arm_still)
        flex = p.arm_offset + shoulder_swing * forward
        # an upper arm held still: kept close to the trunk while the forearm swings from the elbow
        # (elbow bent, forearm carried forward)
        forearm_swing = 0.7 * max(p.arm_amplitude, 22.0) * p.upper_arm_still
        elbow = (10.0 + 4.0 * g + 50.0 * p.upper_arm_still
                 + (0.45 * shoulder_swing + forearm_swing) * (forward + 1) / 2)
        abduction = p.arm_abduction * (1.0 - 0.6 * p.upper_arm_still) + (6.0 * np.abs(forward) if p.arm_abduction > 20 else 0.0)
        cross = p.arm_cross * (0.5 + 0.5 * np.clip(forward, 0, None))
        if p.hand_pose in (2, 3):
            pelvis_to_world = origin
            if p.hand_pose == 2:  # hands in the front pockets, elbows out and back
                target = pelvis_to_world + np.array([0.07 * g, side * (p.hip_half_width + 0.07 * g), -0.09])
                pole = np.array([-0.6, side * 1.0, 0.0])
            else:  # hands held behind the back, over the sacrum
                target = pelvis_to_world + np.array([-0.13 * g - 0.06, side * 0.04, 0.02])
                pole = np.array([-0.2, side * 1.0, 0.0])
            target = target + np.stack([0.012 * shoulder_swing / 30.0 * forward, np.zeros(frames),
                                        np.zeros(frames)], axis=-1)
            elbow_point, wrist = _two_link(shoulders[side], target, upper_arm, forearm, pole)
            hand_direction = (wrist - elbow_point) / forearm
        else:
            elbow_point = shoulders[side] + upper_arm * _sagittal(flex, abduction, side)
            hand_direction = _sagittal(flex + elbow, abduction - cross, side)
            wrist = elbow_point + forearm * hand_direction
        arms[side] = dict(shoulder=shoulders[side], elbow=elbow_point, wrist=wrist, direction=hand_direction)

    # world placement: rotate the walker frame by the heading, translate along the path
    cos_h, sin_h = np.cos(heading), np.sin(heading)
    shift = np.stack([start[0] + travel * cos_h, start[1] + travel * sin_h, np.zeros(frames)], axis=-1)

    def world(points: np.ndarray) -> np.ndarray:
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        shape_shift = shift if points.ndim == 2 else shift[:, None, :]
        return np.stack([x * cos_h - y * sin_h, x * sin_h + y * cos_h, z], axis=-1) + shape_shift

    for side in (RIGHT, LEFT):
        for name in ("hip", "knee", "ankle", "heel", "toe"):
            legs[side][name] = legs[side][name] + origin
    body = _Spheres(frames)
    clothes = "coat" if group == "cl" else "shirt"

    def trunk_point(fraction: float, offset) -> np.ndarray:
        """A point of the trunk at `fraction` of its height, `offset` in the upright frame (m)."""
        offset = np.tile(np.asarray(offset, dtype=float), (frames, 1))
        if fraction <= 0.5:
            base = origin + _lean(np.tile([0, 0, fraction * trunk_length], (frames, 1)), lean, roll)
            return base + _lean(offset, lean, roll)
        base = mid_spine + _lean(np.tile([0, 0, (fraction - 0.5) * trunk_length], (frames, 1)), upper_lean, roll)
        return base + _lean(offset, upper_lean, roll)

    hip_r = 0.085 * g + 0.5 * (p.hip_half_width - 0.08)
    chest_r = 0.078 * g ** 0.7
    torso = [
        (trunk_point(0.0, [0, p.hip_half_width * 1.05, -0.02]), hip_r),
        (trunk_point(0.0, [0, -p.hip_half_width * 1.05, -0.02]), hip_r),
        (trunk_point(0.0, [-0.05 * g, 0, -0.03]), 0.1 * g),
        (trunk_point(0.45, [0.02 + p.belly, 0, 0]), 0.1 * g ** 0.9),
        (trunk_point(0.5, [-0.02, 0, 0]), 0.1 * g ** 0.9),
        (trunk_point(0.85, [0.03, 0, 0]), 0.1 * g ** 0.8),
        (trunk_point(0.82, [-0.05 - 0.06 * p.hump, 0, 0]), (0.085 + 0.035 * p.hump) * g ** 0.7),
    ]
    for side in (RIGHT, LEFT):
        torso.append((shoulders[side] + np.array([0.0, -side * 0.6 * chest_r, -0.05]), chest_r))
    body.part("torso", torso, clothes)
    if group == "cl":
        hem = 0.25 + 0.6 * coat_length
        coat = [(c, r + 0.03) for c, r in torso]
        for side in (RIGHT, LEFT):
            thigh_point = legs[side]["hip"] + hem * (legs[side]["knee"] - legs[side]["hip"])
            coat.append((thigh_point + np.array([0.0, side * 0.05, 0.0]), 0.085 * g + 0.03))
        body.part("coat", coat, "coat", depth_bias=-0.15)
    if group == "bg":
        back = -(0.1 * g + 0.1)
        pack = [(trunk_point(0.95, [back, s * 0.12, -0.05]), 0.065) for s in (RIGHT, LEFT)]
        pack += [(trunk_point(0.45, [back, s * 0.12, 0.0]), 0.07) for s in (RIGHT, LEFT)]
        pack += [(trunk_point(0.7, [back - 0.08, 0.0, 0.0]), 0.08)]
        body.part("backpack", pack, "backpack", depth_bias=-0.02)
    body.part("neck", [(neck_base, 0.05 * g ** 0.5), (head_centre - [0, 0, 0.6 * p.head_radius], 0.045 * g ** 0.5)], "skin")
    r = p.head_radius
    body.part("head", [(head_centre, r), (head_centre + [0.025, 0, -0.5 * r], 0.72 * r)], "skin")
    if p.hair >= 1:
        hair = [(head_centre + [-0.02, 0, 0.022], 1.13 * r)]
        if p.hair == 2:
            hair += [(head_centre + [-0.05, s * 0.06, -1.7 * r], 0.07) for s in (RIGHT, LEFT)]
            hair += [(head_centre + [-0.07, 0, -1.5 * r], 0.075)]
        body.part("hair", hair, "hair", depth_bias=0.02)
        if p.hair == 3:
            sway_tail = 0.03 * np.sin(2 * np.pi * phase)[:, None] * np.array([0, 1, 0])
            body.part("ponytail", [(head_centre + [-1.0 * r, 0, 0.25 * r], 0.04),
                                   (head_centre + [-1.0 * r - 0.07, 0, -2.2 * r] + sway_tail, 0.03)], "hair")
    for side in (RIGHT, LEFT):
        leg = legs[side]
        name = "right" if side == RIGHT else "left"
        body.part(f"{name}_thigh", [(leg["hip"], 0.078 * g), (leg["knee"], 0.052 * g ** 0.8)], "trousers")
        body.part(f"{name}_shank", [(leg["knee"], 0.05 * g ** 0.8), (leg["ankle"], 0.036 * g ** 0.6)], "trousers")
        body.part(f"{name}_foot", [(leg["heel"], sole), (leg["toe"], 0.8 * sole)], "shoes")
        arm = arms[side]
        sleeve = 0.022 if group == "cl" else 0.0
        body.part(f"{name}_upper_arm", [(arm["shoulder"], 0.048 * g + sleeve), (arm["elbow"], 0.036 * g + sleeve)], clothes)
        body.part(f"{name}_forearm", [(arm["elbow"], 0.035 * g + sleeve), (arm["wrist"], 0.027 * g ** 0.8 + sleeve)], clothes)
        if p.hand_pose == 0:  # relaxed open hand: a flat capsule continuing the forearm
            body.part(f"{name}_hand", [(arm["wrist"], 0.028), (arm["wrist"] + hand_length * arm["direction"], 0.02)], "skin")
        elif p.hand_pose == 2:  # in the pocket: only the wrist shows
            body.part(f"{name}_hand", [(arm["wrist"], 0.026)], "skin")
        else:  # fist (also the clasped hands behind the back)
            body.part(f"{name}_hand", [(arm["wrist"] + 0.04 * arm["direction"], 0.045)], "skin")

    centres = world(np.stack(body.centres, axis=1))
    forward = np.array([1.0, 0.0, 0.0])
    left = np.array([0.0, 1.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    nose = head_centre + r * (0.85 * forward - 0.15 * up)
    eyes = {s: head_centre + r * (0.7 * forward + 0.33 * s * left + 0.1 * up) for s in (RIGHT, LEFT)}
    ears = {s: head_centre + r * (-0.05 * forward + 0.8 * s * left) for s in (RIGHT, LEFT)}
    coco = np.stack([
        nose, eyes[LEFT], eyes[RIGHT], ears[LEFT], ears[RIGHT],
        arms[LEFT]["shoulder"], arms[RIGHT]["shoulder"], arms[LEFT]["elbow"], arms[RIGHT]["elbow"],
        arms[LEFT]["wrist"], arms[RIGHT]["wrist"], legs[LEFT]["hip"], legs[RIGHT]["hip"],
        legs[LEFT]["knee"], legs[RIGHT]["knee"], legs[LEFT]["ankle"], legs[RIGHT]["ankle"],
    ], axis=1)
    pelvis = 0.5 * (legs[LEFT]["hip"] + legs[RIGHT]["hip"])
    h36m = np.stack([
        pelvis, legs[RIGHT]["hip"], legs[RIGHT]["knee"], legs[RIGHT]["ankle"],
        legs[LEFT]["hip"], legs[LEFT]["knee"], legs[LEFT]["ankle"],
        mid_spine, shoulder_centre, head_centre + r * (0.5 * forward - 0.35 * up), head_centre + r * up,
        arms[LEFT]["shoulder"], arms[LEFT]["elbow"], arms[LEFT]["wrist"],
        arms[RIGHT]["shoulder"], arms[RIGHT]["elbow"], arms[RIGHT]["wrist"],
    ], axis=1)
    return WalkerGeometry(centres=centres, radii=np.asarray(body.radii), parts=body.parts,
                          coco=world(coco), h36m=world(h36m))
