"""`robot-rl eval checkpoint=runs/reach/agent.pt episodes=10`: mean return and success rate of a checkpoint.

An episode counts as a success when `info["success"]` holds at its last step (the goal reached and kept).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.agent_config import PlannerConfig

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse a training episode's seed


@dataclass
class Config:
    checkpoint: str = "runs/default/agent.pt"
    episodes: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int = 0                 # torch CPU threads (0: torch's default)
    use_planner_config: bool = False  # true: evaluate with the planner.* keys below instead of the checkpoint's
    planner: PlannerConfig = field(default_factory=PlannerConfig)


def evaluate(agent, env, episodes: int, seed: int) -> dict[str, float]:
    """Run `episodes` deterministic-mode episodes; returns mean/std return and success rate."""
    returns, successes = [], []
    for i in range(episodes):
        obs, info = env.reset(seed=EVAL_SEED_OFFSET + seed * 10_000 + i)
        total, first, done = 0.0, True, False
        while not done:
            action = agent.act(obs, first, eval_mode=True)
            first = False
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        successes.append(bool(info.get("success", False)))
    return {"return": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "success": float(np.mean(successes)), "episodes": float(episodes)}


def run(config: Config) -> int:
    import dataclasses

    import torch

    from robot_rl.checkpoint import CheckpointError, agent_config_from, load_agent, load_checkpoint
    from robot_rl.envs import make_env

    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if config.episodes < 1:
        print(f"robot-rl eval: episodes={config.episodes}; expected >= 1")
        return 2
    try:
        override = None
        if config.use_planner_config:
            override = dataclasses.replace(agent_config_from(load_checkpoint(config.checkpoint), config.checkpoint),
                                           planner=config.planner)
        agent, env_info, payload = load_agent(config.checkpoint, config.device, override)
    except CheckpointError as err:
        print(f"robot-rl eval: {err}")
        return 2
    torch.manual_seed(config.seed)
    env, _ = make_env(env_info.task, env_info.obs_type, seed=config.seed, frame_stack=env_info.frame_stack)
    result = evaluate(agent, env, config.episodes, config.seed)
    env.close()
    print(f"{env_info.task} (step {payload['step']}, {config.episodes} episodes, "
          f"{'planner' if agent.cfg.planner.plan else 'policy'}): mean return {result['return']:.3f} "
          f"+- {result['return_std']:.3f}, success rate {100 * result['success']:.0f}%")
    return 0
