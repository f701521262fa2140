"""Policy action -> joint position targets, the command ros2_control's forward_command_controller takes.

numpy only: hardware/policy_io.py restates these rules on the robot computer (no MuJoCo there, and hardware/
may not import sim/), and tests/hardware/test_policy_io.py keeps the two equal value for value, so the policy
sees the same interface in simulation and on the arm.

Two action spaces (`ArmEnv(action=...)`), each an object with one interface (`dim`, `targets`, `to_dict`):

- `joint` (`JointActions`): `n_arm + 1` numbers in [-1, 1]: normalised joint-position deltas (times
  `max_joint_step` rad, added to the previous targets, clipped to the joint limits) and the gripper.
- `ee` / `ee_yaw` (`ToolPointActions`): normalised Cartesian deltas of the tool point (x, y, z, times
  `max_position_step` m; with `ee_yaw` also the yaw about world z, times `max_yaw_step` rad) and the gripper.
  The delta is added to the tool pose of the previous joint targets (forward kinematics, so the command
  integrates without a steady-state offset, as the joint space does), the point is clipped to a workspace box,
  the tool keeps pointing down (the rest orientation, turned by the yaw), and a fixed number of damped
  least-squares iterations with joint limits and a null-space pull towards the rest posture give the joint
  targets (sim/ik.track_pose). Meta-World, robosuite's OSC controller, HIL-SERL and MoDem give policies this
  interface.

The gripper is the same in both: -1 closed ... +1 open, mapped linearly to the finger gap 0 ... gripper_max_width.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sim.ik import quat_to_mat, rot_z, track_pose, yaw_about

ACTION_SPACES = ("joint", "ee", "ee_yaw")


class ActionSpaceError(ValueError):
    pass


def action_to_targets(action: np.ndarray, previous_targets: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                      max_joint_step: float, gripper_max_width: float) -> tuple[np.ndarray, float]:
    """(arm joint position targets (rad), gripper finger gap (m)) for one normalised action."""
    action = np.asarray(action, dtype=np.float64)
    previous_targets = np.asarray(previous_targets, dtype=np.float64)
    n_arm = previous_targets.shape[0]
    if action.shape != (n_arm + 1,):
        raise ValueError(f"action has shape {action.shape}, expected ({n_arm + 1},): {n_arm} joint deltas + gripper")
    if not np.all(np.isfinite(action)):
        raise ValueError(f"action has non-finite entries: {action}")
    action = np.clip(action, -1.0, 1.0)
    targets = np.clip(previous_targets + action[:n_arm] * max_joint_step, lower, upper)
    gripper = 0.5 * (action[n_arm] + 1.0) * gripper_max_width
    return targets, float(gripper)


def robot_action_to_targets(action: np.ndarray, previous_targets: np.ndarray, robot) -> tuple[np.ndarray, float]:
    """`action_to_targets` with the limits and scales of a `sim.robot.RobotConfig`."""
    return action_to_targets(action, previous_targets, robot.lower, robot.upper, robot.max_joint_step,
                             robot.gripper_max_width)


def gripper_action(width: float, gripper_max_width: float) -> float:
    """Inverse of the gripper mapping: the action value that commands finger gap `width`."""
    return float(np.clip(2.0 * width / gripper_max_width - 1.0, -1.0, 1.0))


def _checked(action: np.ndarray, dim: int, what: str) -> np.ndarray:
    action = np.asarray(action, dtype=np.float64).reshape(-1)
    if action.shape != (dim,):
        raise ActionSpaceError(f"action has {action.size} values, expected {dim} ({what})")
    if not np.all(np.isfinite(action)):
        raise ActionSpaceError(f"action has non-finite entries: {action}")
    return np.clip(action, -1.0, 1.0)


def gripper_width(action_value: float, gripper_max_width: float) -> float:
    return float(0.5 * (action_value + 1.0) * gripper_max_width)


@dataclass(frozen=True)
class JointActions:
    """Normalised joint-position deltas + gripper."""
    lower: np.ndarray
    upper: np.ndarray
    max_joint_step: float          # rad per control step at |action| = 1
    gripper_max_width: float       # m
    name = "joint"

    @property
    def dim(self) -> int:
        return self.lower.shape[0] + 1

    def targets(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, float]:
        n = self.dim - 1
        action = _checked(action, self.dim, f"{n} joint deltas + gripper")
        targets = np.clip(np.asarray(previous_targets, float) + action[:n] * self.max_joint_step, self.lower,
                          self.upper)
        return targets, gripper_width(action[n], self.gripper_max_width)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.name, "dim": self.dim, "max_joint_step": self.max_joint_step,
                "gripper_max_width": self.gripper_max_width,
                "rule": "targets = clip(previous_targets + action[:n] * max_joint_step, lower, upper); "
                        "finger gap = (action[n] + 1) / 2 * gripper_max_width (sim/action_mapping.py)"}


@dataclass(frozen=True)
class ToolPointConfig:
    """The Cartesian action space's settings (recorded in bundle.json, so the robot computer uses the same)."""
    max_position_step: float = 0.04          # m per control step at |action| = 1 (0.8 m/s at 20 Hz)
    max_yaw_step: float = 0.25               # rad per control step at |action| = 1 (ee_yaw)
    yaw_limit: float = 1.5707963267948966    # |tool yaw| <= this (rad) from the rest orientation
    workspace_low: tuple[float, float, float] = (0.25, -0.32, 0.005)    # tool point box, m (world)
    workspace_high: tuple[float, float, float] = (0.72, 0.32, 0.50)
    iterations: int = 4                      # damped least-squares iterations per control step
    damping: float = 0.02                    # DLS lambda
    posture_gain: float = 0.1                # null-space pull towards the rest posture (first iteration)


