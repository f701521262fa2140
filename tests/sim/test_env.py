"""The Gymnasium API: ids, observation types and layout, action mapping, latency, noise, seeding."""
import gymnasium as gym
import numpy as np
import pytest

import sim
from sim.action_mapping import robot_action_to_targets

IDS = [sim.env_id(t, s) for t in sim.TASK_NAMES for s in (False, True)]


@pytest.mark.parametrize("env_id", IDS)
def test_make_reset_step_state(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    u = env.unwrapped
    assert obs.dtype == np.float32 and obs.shape == (sum(n for _, n in u.obs_layout),)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == ({"reach": 8, "push": 4, "pick": 5}[u.task_name],)   # joint / ee / ee_yaw
    assert set(info) >= {"success"}
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(info["success"], bool) and not terminated and not truncated
    if env_id.endswith("sparse-v0"):
        assert reward == float(info["success"])
    else:
        assert reward < 0
    env.close()


def test_layout_components_match_the_simulator():
    env = gym.make("robot_rl/panda-pick-v0")
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    names = [n for n, _ in u.obs_layout]
    assert names[:4] == ["arm_qpos", "arm_qvel", "gripper_width", "ee_pos"]
    offsets = dict(zip(names, np.cumsum([0] + [n for _, n in u.obs_layout])))
    np.testing.assert_allclose(obs[offsets["arm_qpos"]:offsets["arm_qpos"] + 7], u.physics.arm_qpos(), atol=1e-6)
    np.testing.assert_allclose(obs[offsets["object_pos"]:offsets["object_pos"] + 3], u.physics.object_pose()[:3],
                               atol=1e-6)
    np.testing.assert_allclose(obs[offsets["goal_pos"]:offsets["goal_pos"] + 3], u.goal, atol=1e-6)


def test_pixels_and_state_plus_pixels():
    env = gym.make("robot_rl/panda-push-v0", obs_type="pixels", render_size=(32, 24))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 24, 32) and obs.dtype == np.uint8 and obs.std() > 10
    assert env.observation_space.contains(obs)
    env.close()
    env = gym.make("robot_rl/panda-reach-v0", obs_type="state+pixels", render_size=16)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"state", "pixels"} and obs["pixels"].shape == (3, 16, 16)
    assert env.observation_space.contains(obs)
    env.close()


def test_the_goal_marker_shows_in_the_pixels():
    env = gym.make("robot_rl/panda-reach-v0", obs_type="pixels", render_size=48)
    env.reset(seed=0)
    u = env.unwrapped
    u.physics.set_goal_marker(np.array([0.45, 0.0, 0.12]))
    a = u.render()
    u.physics.set_goal_marker(np.array([0.45, 0.0, -5.0]))   # under the table: hidden
    b = u.render()
    assert np.abs(a.astype(int) - b.astype(int)).sum() > 0
    env.close()


def test_targets_follow_the_pure_action_mapping():
    env = gym.make("robot_rl/panda-reach-v0")
    env.reset(seed=0)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, 8)
        expected, width = robot_action_to_targets(action, u.last_joint_targets, u.robot)
        env.step(action)
        np.testing.assert_array_equal(u.last_joint_targets, expected)
        np.testing.assert_allclose(u.physics.data.ctrl[:7], expected)   # no latency: commanded at once
        assert u.last_gripper_target == width


def test_action_latency_delays_commands_by_whole_control_steps():
    env = gym.make("robot_rl/panda-reach-v0")
    env.reset(seed=0)
    u = env.unwrapped
    u.set_parameter("action_latency", 2)
    start = u.last_joint_targets.copy()
    sent = []
    for k in range(4):
        env.step(np.full(8, 0.5))
        sent.append(u.last_joint_targets.copy())
        expected = start if k < 2 else sent[k - 2]
        np.testing.assert_allclose(u.physics.data.ctrl[:7], expected)


def test_observation_noise_only_touches_joint_positions():
    env = gym.make("robot_rl/panda-push-v0", params={"obs_noise": 0.01})
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    assert np.abs(obs[:7] - u.physics.arm_qpos()).max() > 1e-4
    np.testing.assert_allclose(obs[7:14], u.physics.arm_qvel(), atol=1e-6)


def test_same_seed_same_episode_and_different_seed_differs():
    def rollout(seed):
        env = gym.make("robot_rl/panda-push-v0")
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [obs]
        for _ in range(5):
            trace.append(env.step(env.action_space.sample())[0])
        return np.array(trace)
    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.allclose(rollout(7), rollout(8))


