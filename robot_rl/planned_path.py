"""The planner's chosen action sequence as the tool path it commands, for the Rerun view
(hardware/rerun_view.py: `view.log_plan(step, env_index, actions, tool_path=tool_path(env, actions))`).

The environment's own action mapping (sim/action_mapping.py: joint deltas, or tool-point deltas through its
inverse kinematics) turns each action into joint targets from the current ones, and forward kinematics gives the
tool point of each: the path the plan commands, which the arm follows up to its tracking lag (not a dynamics
rollout, and not the world model's latent prediction).
"""
from __future__ import annotations

import numpy as np


def tool_path(env, actions) -> np.ndarray:
    """(H + 1, 3) tool points, m: now (at the current joint targets), then after each of the H actions."""
    base = env.unwrapped
    targets = np.asarray(base.last_joint_targets, dtype=np.float64).copy()
    points = [base.physics.forward_kinematics(targets)[:3]]
    for action in np.asarray(actions, dtype=np.float64).reshape(-1, base.action_mapping.dim):
        targets, _ = base.action_mapping.targets(action, targets)
        points.append(base.physics.forward_kinematics(targets)[:3])
    return np.asarray(points)
