"""Push: slide the cube across the table to a goal on the table (success on the xy distance)."""
from __future__ import annotations

import numpy as np

from sim import scene
from sim.tasks.base import Task, TaskState


class PushTask(Task):
    name = "push"
    episode_steps = 80
    success_threshold = 0.05
    default_action = "ee"                # tool-point deltas: manipulation learns in Cartesian space
    obs_components = ("arm_qpos", "arm_qvel", "gripper_width", "ee_pos", "object_pos", "object_quat", "goal_pos",
                      "ee_to_object", "object_to_goal")
    goal_xy_low = (0.40, -0.18)
    goal_xy_high = (0.62, 0.18)
    min_object_goal_distance = 0.10

    def sample_goal(self, rng: np.random.Generator, object_pose: np.ndarray) -> np.ndarray:
        while True:
            xy = rng.uniform(self.goal_xy_low, self.goal_xy_high)
            if np.linalg.norm(xy - object_pose[:2]) >= self.min_object_goal_distance:
                return np.array([*xy, scene.TABLE_HEIGHT + scene.OBJECT_HALF_SIZE])

    def distance(self, s: TaskState) -> float:
        return float(np.linalg.norm(s.object_pos[:2] - s.goal[:2]))

    def dense_reward(self, s: TaskState) -> float:
        return -self.distance(s) - 0.5 * float(np.linalg.norm(s.ee_pos - s.object_pos))