def test_episode_length_and_control_rate_are_configurable():
    env = gym.make("robot_rl/panda-reach-v0", episode_steps=3, control_hz=10)
    env.reset(seed=0)
    assert env.unwrapped.physics.control_dt == pytest.approx(0.1)
    truncated = [env.step(np.zeros(8))[3] for _ in range(3)]
    assert truncated == [False, False, True]


@pytest.mark.parametrize("kwargs, match", [({"obs_type": "rgb"}, "obs_type"), ({"backend": "gazebo"}, "backend"),
                                           ({"episode_steps": -1}, "episode_steps"),
                                           ({"robot": "ur99"}, "robot config not found")])
def test_bad_keywords_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("robot_rl/panda-reach-v0", **kwargs)


def test_parameters_by_name_on_the_env():
    env = gym.make("robot_rl/panda-reach-v0")
    u = env.unwrapped
    assert {"action_latency", "obs_noise", "damping/panda_joint1", "payload_mass"} <= set(u.parameter_names())
    u.set_parameter("damping/panda_joint2", 3.5)
    assert u.get_parameter("damping/panda_joint2") == 3.5
    with pytest.raises(KeyError):
        u.get_parameter("stiffness/panda_joint2")
    with pytest.raises(ValueError, match="action_latency"):
        u.set_parameter("action_latency", 1.5)


def test_pybullet_backend_through_the_same_api():
    pytest.importorskip("pybullet")
    env = gym.make("robot_rl/panda-pick-v0", backend="pybullet", obs_type="state+pixels", render_size=24)
    obs, _ = env.reset(seed=0)
    mj = gym.make("robot_rl/panda-pick-v0")
    mj_obs, _ = mj.reset(seed=0)
    assert obs["state"].shape == mj_obs.shape and obs["pixels"].shape == (3, 24, 24) and obs["pixels"].std() > 5
    np.testing.assert_allclose(obs["state"], mj_obs, atol=1e-3)   # same seed, same start in both engines
    env.close()


@pytest.mark.filterwarnings("ignore:.*observation space m")   # the state Box is unbounded on purpose
@pytest.mark.parametrize("obs_type", ["state", "state+pixels"])
def test_gymnasium_env_checker_passes(obs_type):
    from gymnasium.utils.env_checker import check_env
    env = gym.make("robot_rl/panda-pick-sparse-v0", obs_type=obs_type, render_size=16, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_a_robot_config_file_plugs_in(tmp_path):
    from sim.robot import ROBOTS_DIR
    text = (ROBOTS_DIR / "panda.yaml").read_text()
    text = text.replace("name: panda", "name: my_panda").replace(
        "../assets/panda/panda.xml", str((ROBOTS_DIR / "../assets/panda/panda.xml").resolve()))
    (tmp_path / "my_panda.yaml").write_text(text.replace("max_joint_step: 0.05", "max_joint_step: 0.02"))
    env = gym.make("robot_rl/panda-reach-v0", robot=str(tmp_path / "my_panda.yaml"))
    env.reset(seed=0)
    u = env.unwrapped
    before = u.last_joint_targets.copy()
    env.step(np.array([1.0] * 7 + [1.0]))
    np.testing.assert_allclose(u.last_joint_targets - before, 0.02)
    assert u.robot.name == "my_panda"


def test_latency_and_noise_randomised_over_the_identified_intervals_only():
    identified = {"format": "robot_rl.robot_params", "version": 1, "robot": "panda", "parameters": {
        "action_latency": {"value": 1, "ci": [1, 2]}, "obs_noise": {"value": 0.001, "ci": [0.0005, 0.0015]},
        "kp/panda_joint1": {"value": 4500.0, "ci": [4000.0, 5000.0]}}}
    env = gym.make("robot_rl/panda-push-v0", params=identified, randomize="action_latency,obs_noise").unwrapped
    assert env.randomization_ranges == {"action_latency": (1.0, 2.0), "obs_noise": (0.0005, 0.0015)}
    kp = env.get_parameter("kp/panda_joint1")
    drawn = set()
    for seed in range(12):
        env.reset(seed=seed)
        drawn.add(env.action_latency)
        assert 0.0005 <= env.obs_noise <= 0.0015 and env.get_parameter("kp/panda_joint1") == kp
    assert drawn == {1, 2}
    # without intervals in the file: the default ranges of just those parameters
    env = gym.make("robot_rl/panda-push-v0", randomize=["action_latency"]).unwrapped
    assert env.randomization_ranges == {"action_latency": (0.0, 1.0)}
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['latency'\]"):
        gym.make("robot_rl/panda-push-v0", randomize="latency")
