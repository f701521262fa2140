"""Collectors as Ray actors: N actors with M environments each (on other cores or machines) feed one learner.

What crosses the process boundary is plain data only, as for the on-robot learner: `Transitions.to_bytes()` in,
`Learner.weights()` out. Each actor keeps its own acting copy of the agent (planner or policy prior, on its CPU)
and acts randomly until the first weights reach it (seeding). Episode indices are made global (local index x N +
actor), so the learner's per-episode staging keeps the actors' interleaved episodes apart, and each episode resets
with its own `episode_seed`. Weights are put into Ray's object store once and every actor loads them before its
next chunk (calls on one actor run in the order they were sent).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any


from robot_rl.training.transitions import Transitions


class CollectorWorker:
    """The body of one collector actor: `envs` environments of the run's task and an acting copy of the agent."""

    def __init__(self, config: dict[str, Any], info: dict[str, Any], actor: int, actors: int):
        import torch

        from robot_rl.agent import TDMPC2
        from robot_rl.agent_config import agent_config_of
        from robot_rl.envs import EnvInfo
        from robot_rl.overrides import build
        from robot_rl.train import Config, env_kwargs
        from robot_rl.training.collector import Collector, episode_seed
        from robot_rl.training.env_pool import TaskEnvFactory, make_pool
        from robot_rl.training.strategies import AgentActing, RandomActing

        cfg = build(Config, config, sources=("remote collector config",))
        torch.set_num_threads(max(1, cfg.threads))
        info_ = EnvInfo.from_dict(info)
        self.actor, self.actors = actor, actors
        self.agent = TDMPC2(agent_config_of(cfg), info_.model_obs_spec, info_.action_dim, info_.episode_length, "cpu")
        factory = TaskEnvFactory(cfg.task, cfg.obs, cfg.seed + 1000 * (actor + 1), cfg.frame_stack, **env_kwargs(cfg))
        self.acting = AgentActing(self.agent, cfg.envs)
        self.collector = Collector(make_pool(factory, cfg.envs, cfg.vector),
                                   RandomActing(info_.action_dim, cfg.seed * 7919 + actor),
                                   lambda e: episode_seed(cfg.seed, e * actors + actor), list(info_.obs_spec),
                                   info_.action_dim)
        self.steps = 0
        self.version = -1        # of the weights acting (-1: none yet, random seeding)
        self.busy_s = 0.0        # time spent collecting

    def set_weights(self, blob: bytes, version: int) -> None:
        from robot_rl.training.learner import load_weights

        load_weights(self.agent, blob)
        self.version = version
        self.collector.strategy = self.acting

    def collect(self, steps: int) -> tuple[bytes, int, list[dict], int]:
        """At least `steps` environment steps over this actor's environments: (transitions as bytes, steps taken,
        finished episodes, version of the weights that acted)."""
        started = time.perf_counter()
        blocks, taken, finished = [], 0, []
        while taken < steps:
            block, ended, stepped = self.collector.step(self.steps)
            self.steps += stepped
            taken += stepped
            blocks.append(block)
            finished += [{**asdict(e), "episode": e.episode * self.actors + self.actor} for e in ended]
        merged = Transitions.concat(blocks)
        merged.episode = merged.episode * self.actors + self.actor
        self.busy_s += time.perf_counter() - started
        return merged.to_bytes(), taken, finished, self.version

    def stats(self) -> dict[str, float]:
        return {"steps": self.steps, "busy_s": self.busy_s, "version": self.version}


@dataclass
class Chunk:
    """What one actor delivered."""
    transitions: Transitions
    steps: int
    episodes: list[dict]
    version: int
    actor: int


class RemoteCollectors:
    """`actors` Ray actors of `envs` environments each, every one always collecting its next chunk of
    `chunk_steps` steps; `next()` hands the learner whichever chunk is ready first."""

    def __init__(self, config, info, actors: int, envs: int = 1, chunk_steps: int = 0, cpus: float = 1.0):
        import ray

        from robot_rl.overrides import to_dict

        if actors < 1 or envs < 1:
            raise ValueError(f"actors={actors}, envs={envs}: expected at least one of each")
        plain = to_dict(replace(config, envs=envs, device="cpu", threads=max(1, int(cpus)), vector="local"))
        actor_cls = ray.remote(CollectorWorker).options(num_cpus=cpus)
        self.actors = [actor_cls.remote(plain, info.as_dict(), i, actors) for i in range(actors)]
        self.chunk_steps = chunk_steps or info.episode_length * envs
        self.inflight = {a.collect.remote(self.chunk_steps): i for i, a in enumerate(self.actors)}

    def broadcast(self, blob: bytes, version: int) -> None:
        """New weights for every actor, applied before its next chunk (one copy in the object store)."""
        import ray

        ref = ray.put(blob)
        for actor in self.actors:
            actor.set_weights.remote(ref, version)

    def next(self) -> Chunk:
        import ray

        done, _ = ray.wait(list(self.inflight), num_returns=1)
        index = self.inflight.pop(done[0])
        blob, steps, episodes, version = ray.get(done[0])
        self.inflight[self.actors[index].collect.remote(self.chunk_steps)] = index
        return Chunk(Transitions.from_bytes(blob), steps, episodes, version, index)

    def stats(self) -> list[dict[str, float]]:
        import ray

        return ray.get([a.stats.remote() for a in self.actors])

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def learn_remote(learner, collectors: RemoteCollectors, steps: int, updates_per_step: float,
                 broadcast_every: int = 50) -> dict[str, float]:
    """The learner's loop on remote data: ingest each chunk as it arrives, run the updates it owes
    (`updates_per_step` per environment step, fractions carried), broadcast weights every `broadcast_every`
    updates. Returns environment steps/s at the learner and the share of wall time it waited for data."""
    started = time.perf_counter()
    waited = credit = 0.0
    received = version = broadcast_at = 0
    while received < steps:
        t = time.perf_counter()
        chunk = collectors.next()
        waited += time.perf_counter() - t
        learner.ingest(chunk.transitions)
        received += chunk.steps
        credit += chunk.steps * updates_per_step
        if len(learner.buffer):
            n = int(credit)
            credit -= n
            learner.update(n, received)
        if learner.updates - broadcast_at >= broadcast_every:
            version += 1
            collectors.broadcast(learner.weights(), version)
            broadcast_at = learner.updates
    wall = time.perf_counter() - started
    return {"env_steps": received, "wall_s": wall, "env_steps_per_s": received / wall, "updates": learner.updates,
            "learner_idle": waited / wall}
