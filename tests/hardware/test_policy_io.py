"""hardware/policy_io.py restates sim/'s observation layout and action mapping for the robot computer: checked here
value for value against sim/env.py (every task's layout) and sim/action_mapping.py."""
import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the environments)
from hardware.kinematics import KinematicChain
from hardware.policy_io import FrameStacker, PolicyIO, PolicyIOError
from sim.action_mapping import robot_action_to_targets
from sim.kinematic_chain import chain_from_mjcf


def policy_io(env) -> PolicyIO:
    robot = env.robot
    chain = KinematicChain.from_dict(chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site))
    return PolicyIO(obs_layout=tuple(env.obs_layout), pixels_shape=None, joint_names=tuple(robot.arm_joints),
                    gripper_joints=tuple(robot.gripper_joints), lower=robot.lower, upper=robot.upper,
                    max_joint_step=robot.max_joint_step, gripper_max_width=robot.gripper_max_width, chain=chain)


@pytest.mark.parametrize("task", ["reach", "push", "pick"])
def test_state_matches_the_simulator(task):
    env = gym.make(f"robot_rl/panda-{task}-v0").unwrapped
    io = policy_io(env)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = env.physics
        state = io.state(p.arm_qpos(), p.arm_qvel(), p.gripper_width(), env.goal, p.object_pose())
        # float32 observation against float64 numpy FK
        np.testing.assert_allclose(state, obs, atol=2e-6)
        obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
    assert io.needs_goal and io.needs_fk and io.needs_object == (task != "reach")
    env.close()


def test_targets_match_sim_action_mapping():
    env = gym.make("robot_rl/panda-reach-v0").unwrapped
    io = policy_io(env)
    rng = np.random.default_rng(1)
    previous = np.array(env.robot.home_qpos)
    for _ in range(50):
        action = rng.uniform(-1.5, 1.5, 8)
        expected = robot_action_to_targets(action, previous, env.robot)
        got = io.targets(action, previous)
        np.testing.assert_allclose(got[0], expected[0], atol=1e-12)
        assert got[1] == pytest.approx(expected[1])
        previous = got[0]
    with pytest.raises(PolicyIOError, match="non-finite"):
        io.targets(np.full(8, np.nan), previous)
    with pytest.raises(PolicyIOError, match="expected 8"):
        io.targets(np.zeros(7), previous)
    env.close()


def test_missing_inputs_and_bad_layouts_are_refused():
    env = gym.make("robot_rl/panda-push-v0").unwrapped
    io = policy_io(env)
    with pytest.raises(PolicyIOError, match="object"):
        io.state(np.zeros(7), None, 0.0, np.zeros(3), None)
    with pytest.raises(PolicyIOError, match="unknown component"):
        PolicyIO(obs_layout=(("joint_torque", 7),), pixels_shape=None, joint_names=io.joint_names,
                 gripper_joints=(), lower=io.lower, upper=io.upper, max_joint_step=0.05, gripper_max_width=0.08,
                 chain=None)
    with pytest.raises(PolicyIOError, match="kinematic chain"):
        PolicyIO(obs_layout=(("ee_pos", 3),), pixels_shape=None, joint_names=io.joint_names, gripper_joints=(),
                 lower=io.lower, upper=io.upper, max_joint_step=0.05, gripper_max_width=0.08, chain=None)
    env.close()


def test_frame_stacker_repeats_the_first_frame_then_slides():
    stack = FrameStacker(3)
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(4)]
    first = stack.push(frames[0])
    assert first.shape == (9, 2, 2) and np.all(first == 0)
    stack.push(frames[1])
    out = stack.push(frames[2])
    assert [int(out[3 * i, 0, 0]) for i in range(3)] == [0, 1, 2]
    out = stack.push(frames[3])
    assert [int(out[3 * i, 0, 0]) for i in range(3)] == [1, 2, 3]
    stack.reset()
    assert np.all(stack.push(frames[3]) == 3)