@dataclass(frozen=True)
class ToolPointActions:
    """Normalised tool-point deltas (x, y, z[, yaw]) + gripper, solved to joint targets by DLS inverse kinematics.

    `fk(q)` -> (7,) tool pose (pos + quat w, x, y, z): the engine's forward kinematics in sim/, the bundle's
    kinematic chain on the robot computer."""
    fk: Callable[[np.ndarray], np.ndarray]
    lower: np.ndarray
    upper: np.ndarray
    rest: np.ndarray                   # (n,) rest posture: null-space target; its tool orientation is "down"
    tool_rotation: np.ndarray          # (3, 3) the tool's orientation at yaw 0
    gripper_max_width: float
    yaw: bool = False
    config: ToolPointConfig = ToolPointConfig()

    @property
    def name(self) -> str:
        return "ee_yaw" if self.yaw else "ee"

    @property
    def dim(self) -> int:
        return 5 if self.yaw else 4

    def target_pose(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tool point, tool rotation) the action asks for, from the tool pose of the previous targets."""
        c = self.config
        pose = self.fk(np.asarray(previous_targets, float))
        point = np.clip(pose[:3] + action[:3] * c.max_position_step, c.workspace_low, c.workspace_high)
        yaw = 0.0
        if self.yaw:
            yaw = float(np.clip(yaw_about(quat_to_mat(pose[3:]), self.tool_rotation) + action[3] * c.max_yaw_step,
                                -c.yaw_limit, c.yaw_limit))
        return point, rot_z(yaw) @ self.tool_rotation

    def targets(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, float]:
        action = _checked(action, self.dim, "tool-point deltas x, y, z" + (", yaw" if self.yaw else "")
                          + " + gripper")
        point, rot = self.target_pose(action, previous_targets)
        c = self.config
        targets = track_pose(self.fk, previous_targets, point, rot, self.rest, self.lower, self.upper,
                             c.iterations, c.damping, c.posture_gain)
        return targets, gripper_width(action[-1], self.gripper_max_width)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {"space": self.name, "dim": self.dim, "gripper_max_width": self.gripper_max_width,
                "max_position_step": c.max_position_step, "max_yaw_step": c.max_yaw_step, "yaw_limit": c.yaw_limit,
                "workspace_low": list(c.workspace_low), "workspace_high": list(c.workspace_high),
                "iterations": c.iterations, "damping": c.damping, "posture_gain": c.posture_gain,
                "rest_posture": np.asarray(self.rest, float).tolist(),
                "tool_rotation": np.asarray(self.tool_rotation, float).tolist(),
                "rule": "tool target = clip(fk(previous_targets).pos + action[:3] * max_position_step, workspace); "
                        "orientation = rot_z(yaw) @ tool_rotation (ee: yaw 0; ee_yaw: previous yaw + action[3] * "
                        "max_yaw_step, clipped to +-yaw_limit); targets = `iterations` damped least-squares steps "
                        "from previous_targets (finite-difference Jacobian, step 1e-4 rad), each clipped to the "
                        "joint limits, the first with null-space pull posture_gain * (rest_posture - q); finger gap = "
                        "(action[-1] + 1) / 2 * gripper_max_width (sim/action_mapping.py, sim/ik.py)"}


def make_action_space(name: str, robot, fk: Callable[[np.ndarray], np.ndarray], rest: np.ndarray,
                      config: ToolPointConfig | None = None) -> JointActions | ToolPointActions:
    """The action space `name` for a `sim.robot.RobotConfig`; `fk` and `rest` (the posture whose tool
    orientation the Cartesian spaces keep) are used by the Cartesian ones."""
    if name == "joint":
        return JointActions(robot.lower, robot.upper, robot.max_joint_step, robot.gripper_max_width)
    if name in ("ee", "ee_yaw"):
        rest = np.asarray(rest, float)
        return ToolPointActions(fk=fk, lower=robot.lower, upper=robot.upper, rest=rest,
                                tool_rotation=quat_to_mat(fk(rest)[3:]), gripper_max_width=robot.gripper_max_width,
                                yaw=name == "ee_yaw", config=config or ToolPointConfig())
    raise ActionSpaceError(f"action={name!r}: expected one of {ACTION_SPACES} (joint: joint-position deltas; "
                           f"ee: tool-point x, y, z deltas; ee_yaw: and the tool's yaw; each + gripper)")
