"""Acting strategies: how a collector picks the actions of N environments in one call.

Every strategy has one interface, `act(obs, first, envs, step) -> actions (n, A)` for the n environments
listed in `envs` (indices into the collector's pool), so the loop never asks which variant runs: random
seeding, the agent (MPPI planner or policy prior, with its per-environment warm starts), MoDem's seeding and
MoDem-V2's agency handover (robot_rl/modem.py), and a schedule that switches between them by environment step.
`state()`/`load_state()` carry the random state through checkpoints, so a resumed run acts the same.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class ActingStrategy(Protocol):
    def act(self, obs: dict[str, np.ndarray], first: np.ndarray, envs: np.ndarray, step: int) -> np.ndarray: ...

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...


class RandomActing:
    """Uniform random actions in [-1, 1] (TD-MPC2's seeding phase)."""

    def __init__(self, action_dim: int, seed: int):
        self.action_dim = action_dim
        self.rng = np.random.default_rng(seed)

    def act(self, obs, first, envs, step) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (len(envs), self.action_dim)).astype(np.float32)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class AgentActing:
    """The agent's own acting (planner or policy prior, per its config), batched over environments, with one
    warm-start plan per environment. Its random numbers come from torch's generator, saved by checkpoints."""

    def __init__(self, agent, num_envs: int, eval_mode: bool = False):
        self.agent, self.eval_mode = agent, eval_mode
        self.prev_mean = agent.initial_plan(num_envs)

    def act(self, obs, first, envs, step) -> np.ndarray:
        agent = self.agent
        n = len(envs)
        if agent.compiled and n < len(self.prev_mean):  # a compiled planner has one batch size: pad to it
            pad = len(self.prev_mean) - n
            obs = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in obs.items()}
            first = np.concatenate([first, np.ones(pad, bool)])
            envs = np.concatenate([envs, np.setdiff1d(np.arange(len(self.prev_mean)), envs)[:pad]])
        index = torch.as_tensor(envs, device=agent.device)
        action, next_mean = agent.act_batch(agent.obs_tensors(obs, batched=True),
                                            torch.as_tensor(first, device=agent.device),
                                            self.prev_mean[index], self.eval_mode)
        self.prev_mean[index] = next_mean
        return action[:n].cpu().numpy()

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass


class Schedule:
    """Switches strategy by environment step: each of `phases` [(until_step, strategy), ...] acts while the
    step is below its bound, `then` afterwards."""

    def __init__(self, phases: list[tuple[int, ActingStrategy]], then: ActingStrategy):
        self.phases = [*phases, (None, then)]

    def current(self, step: int) -> ActingStrategy:
        for until, strategy in self.phases:
            if until is None or step < until:
                return strategy
        raise AssertionError("unreachable: the last phase is open-ended")

    def act(self, obs, first, envs, step) -> np.ndarray:
        return self.current(step).act(obs, first, envs, step)

    def state(self) -> dict:
        return {"phases": [s.state() for _, s in self.phases]}

    def load_state(self, state: dict) -> None:
        for (_, strategy), s in zip(self.phases, state["phases"]):
            strategy.load_state(s)
