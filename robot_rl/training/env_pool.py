"""N environments stepped together: in this process (the sim/ tasks step in ~0.5 ms, so a loop is cheapest)
or spread over worker processes (pixels: rendering is slow and runs on another core).

Written here rather than taken from `gymnasium.vector`: its vector envs step every sub-environment on each
call and reset them on their own schedule, while training needs to reset each environment with its own
episode seed (so a resumed run meets the same episodes) and to step only the environments whose episodes are
running (the others wait at a checkpoint or evaluation barrier).
"""
from __future__ import annotations

import multiprocessing as mp
from typing import Callable, Protocol

import gymnasium as gym
import numpy as np

EnvFactory = Callable[[int], gym.Env]  # env index -> a new environment
StepResult = tuple[dict[str, np.ndarray], float, bool, bool, bool]  # obs, reward, terminated, truncated, success


class EnvPoolError(ValueError):
    """The task's environments cannot be built `envs` times (e.g. an environment that exists only once)."""


def _build(factory: EnvFactory, index: int, num_envs: int) -> gym.Env:
    try:
        return factory(index)
    except Exception as err:  # any environment's constructor: name the task and the count asked for
        task = getattr(factory, "task", "the task")
        raise EnvPoolError(f"task={task!r}: environment {index} of envs={num_envs} could not be built "
                           f"({type(err).__name__}: {err}); use fewer environments (envs=1)") from None


class EnvPool(Protocol):
    num_envs: int

    def reset(self, index: list[int], seeds: list[int]) -> list[dict[str, np.ndarray]]: ...

    def step(self, index: list[int], actions: np.ndarray) -> list[StepResult]: ...

    def close(self) -> None: ...


def _step(env: gym.Env, action: np.ndarray) -> StepResult:
    obs, reward, terminated, truncated, info = env.step(action)
    return obs, float(reward), bool(terminated), bool(truncated), bool(info.get("success", False))


class LocalEnvPool:
    """The environments in this process, stepped one after another."""

    def __init__(self, factory: EnvFactory, num_envs: int):
        self.num_envs = num_envs
        self.envs = []
        try:
            for i in range(num_envs):
                self.envs.append(_build(factory, i, num_envs))
        except EnvPoolError:
            self.close()
            raise

    def reset(self, index: list[int], seeds: list[int]) -> list[dict[str, np.ndarray]]:
        return [self.envs[i].reset(seed=s)[0] for i, s in zip(index, seeds)]

    def step(self, index: list[int], actions: np.ndarray) -> list[StepResult]:
        return [_step(self.envs[i], a) for i, a in zip(index, actions)]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(conn, factory: EnvFactory, indices: list[int], num_envs: int) -> None:
    try:
        envs = {i: _build(factory, i, num_envs) for i in indices}
    except EnvPoolError as err:
        conn.send(("error", str(err)))
        conn.close()
        return
    conn.send(("ready", None))
    try:
        while True:
            command, payload = conn.recv()
            if command == "reset":
                conn.send([envs[i].reset(seed=s)[0] for i, s in payload])
            elif command == "step":
                conn.send([_step(envs[i], a) for i, a in payload])
            else:
                break
    finally:
        for env in envs.values():
            env.close()
        conn.close()


class SubprocessEnvPool:
    """The environments spread over `workers` processes (env i lives in worker i % workers); one call steps
    all workers in parallel. Started with 'spawn' so each worker opens its own rendering context."""

    def __init__(self, factory: EnvFactory, num_envs: int, workers: int):
        self.num_envs = num_envs
        self.workers = max(1, min(workers, num_envs))
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for w in range(self.workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, factory, list(range(w, num_envs, self.workers)),
                                                     num_envs), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            status, message = conn.recv()
            if status == "error":
                self.close()
                raise EnvPoolError(message)

    def _scatter(self, command: str, index: list[int], values) -> list:
        jobs: dict[int, list] = {}
        for i, v in zip(index, values):
            jobs.setdefault(i % self.workers, []).append((i, v))
        for w, job in jobs.items():
            self.conns[w].send((command, job))
        replies = {w: self.conns[w].recv() for w in jobs}
        position = {w: 0 for w in jobs}
        out = []
        for i in index:  # back in the caller's order
            w = i % self.workers
            out.append(replies[w][position[w]])
            position[w] += 1
        return out

    def reset(self, index: list[int], seeds: list[int]) -> list[dict[str, np.ndarray]]:
        return self._scatter("reset", index, seeds)

    def step(self, index: list[int], actions: np.ndarray) -> list[StepResult]:
        return self._scatter("step", index, list(actions))

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


class TaskEnvFactory:
    """Builds environment i of a task (picklable, so worker processes can build their own)."""

    def __init__(self, task: str, obs_type: str, seed: int, frame_stack: int = 1, **kwargs):
        self.task, self.obs_type, self.seed, self.frame_stack, self.kwargs = task, obs_type, seed, frame_stack, kwargs

    def __call__(self, index: int) -> gym.Env:
        from robot_rl.envs import make_env

        return make_env(self.task, self.obs_type, seed=self.seed + index, frame_stack=self.frame_stack,
                        **self.kwargs)[0]


def make_pool(factory: EnvFactory, num_envs: int, vector: str) -> EnvPool:
    """vector: local | subprocess | auto (subprocess for pixel observations with several environments)."""
    pixels = getattr(factory, "obs_type", "state") != "state"
    if vector == "subprocess" or (vector == "auto" and pixels and num_envs > 1):
        return SubprocessEnvPool(factory, num_envs, workers=min(num_envs, mp.cpu_count()))
    return LocalEnvPool(factory, num_envs)
