"""robot_rl/planned_path.py: a planned action sequence's commanded tool path matches what the environment does
with the same actions (joint and tool-point action spaces)."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.envs import make_env
from robot_rl.planned_path import tool_path


@pytest.mark.parametrize("task", ["panda-reach", "panda-push"])   # joint actions; tool-point (ee) actions
def test_tool_path_is_where_the_actions_send_the_targets(task):
    env, info = make_env(task, "state", seed=0)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (4, info.action_dim)) * 0.5
    path = tool_path(env, actions)
    base = env.unwrapped
    assert path.shape == (5, 3)
    np.testing.assert_allclose(path[0], base.physics.forward_kinematics(base.last_joint_targets)[:3])
    for k, action in enumerate(actions):
        env.step(action.astype(np.float32))
        np.testing.assert_allclose(path[k + 1], base.physics.forward_kinematics(base.last_joint_targets)[:3],
                                   atol=1e-6)
    assert np.linalg.norm(path[-1] - path[0]) > 1e-3       # the plan moves the tool
    env.close()
