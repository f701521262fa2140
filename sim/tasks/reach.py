"""Reach: bring the tool centre point to a goal position in the air. The cube stays parked aside."""
from __future__ import annotations

import numpy as np

from sim import scene
from sim.tasks.base import Task, TaskState


class ReachTask(Task):
    name = "reach"
    episode_steps = 40
    success_threshold = 0.05
    obs_components = ("arm_qpos", "arm_qvel", "gripper_width", "ee_pos", "goal_pos", "ee_to_goal")
    goal_low = (0.30, -0.20, scene.TABLE_HEIGHT + 0.10)
    goal_high = (0.55, 0.20, scene.TABLE_HEIGHT + 0.40)
    parked_object = (0.30, 0.42)         # xy, out of the reach region

    def sample_object(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([*self.parked_object, scene.TABLE_HEIGHT + scene.OBJECT_HALF_SIZE, 1.0, 0.0, 0.0, 0.0])

    def sample_goal(self, rng: np.random.Generator, object_pose: np.ndarray) -> np.ndarray:
        return rng.uniform(self.goal_low, self.goal_high)

    def distance(self, s: TaskState) -> float:
        return float(np.linalg.norm(s.ee_pos - s.goal))

    def dense_reward(self, s: TaskState) -> float:
        return -self.distance(s)
