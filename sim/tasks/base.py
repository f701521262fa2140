"""What a task is: initial conditions to randomise, a dense reward, a success test, observation components."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim import scene


@dataclass(frozen=True)
class TaskState:
    """What rewards and success are computed from (true simulator state, not noisy observations)."""
    ee_pos: np.ndarray           # (3,) tool centre point, m
    gripper_width: float         # finger gap, m
    object_pos: np.ndarray       # (3,)
    object_quat: np.ndarray      # (4,) w, x, y, z
    goal: np.ndarray             # (3,)
    fingers_touch_object: bool


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class Task:
    name = ""
    episode_steps = 50                   # at the default 20 Hz control
    success_threshold = 0.05             # m
    initial_gripper_width = 0.08         # m (fully open Franka Hand)
    arm_noise = 0.05                     # rad, uniform noise on the start posture at reset
    # Start posture: the tool centre point here, pointing down (solved once per env by sim.ik from the robot's
    # home posture), so episodes are spent on the task rather than on travelling down from home.
    start_ee = (0.42, 0.0, scene.TABLE_HEIGHT + 0.22)
    obs_components: tuple[str, ...] = ()
    default_action = "joint"             # action space (sim/action_mapping.py) unless the env is given action=
    # Object and goal sampling regions (world x, y), inside scene.WORKSPACE_LOW/HIGH.
    object_xy_low = (0.40, -0.15)
    object_xy_high = (0.60, 0.15)
    min_object_goal_distance = 0.10

    def sample_object(self, rng: np.random.Generator) -> np.ndarray:
        """(7,) object pose on the table: random position and yaw (a cube looks the same every 90 deg)."""
        xy = rng.uniform(self.object_xy_low, self.object_xy_high)
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        return np.concatenate([xy, [scene.TABLE_HEIGHT + scene.OBJECT_HALF_SIZE], yaw_quat(yaw)])

    def sample_goal(self, rng: np.random.Generator, object_pose: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def distance(self, s: TaskState) -> float:
        """The distance that decides success."""
        raise NotImplementedError

    def success(self, s: TaskState) -> bool:
        return self.distance(s) < self.success_threshold

    def dense_reward(self, s: TaskState) -> float:
        raise NotImplementedError

    def sparse_reward(self, s: TaskState) -> float:
        return float(self.success(s))
