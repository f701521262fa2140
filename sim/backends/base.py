"""The interface every physics engine implements, so tasks are written once for MuJoCo and PyBullet.

A backend owns one scene: the arm from the robot description (sim/robots/<name>.yaml), a table, one
free object (a cube, present in every task so observation layouts match; reach ignores it) and a goal
marker (visual only, no collision). Tasks, rewards, action mapping, action latency and observation
noise live above this layer (sim/tasks, sim/env.py) and are engine-independent.

Conventions: SI units, radians, world frame with z up, quaternions as (w, x, y, z).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from sim.robot import RobotConfig

# Physical parameters an engine must expose by name (sim/params.py adds the engine-independent ones).
# Per-joint kinds take "<kind>/<joint name>"; global ones are bare names.
JOINT_PARAMETER_KINDS = ("damping", "armature", "frictionloss", "kp", "kv")
ENGINE_GLOBAL_PARAMETERS = ("payload_mass",)


class PhysicsBackend(Protocol):
    robot: RobotConfig
    physics_dt: float      # seconds per physics step
    control_dt: float      # seconds per control step (an integer number of physics steps)

    # --- state -------------------------------------------------------------------------------
    def reset(self, arm_qpos: np.ndarray, gripper_width: float, object_pose: np.ndarray) -> None:
        """Zero velocities, place the arm, the gripper (finger gap, m) and the object (pos xyz + quat wxyz);
        hold the arm there (actuator targets = arm_qpos)."""

    def arm_qpos(self) -> np.ndarray: ...           # (n_arm,) rad
    def arm_qvel(self) -> np.ndarray: ...           # (n_arm,) rad/s
    def gripper_width(self) -> float: ...           # finger gap, m
    def ee_pose(self) -> np.ndarray: ...            # (7,) end-effector site pos + quat (w, x, y, z)
    def object_pose(self) -> np.ndarray: ...        # (7,) pos + quat (w, x, y, z)
    def object_velocity(self) -> np.ndarray: ...    # (6,) linear, angular
    def fingers_touch_object(self) -> bool: ...     # both fingers in contact with the object

    # --- control -----------------------------------------------------------------------------
    def command(self, arm_targets: np.ndarray, gripper_width: float) -> None:
        """Joint position targets for the arm's position actuators (what ros2_control's
        forward_command_controller takes) and the gripper's target finger gap."""

    def step(self) -> None:
        """Advance one control period (control_dt / physics_dt physics steps)."""

    def set_goal_marker(self, position: np.ndarray) -> None: ...

    # --- kinematics (no simulation side effects) ---------------------------------------------
    def forward_kinematics(self, arm_qpos: np.ndarray) -> np.ndarray:
        """(7,) end-effector pose for the given arm joint angles; the current state is left unchanged."""

    # --- named physical parameters -----------------------------------------------------------
    def parameter_names(self) -> list[str]: ...     # every name get/set_parameter accept
    def get_parameter(self, name: str) -> float: ...
    def set_parameter(self, name: str, value: float) -> None:
        """Names as in JOINT_PARAMETER_KINDS / ENGINE_GLOBAL_PARAMETERS; unknown names raise KeyError."""

    # --- pixels ------------------------------------------------------------------------------
    def render(self, width: int, height: int, camera: str = "front") -> np.ndarray:
        """(height, width, 3) uint8 RGB from a fixed camera looking at the workspace."""

    def close(self) -> None: ...
