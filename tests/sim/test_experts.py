"""The scripted experts succeed in at least 90 % of episodes, in MuJoCo and in PyBullet."""
import gymnasium as gym
import pytest

import sim
from sim.experts import Expert, evaluate_expert

EPISODES = 20


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
@pytest.mark.parametrize("task", sim.TASK_NAMES)
def test_expert_succeeds(task, backend):
    if backend == "pybullet":
        pytest.importorskip("pybullet")
    rate = evaluate_expert(task, backend, episodes=EPISODES, seed=1000)
    assert rate >= 0.9, f"{task} expert in {backend}: success {rate:.0%}"


def test_noisy_expert_still_mostly_succeeds_on_reach():
    env = gym.make("robot_rl/panda-reach-v0")
    expert = Expert(env, noise=0.3, seed=0)
    wins = 0
    for seed in range(10):
        env.reset(seed=seed)
        for _ in range(env.unwrapped.episode_steps):
            info = env.step(expert(env))[4]
        wins += info["success"]
    assert wins >= 8
