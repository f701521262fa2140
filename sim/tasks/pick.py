"""Pick and place: grasp the cube and hold it at a goal position in the air."""
from __future__ import annotations

import numpy as np

from sim import scene
from sim.tasks.base import Task, TaskState


class PickTask(Task):
    name = "pick"
    episode_steps = 80
    success_threshold = 0.05
    default_action = "ee_yaw"            # tool-point deltas and yaw: the cube lies at any yaw (+-45 deg)
    obs_components = ("arm_qpos", "arm_qvel", "gripper_width", "ee_pos", "object_pos", "object_quat", "goal_pos",
                      "ee_to_object", "object_to_goal")
    goal_xy_low = (0.40, -0.15)
    goal_xy_high = (0.60, 0.15)
    goal_z = (scene.TABLE_HEIGHT + 0.10, scene.TABLE_HEIGHT + 0.25)
    min_object_goal_distance = 0.10

    def sample_goal(self, rng: np.random.Generator, object_pose: np.ndarray) -> np.ndarray:
        while True:
            goal = np.array([*rng.uniform(self.goal_xy_low, self.goal_xy_high), rng.uniform(*self.goal_z)])
            if np.linalg.norm(goal - object_pose[:3]) >= self.min_object_goal_distance:
                return goal

    def distance(self, s: TaskState) -> float:
        return float(np.linalg.norm(s.object_pos - s.goal))

    def dense_reward(self, s: TaskState) -> float:
        lifted = s.fingers_touch_object and s.object_pos[2] > scene.TABLE_HEIGHT + scene.OBJECT_HALF_SIZE + 0.01
        return -self.distance(s) - 0.5 * float(np.linalg.norm(s.ee_pos - s.object_pos)) + 0.25 * float(lifted)
