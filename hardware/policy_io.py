"""What a policy sees and what its action means, on the robot: the observation vector assembled from joint states,
forward kinematics, the goal and the object pose in the bundle's observation layout (the same components and
order as sim/env.py builds in simulation), and the action mapped to joint position targets (the rule of
sim/action_mapping.py: normalised joint steps of `max_joint_step` rad added to the previous targets, clipped to
the joint limits; the gripper from -1 closed to +1 open over the finger gap 0 .. gripper_max_width).

numpy only; hardware/ may not import sim/ outside the simulated robot, so the mapping is restated here and
tests/hardware/test_policy_io.py checks it against sim/ value for value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.kinematics import KinematicChain

# Observation components (sim/env.py's names) and what each needs from the robot's surroundings.
STATE_COMPONENTS = ("arm_qpos", "arm_qvel", "gripper_width", "ee_pos", "goal_pos", "ee_to_goal", "object_pos",
                    "object_quat", "ee_to_object", "object_to_goal")
NEEDS_GOAL = {"goal_pos", "ee_to_goal", "object_to_goal"}
NEEDS_OBJECT = {"object_pos", "object_quat", "ee_to_object", "object_to_goal"}


class PolicyIOError(ValueError):
    pass


@dataclass(frozen=True)
class PolicyIO:
    obs_layout: tuple[tuple[str, int], ...]    # state components and sizes, in order
    pixels_shape: tuple[int, ...] | None       # (C, H, W) the policy takes (C = 3 x frame stack), None: state only
    joint_names: tuple[str, ...]               # arm joints, in the policy's order
    gripper_joints: tuple[str, ...]            # finger joints; the gap is the sum of their positions
    lower: np.ndarray                          # (n,) rad, action clipping (the robot's joint limits)
    upper: np.ndarray
    max_joint_step: float                      # rad per control step at |action| = 1
    gripper_max_width: float                   # m
    chain: KinematicChain | None               # tool point FK, needed when the layout has ee_* components

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.obs_layout if name not in STATE_COMPONENTS]
        if unknown:
            raise PolicyIOError(f"observation layout: unknown component(s) {unknown}; known: {STATE_COMPONENTS}")
        if self.needs_fk and self.chain is None:
            raise PolicyIOError("observation layout uses the tool point (ee_*) but no kinematic chain was given")
        if self.chain is not None and self.chain.joint_names != tuple(self.joint_names):
            raise PolicyIOError(f"kinematic chain joints {list(self.chain.joint_names)} differ from the policy's "
                                f"joints {list(self.joint_names)}")

    @property
    def components(self) -> set[str]:
        return {name for name, _ in self.obs_layout}

    @property
    def needs_fk(self) -> bool:
        return any(name.startswith("ee_") for name in self.components)

    @property
    def needs_goal(self) -> bool:
        return bool(self.components & NEEDS_GOAL)

    @property
    def needs_object(self) -> bool:
        return bool(self.components & NEEDS_OBJECT)

    @property
    def needs_pixels(self) -> bool:
        return self.pixels_shape is not None

    def state(self, q: np.ndarray, dq: np.ndarray | None, gripper_width: float, goal: np.ndarray | None,
              object_pose: np.ndarray | None) -> np.ndarray:
        """The float32 state vector in the layout's order."""
        n = len(self.joint_names)
        ee = self.chain.tip_position(q) if self.needs_fk else None
        values = {"arm_qpos": q, "arm_qvel": np.zeros(n) if dq is None else dq, "gripper_width": [gripper_width]}
        if ee is not None:
            values["ee_pos"] = ee
        if goal is not None:
            values["goal_pos"] = goal
            if ee is not None:
                values["ee_to_goal"] = goal - ee
        if object_pose is not None:
            values.update(object_pos=object_pose[:3], object_quat=object_pose[3:7])
            if ee is not None:
                values["ee_to_object"] = object_pose[:3] - ee
            if goal is not None:
                values["object_to_goal"] = goal - object_pose[:3]
        parts = []
        for name, size in self.obs_layout:
            if name not in values:
                raise PolicyIOError(f"observation component {name!r} needs an input that is missing")
            part = np.asarray(values[name], dtype=np.float32).reshape(-1)
            if part.shape != (size,):
                raise PolicyIOError(f"observation component {name!r}: {part.size} values, layout says {size}")
            parts.append(part)
        return np.concatenate(parts)

    def targets(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, float]:
        """(arm joint targets, finger gap) for one normalised action (sim/action_mapping.action_to_targets)."""
        n = len(self.joint_names)
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (n + 1,):
            raise PolicyIOError(f"action has {action.size} values, expected {n + 1} ({n} joint steps + gripper)")
        if not np.all(np.isfinite(action)):
            raise PolicyIOError(f"action has non-finite entries: {action}")
        action = np.clip(action, -1.0, 1.0)
        targets = np.clip(np.asarray(previous_targets, float) + action[:n] * self.max_joint_step, self.lower,
                          self.upper)
        return targets, float(0.5 * (action[n] + 1.0) * self.gripper_max_width)


class FrameStacker:
    """The last k camera images, oldest first, concatenated along channels (robot_rl/frame_stack.py's rule: an
    episode's first observation repeats its first image k times)."""

    def __init__(self, k: int):
        self.k = k
        self.frames: list[np.ndarray] = []

    def reset(self) -> None:
        self.frames = []

    def push(self, image_hwc: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(np.asarray(image_hwc, dtype=np.uint8).transpose(2, 0, 1))
        self.frames = (self.frames or [chw] * self.k)[1:] + [chw] if self.k > 1 else [chw]
        return np.concatenate(self.frames, axis=0)
