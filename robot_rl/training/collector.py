"""The collector: N environments and an acting strategy; each `step()` acts for every running environment in
one batched call and returns what happened as plain data (Transitions) plus the episodes that ended.

Episode i resets with `seed_of(i)` (training: `episode_seed(seed, i)`), whichever environment runs it, so a resumed run meets
the same episodes. `drain()` lets running episodes finish without starting new ones: checkpoints and
evaluations wait for that barrier, where no episode is half-collected, so a checkpoint holds everything
needed to continue exactly.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from robot_rl.training.env_pool import EnvPool
from robot_rl.training.profile import PhaseTimer
from robot_rl.training.strategies import ActingStrategy
from robot_rl.training.transitions import EpisodeSummary, Transitions


def episode_seed(seed: int, episode: int) -> int:
    """Each training episode resets with its own seed, so a resumed run meets the same episodes."""
    return seed * 1_000_003 + episode


class Collector:
    def __init__(self, pool: EnvPool, strategy: ActingStrategy, seed_of: Callable[[int], int], obs_keys: list[str],
                 action_dim: int, next_episode: int = 0, timer: PhaseTimer | None = None,
                 max_episodes: int | None = None):
        self.pool, self.strategy, self.seed_of = pool, strategy, seed_of
        self.obs_keys, self.action_dim = obs_keys, action_dim
        self.next_episode = next_episode
        self.timer = timer or PhaseTimer()
        self.max_episodes = max_episodes  # start no episode past this many (evaluation)
        n = pool.num_envs
        self.obs: list[dict[str, np.ndarray] | None] = [None] * n
        self.episode = np.full(n, -1, dtype=np.int64)   # running episode per environment (-1: idle)
        self.first = np.zeros(n, dtype=bool)
        self.returns = np.zeros(n)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.draining = False
        self.observers: list = []  # on_step(step, envs, obs, actions, rewards, successes): e.g. a Rerun view

    @property
    def idle(self) -> bool:
        return bool((self.episode < 0).all())

    def drain(self) -> None:
        """Start no new episodes until `resume()`; running ones finish."""
        self.draining = True

    def resume(self) -> None:
        self.draining = False

    def _start_episodes(self, records: list[dict]) -> None:
        idle = [i for i in range(self.pool.num_envs) if self.episode[i] < 0]
        if self.max_episodes is not None:
            idle = idle[:max(0, self.max_episodes - self.next_episode)]
        if not idle or self.draining:
            return
        ids = list(range(self.next_episode, self.next_episode + len(idle)))
        self.next_episode += len(idle)
        with self.timer.phase("env"):
            observations = self.pool.reset(idle, [self.seed_of(e) for e in ids])
        zero = np.zeros(self.action_dim, np.float32)
        for i, e, obs in zip(idle, ids, observations):
            self.obs[i], self.episode[i], self.first[i] = obs, e, True
            self.returns[i], self.lengths[i] = 0.0, 0
            records.append({"episode": e, "first": True, "obs": obs, "action": zero, "reward": 0.0,
                            "terminated": False, "last": False})

    def step(self, global_step: int) -> tuple[Transitions, list[EpisodeSummary], int]:
        """One batched action for every running environment. Returns (transitions, finished episodes,
        environment steps taken)."""
        records: list[dict] = []
        self._start_episodes(records)
        running = np.flatnonzero(self.episode >= 0)
        finished: list[EpisodeSummary] = []
        if len(running):
            obs = {k: np.stack([self.obs[i][k] for i in running]) for k in self.obs_keys}
            with self.timer.phase("act"):
                actions = np.asarray(self.strategy.act(obs, self.first[running], running, global_step), np.float32)
            with self.timer.phase("env"):
                results = self.pool.step(running.tolist(), actions)
            for observer in self.observers:
                observer.on_step(global_step + len(running), running, [r[0] for r in results], actions,
                                 [r[1] for r in results], [r[4] for r in results])
            for i, action, (obs_i, reward, terminated, truncated, success) in zip(running, actions, results):
                last = terminated or truncated
                self.returns[i] += reward
                self.lengths[i] += 1
                records.append({"episode": int(self.episode[i]), "first": False, "obs": obs_i, "action": action,
                                "reward": reward, "terminated": terminated, "last": last})
                self.obs[i], self.first[i] = obs_i, False
                if last:
                    finished.append(EpisodeSummary(int(self.episode[i]), int(i), int(self.lengths[i]),
                                                   float(self.returns[i]), success, terminated))
                    self.episode[i], self.obs[i] = -1, None
        return Transitions.from_records(records, self.obs_keys, self.action_dim), finished, len(running)

    def state(self) -> dict:
        if not self.idle:
            raise RuntimeError("collector state is only defined between episodes (drain first)")
        return {"next_episode": self.next_episode, "strategy": self.strategy.state()}

    def load_state(self, state: dict) -> None:
        self.next_episode = state["next_episode"]
        self.strategy.load_state(state["strategy"])

