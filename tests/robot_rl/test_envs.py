import numpy as np
import pytest

from robot_rl.envs import make_env


def test_gym_task_is_rescaled_and_dict_observed():
    env, info = make_env("gym:Pendulum-v1")
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"state"} and obs["state"].dtype == np.float32 and obs["state"].shape == (3,)
    assert info.action_dim == 1 and info.action_low == [-2.0] and info.action_high == [2.0]
    assert info.episode_length == 200
    # action +1 maps to the env's +2 N*m torque
    assert np.allclose(env.env.action(np.array([1.0], np.float32)), [2.0])  # DictObs(RescaleAction(...))


def test_dmc_task_flattens_state_and_repeats_actions():
    env, info = make_env("dmc:cartpole-swingup", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (5,) and info.episode_length == 500
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(np.zeros(1, np.float32))
        total += r
        steps += 1
        done = term or trunc
    assert steps == 500 and 0 < total < 1000


def test_sim_task_carries_robot_description():
    env, info = make_env("panda-reach")
    obs, i = env.reset(seed=0)
    assert info.robot == "panda" and len(info.joint_names) == 9 and info.control_hz == 20.0
    assert sum(n for _, n in info.obs_layout) == obs["state"].shape[0]
    _, _, _, _, step_info = env.step(np.zeros(info.action_dim, np.float32))
    assert "success" in step_info


def test_unknown_task_and_obs_are_refused():
    with pytest.raises(ValueError, match="panda-reach"):
        make_env("panda-fly")
    with pytest.raises(ValueError, match="obs="):
        make_env("panda-reach", obs_type="lidar")
    with pytest.raises(ValueError, match="dm_control"):
        make_env("dmc:cartpole-juggle")
