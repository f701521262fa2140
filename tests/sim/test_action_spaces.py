"""The Cartesian action spaces (action=ee / ee_yaw) in both engines: the joint targets put the tool on the
commanded point, the arm gets there and holds it, joint limits and the workspace box hold; the last-actions
observation; bad input."""
import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the environments)
from sim.action_mapping import ActionSpaceError, ToolPointActions
from sim.ik import quat_to_mat, rotation_vector, yaw_about

MM = 1e-3


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_targets_reach_the_commanded_tool_point_and_the_arm_holds_it(backend):
    env = gym.make("robot_rl/panda-pick-v0", backend=backend, action="ee_yaw").unwrapped
    space = env.action_mapping
    assert isinstance(space, ToolPointActions) and env.action_space.shape == (5,)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for move in range(2):
        for _ in range(4):
            action = np.append(rng.uniform(-1, 1, 4), 1.0)
            point, rot = space.target_pose(action, env.last_joint_targets)
            env.step(action)
            pose = env.physics.forward_kinematics(env.last_joint_targets)   # the engine's own kinematics
            assert np.linalg.norm(pose[:3] - point) < 2 * MM
            assert np.linalg.norm(rotation_vector(rot @ quat_to_mat(pose[3:]).T)) < 0.01
        for _ in range(12):   # zero motion: the arm settles on the last commanded point, which stays put
            env.step(np.array([0.0, 0.0, 0.0, 0.0, 1.0]))
        assert np.linalg.norm(env.physics.ee_pose()[:3] - point) < 2 * MM
        assert np.all(env.last_joint_targets >= space.lower) and np.all(env.last_joint_targets <= space.upper)
    env.close()


def test_joint_limits_and_the_workspace_box_hold_under_saturated_actions():
    env = gym.make("robot_rl/panda-push-v0").unwrapped
    space = env.action_mapping
    assert space.name == "ee"
    c = space.config
    env.reset(seed=0)
    for direction in ([1, 1, 1], [-1, -1, -1], [1, -1, -1], [-1, 1, 1]):
        for _ in range(25):
            env.step(np.array([*direction, -1.0]))
            assert np.all(env.last_joint_targets >= env.robot.lower) and np.all(env.last_joint_targets <= env.robot.upper)
        tool = env.physics.forward_kinematics(env.last_joint_targets)[:3]
        assert np.all(tool >= np.array(c.workspace_low) - 2 * MM) and np.all(tool <= np.array(c.workspace_high) + 2 * MM)
    # the tool kept pointing down (no yaw in `ee`)
    assert abs(yaw_about(quat_to_mat(env.physics.ee_pose()[3:]), space.tool_rotation)) < 0.05
    env.close()


def test_task_defaults_and_the_joint_space_stays_available():
    spaces = {t: gym.make(f"robot_rl/panda-{t}-v0").unwrapped.action_mapping.name for t in ("reach", "push", "pick")}
    assert spaces == {"reach": "joint", "push": "ee", "pick": "ee_yaw"}
    env = gym.make("robot_rl/panda-push-v0", action="joint")
    assert env.action_space.shape == (8,)


def test_last_actions_shift_in_and_reset_to_zeros():
    env = gym.make("robot_rl/panda-reach-v0", action="ee", action_history=2)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[-8:], np.zeros(8))
    a, b, c = (np.array([0.1, -0.2, 0.3, 1.0]), np.array([2.0, 0.0, -0.5, 0.0]), np.array([0.0, 0.4, 0.0, -1.0]))
    obs = env.step(a)[0]
    np.testing.assert_allclose(obs[-8:], np.concatenate([np.zeros(4), a]), atol=1e-7)
    env.step(b)
    obs = env.step(c)[0]
    np.testing.assert_allclose(obs[-8:], np.concatenate([np.clip(b, -1, 1), c]), atol=1e-7)   # clipped as applied
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs[-8:], np.zeros(8))


def test_bad_action_settings_are_refused():
    with pytest.raises(ActionSpaceError, match="action='cartesian': expected one of"):
        gym.make("robot_rl/panda-push-v0", action="cartesian")
    with pytest.raises(ValueError, match="action_history=-1"):
        gym.make("robot_rl/panda-push-v0", action_history=-1)
    with pytest.raises(ValueError, match="needs a state vector"):
        gym.make("robot_rl/panda-push-v0", obs_type="pixels", action_history=2)
    env = gym.make("robot_rl/panda-push-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ActionSpaceError, match=r"expected 4 \(tool-point deltas x, y, z \+ gripper\)"):
        env.step(np.zeros(8))
