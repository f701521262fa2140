"""Standard task suites behind make_env: Meta-World v3 (`mw:`) and goal-conditioned Gymnasium envs (`gym:`),
with success bookkeeping and terminal states kept apart from time limits."""
import gymnasium as gym
import numpy as np
import pytest

from robot_rl.envs import EnvInfo, make_env, task_error


def run_episode(env, policy, seed=0):
    obs, _ = env.reset(seed=seed)
    steps, rewards = 0, []
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        steps += 1
        rewards.append(reward)
        if terminated or truncated:
            return steps, rewards, terminated, truncated, info


def test_metaworld_task_as_tdmpc2_runs_it():
    env, info = make_env("mw:reach", seed=0)
    assert info.episode_length == 100 and not info.episodic and info.action_dim == 4
    assert info.obs_spec == {"state": ((39,), "float32")} and sum(n for _, n in info.obs_layout) == 39
    obs, _ = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    other, _ = env.reset(seed=6)
    goal = slice(36, 39)
    assert np.array_equal(obs["state"][goal], again["state"][goal])       # the seed fixes the goal
    assert not np.array_equal(obs["state"][goal], other["state"][goal])   # a new goal per episode
    steps, rewards, terminated, truncated, last = run_episode(env, lambda o: np.zeros(4, np.float32))
    assert steps == 100 and truncated and not terminated and last["success"] is False
    assert env.unwrapped._env.curr_path_length == 1 + 2 * 100            # one settling step, action repeat 2
    assert all(r > 0 for r in rewards)                                    # Meta-World's shaped reward


def test_metaworld_success_and_sparse_reward_follow_the_task():
    from metaworld.policies import SawyerReachV3Policy

    expert = SawyerReachV3Policy()
    env, _ = make_env("mw:reach-sparse", seed=0)
    steps, rewards, terminated, truncated, last = run_episode(
        env, lambda o: np.clip(expert.get_action(o["state"].astype(np.float64)), -1, 1).astype(np.float32))
    assert last["success"] is True and truncated and not terminated       # success does not end the episode
    assert set(rewards) == {0.0, 1.0} and rewards[-1] == 1.0              # sparse: the success itself


def test_metaworld_renders_offscreen():
    env, info = make_env("mw:push", obs_type="state+pixels", seed=0, render_size=16)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (3, 16, 16) and obs["pixels"].dtype == np.uint8 and obs["pixels"].std() > 0
    obs, *_ = env.step(np.ones(4, np.float32))
    assert obs["state"].shape == (39,) and info.obs_spec["pixels"] == ((3, 16, 16), "uint8")
    env.close()  # the GL context goes now, not at exit after another library may have ended the EGL display


def test_unknown_metaworld_task_names_close_matches():
    with pytest.raises(ValueError, match=r"not a Meta-World v3 task; did you mean \['pick-place'"):
        make_env("mw:pick-plac")
    with pytest.raises(ValueError, match=r"takes no \['params'\]"):
        make_env("mw:reach", params="arm.yaml")


def p_control(obs):
    """PandaReach: move the end effector towards the goal (achieved_goal, desired_goal are the last 6 values)."""
    achieved, desired = obs["state"][-6:-3], obs["state"][-3:]
    return np.clip(10 * (desired - achieved), -1, 1).astype(np.float32)


def test_goal_conditioned_env_is_flattened_with_success_and_terminal_states():
    env, info = make_env("gym:panda_gym:PandaReach-v3")
    assert info.obs_layout == [("observation", 6), ("achieved_goal", 3), ("desired_goal", 3)]
    assert info.obs_spec == {"state": ((12,), "float32")} and info.episodic
    obs, reset_info = env.reset(seed=0)
    assert reset_info["success"] is False
    steps, _, terminated, truncated, last = run_episode(env, p_control)
    assert terminated and not truncated and last["success"] is True and steps < info.episode_length
    steps, _, terminated, truncated, last = run_episode(env, lambda o: np.zeros(3, np.float32), seed=1)
    assert truncated and not terminated and last["success"] is False and steps == info.episode_length
    with pytest.raises(ValueError, match="episodic=False"):  # declared never to terminate, it does
        run_episode(make_env("gym:panda_gym:PandaReach-v3", episodic=False)[0], p_control)


class GoalEnvWithoutSuccess(gym.Env):
    """A goal-conditioned environment that forgets info['is_success']."""

    def __init__(self):
        box = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = box

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {"distance": 1.0}


def test_goal_conditioned_env_without_is_success_is_refused():
    gym.register("robot_rl_test/GoalWithoutSuccess-v0", entry_point=GoalEnvWithoutSuccess, max_episode_steps=5)
    env, _ = make_env("gym:robot_rl_test/GoalWithoutSuccess-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"must report info\['is_success'\].*distance"):
        env.step(np.zeros(2, np.float32))


def test_env_info_round_trips_episodic():
    _, info = make_env("gym:Pendulum-v1")
    assert info.episodic and EnvInfo.from_dict(info.as_dict()).episodic
    old = info.as_dict()
    del old["episodic"]  # an info written before terminal states were stored: folded into truncation
    assert not EnvInfo.from_dict(old).episodic


def test_task_names_are_checked_without_building_environments():
    assert all(task_error(t) is None for t in ("panda-reach", "mw:pick-place", "mw:reach-sparse", "dmc:reacher-easy",
                                               "gym:Pendulum-v1", "gym:panda_gym:PandaReach-v3"))
    assert "did you mean ['reach'" in task_error("mw:raech")
    assert "not a dm_control suite task" in task_error("dmc:cartpole-juggle")
    assert "panda-reach" in task_error("panda-fly")
    assert "No module named" in task_error("gym:no_such_module:Thing-v0")
    assert "Pendulum" in task_error("gym:Pendulum-v9")
