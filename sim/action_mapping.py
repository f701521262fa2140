"""Policy action -> joint position targets, the command ros2_control's forward_command_controller takes.

numpy only: hardware/ reuses this on the robot computer (no MuJoCo there), so the policy sees the same
interface in simulation and on the arm.

An action is `n_arm + 1` numbers in [-1, 1]: normalised joint-position deltas (times `max_joint_step` rad,
added to the previous targets, clipped to the joint limits) and the gripper (-1 closed ... +1 open, mapped
linearly to the finger gap 0 ... gripper_max_width).
"""
from __future__ import annotations

import numpy as np


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
