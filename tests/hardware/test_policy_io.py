"""hardware/policy_io.py restates sim/'s observation layout and action spaces for the robot computer: checked here
value for value against sim/env.py (every task's layout, the last-actions component) and sim/action_mapping.py
(joint and tool-point action spaces, the latter from its bundle.json block through JSON, as the robot reads it)."""
import json

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the environments)
from hardware.kinematics import KinematicChain
from hardware.policy_io import FrameStacker, PolicyIO, PolicyIOError, ToolPointActions, action_space_from_dict
from sim.action_mapping import robot_action_to_targets
from sim.kinematic_chain import chain_from_mjcf


def policy_io(env) -> PolicyIO:
    """What the robot computer builds from a bundle of this env: the action block and chain through JSON."""
    robot = env.robot
    chain = KinematicChain.from_dict(json.loads(json.dumps(chain_from_mjcf(robot.description, robot.arm_joints,
                                                                           robot.ee_site))))
    spec = json.loads(json.dumps(env.action_mapping.to_dict()))
    actions = action_space_from_dict(spec, robot.lower.tolist(), robot.upper.tolist(), chain)
    return PolicyIO(obs_layout=tuple(env.obs_layout), pixels_shape=None, joint_names=tuple(robot.arm_joints),
                    gripper_joints=tuple(robot.gripper_joints), actions=actions, chain=chain,
                    action_history=env.action_history)


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


@pytest.mark.parametrize("action", ["ee", "ee_yaw"])
def test_tool_point_targets_match_sim_for_the_same_state_and_action(action):
    """The robot computer's IK (bundle chain FK) against sim/'s (MuJoCo FK) along a rollout, random actions
    including out-of-box ones, the workspace box and joint limits."""
    env = gym.make("robot_rl/panda-pick-v0", action=action).unwrapped
    io = policy_io(env)
    assert isinstance(io.actions, ToolPointActions) and io.actions.dim == env.action_space.shape[0]
    env.reset(seed=2)
    rng = np.random.default_rng(3)
    worst = 0.0
    for step in range(40):
        action_ = rng.uniform(-1.3, 1.3, env.action_space.shape)
        previous = env.last_joint_targets.copy()
        got, gap = io.targets(action_, previous)
        env.step(action_)
        worst = max(worst, float(np.abs(got - env.last_joint_targets).max()))
        assert gap == pytest.approx(env.last_gripper_target)
    assert worst < 1e-8, f"robot computer and simulator targets differ by {worst} rad"
    with pytest.raises(PolicyIOError, match=f"expected {io.actions.dim}"):
        io.targets(np.zeros(8), previous)
    env.close()


@pytest.mark.parametrize("action", ["joint", "ee"])
def test_last_actions_are_built_identically_from_the_commands_sent(action):
    """action_history=3 with one step of action latency: every state vector the robot computer builds (from the
    joint states and the actions it mapped) equals the simulator's observation, the last-actions part exactly."""
    env = gym.make("robot_rl/panda-push-v0", action=action, action_history=3, params={"action_latency": 1})
    u = env.unwrapped
    io = policy_io(u)
    names = [name for name, _ in u.obs_layout]
    assert names[-1] == "last_actions" and u.obs_layout[-1][1] == 3 * u.action_mapping.dim
    rng = np.random.default_rng(5)
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        io.reset()
        previous = u.last_joint_targets.copy()
        for _ in range(5):
            p = u.physics
            state = io.state(p.arm_qpos(), p.arm_qvel(), p.gripper_width(), u.goal, p.object_pose())
            np.testing.assert_allclose(state, obs, atol=2e-6)
            np.testing.assert_array_equal(state[-io.actions.dim * 3:], obs[-io.actions.dim * 3:])
            sent = rng.uniform(-1.5, 1.5, env.action_space.shape)
            previous, _ = io.targets(sent, previous)
            obs, *_ = env.step(sent)
        assert np.abs(obs[-io.actions.dim * 3:]).max() > 0.1 and np.abs(obs[-io.actions.dim * 3:]).max() <= 1.0
    env.close()


def test_missing_inputs_and_bad_layouts_are_refused():
    env = gym.make("robot_rl/panda-push-v0").unwrapped
    io = policy_io(env)
    with pytest.raises(PolicyIOError, match="object"):
        io.state(np.zeros(7), None, 0.0, np.zeros(3), None)
    with pytest.raises(PolicyIOError, match="unknown component"):
        PolicyIO(obs_layout=(("joint_torque", 7),), pixels_shape=None, joint_names=io.joint_names,
                 gripper_joints=(), actions=io.actions, chain=None)
    with pytest.raises(PolicyIOError, match="kinematic chain"):
        PolicyIO(obs_layout=(("ee_pos", 3),), pixels_shape=None, joint_names=io.joint_names, gripper_joints=(),
                 actions=io.actions, chain=None)
    with pytest.raises(PolicyIOError, match="last_actions"):
        PolicyIO(obs_layout=(("arm_qpos", 7), ("last_actions", 8)), pixels_shape=None, joint_names=io.joint_names,
                 gripper_joints=(), actions=io.actions, chain=io.chain, action_history=1)
    spec = env.action_mapping.to_dict()
    with pytest.raises(PolicyIOError, match="field 'space'"):
        action_space_from_dict({**spec, "space": "cartesian"}, env.robot.lower, env.robot.upper, io.chain)
    with pytest.raises(PolicyIOError, match="field 'workspace_low'"):
        action_space_from_dict({**spec, "workspace_low": [0, 0]}, env.robot.lower, env.robot.upper, io.chain)
    with pytest.raises(PolicyIOError, match="kinematic chain"):
        action_space_from_dict(spec, env.robot.lower, env.robot.upper, None)
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
