"""Small exported bundles for the hardware/ bundle and runtime tests: a randomly initialised agent for a sim/ task
(its reward and Q output layers, zero at initialisation, get random weights so trajectory values differ and the
planner's elite choice is not decided by ties), saved as a checkpoint and exported by `robot_rl.export`."""
from __future__ import annotations

from pathlib import Path

import torch

from robot_rl.agent import TDMPC2
from robot_rl.agent_config import AgentConfig, PlannerConfig
from robot_rl.checkpoint import save_checkpoint
from robot_rl.envs import make_env
from robot_rl.export import export

SMALL_PLANNER = PlannerConfig(samples=64, iterations=2, horizon=3, policy_samples=8, elites=8)
TINY = dict(model_size="1M", enc_dim=32, mlp_dim=32, latent_dim=16)


def make_agent(obs_type: str = "state", task: str = "panda-reach", seed: int = 0, env_kwargs: dict | None = None,
               **sizes):
    torch.manual_seed(seed)
    env, info = make_env(task, obs_type, **(env_kwargs or {}))
    env.close()
    cfg = AgentConfig(**(sizes or TINY), planner=SMALL_PLANNER)
    agent = TDMPC2(cfg, info.model_obs_spec, info.action_dim, info.episode_length)
    with torch.no_grad():
        for p in agent.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return agent, info


def make_bundle(folder: Path, obs_type: str = "state", task: str = "panda-reach", env_kwargs: dict | None = None,
                **sizes) -> tuple[Path, TDMPC2]:
    """`env_kwargs`: make_env's (e.g. action="ee", action_history=2)."""
    agent, info = make_agent(obs_type, task, env_kwargs=env_kwargs, **sizes)
    ckpt = folder / "agent.pt"
    save_checkpoint(ckpt, agent, info, {}, step=0, episode=0)
    out = folder / "bundle"
    export(ckpt, out)
    return out, agent
