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
    view: str = ""                   # rerun: show the episodes in Rerun (live viewer, else view_rrd)
    view_rrd: str = ""               # .rrd file for view=rerun; default eval_view.rrd beside the checkpoint
    planner: PlannerConfig = field(default_factory=PlannerConfig)


def eval_seed(seed: int, episode: int) -> int:
    return EVAL_SEED_OFFSET + seed * 10_000 + episode


def evaluate(agent, pool, episodes: int, seed: int, progress: bool = False, view=None) -> dict[str, float]:
    """Run `episodes` deterministic-mode episodes, batched over the pool's environments (one planner call
    acts for all of them); returns mean/std return and success rate. `view`: a collector observer
    (robot_rl/training/view.py)."""
    from tqdm import tqdm

    from robot_rl.training.collector import Collector
    from robot_rl.training.strategies import AgentActing

    obs_keys = list(agent.model.obs_spec)
    collector = Collector(pool, AgentActing(agent, pool.num_envs, eval_mode=True), lambda e: eval_seed(seed, e),
                          obs_keys, agent.action_dim, max_episodes=episodes)
    if view is not None:
        collector.observers.append(view)
    done = []
    with tqdm(total=episodes, disable=not progress, desc="evaluating", leave=False, dynamic_ncols=True) as bar:
        while len(done) < episodes:
            _, finished, _ = collector.step(0)
            done += finished
            bar.update(len(finished))
    done.sort(key=lambda s: s.episode)
    returns = [s.ret for s in done]
    return {"return": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "success": float(np.mean([s.success for s in done])), "episodes": float(episodes)}


def eval_pool(task: str, obs_type: str, frame_stack: int, seed: int, episodes: int, max_envs: int = 16, **env_kwargs):
    """Environments for evaluating `episodes` episodes side by side (at most `max_envs`)."""
    from robot_rl.training.env_pool import LocalEnvPool, TaskEnvFactory

    factory = TaskEnvFactory(task, obs_type, seed, frame_stack, **env_kwargs)
    return LocalEnvPool(factory, max(1, min(episodes, max_envs)))


def run(config: Config) -> int:
    import dataclasses

    import torch

    from robot_rl.checkpoint import CheckpointError, agent_config_from, load_agent, load_checkpoint

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
    space = {"action": env_info.action} if env_info.action else {}  # the action space it was trained in
    if env_info.action_history:
        space["action_history"] = env_info.action_history
    pool = eval_pool(env_info.task, env_info.obs_type, env_info.frame_stack, config.seed, config.episodes, **space)
    from pathlib import Path

    from robot_rl.training.view import open_step_view

    view = open_step_view(config.view, f"eval {env_info.task}",
                          Path(config.view_rrd or Path(config.checkpoint).with_name("eval_view.rrd")), env_info,
                          pool.num_envs)
    result = evaluate(agent, pool, config.episodes, config.seed, progress=True, view=view)
    pool.close()
    if view is not None:
        saved = view.close()
        if saved is not None:
            print(f"Rerun view saved to {saved}")
    print(f"{env_info.task} (step {payload['step']}, {config.episodes} episodes, "
          f"{'planner' if agent.cfg.planner.plan else 'policy'}): mean return {result['return']:.3f} "
          f"+- {result['return_std']:.3f}, success rate {100 * result['success']:.0f}%")
    return 0
