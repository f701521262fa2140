"""Replay buffer of episodes, sampled as sub-trajectories of `horizon + 1` observations (TD-MPC2).

Storage is a ring of entries; entry i holds an observation, the action and reward that led to it
(zeros for an episode's first entry), and whether that step terminated the episode (a terminal state: no
value beyond it; truncation by a time limit is not termination). A sub-trajectory starting at entry s uses obs[s..s+H],
action[s+1..s+H], reward[s+1..s+H]; it is valid when all its entries belong to one episode.
Arrays grow on demand up to `capacity`, so a large capacity costs nothing until it is used.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Batch:
    """obs: modality -> (H+1, B, ...); action (H, B, A); reward (H, B); terminated (H, B): 1.0 where the step
    into obs[t+1] ended the episode in a terminal state (None: no terminal states). Tensors on the training device."""
    obs: dict[str, torch.Tensor]
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor | None = None

    @staticmethod
    def cat(batches: list["Batch"]) -> "Batch":
        """Join batches along the batch dim (e.g. demonstration and interaction samples)."""
        terminated = None
        if any(b.terminated is not None for b in batches):
            terminated = torch.cat([b.terminated if b.terminated is not None else torch.zeros_like(b.reward)
                                    for b in batches], dim=1)
        return Batch(obs={k: torch.cat([b.obs[k] for b in batches], dim=1) for k in batches[0].obs},
                     action=torch.cat([b.action for b in batches], dim=1),
                     reward=torch.cat([b.reward for b in batches], dim=1), terminated=terminated)


class ReplayBuffer:
    def __init__(self, capacity: int, obs_spec: dict[str, tuple[tuple[int, ...], str]], action_dim: int,
                 horizon: int, seed: int = 0):
        """obs_spec: modality -> (shape, numpy dtype name)."""
        if capacity < horizon + 2:
            raise ValueError(f"buffer capacity {capacity} too small for horizon {horizon}")
        self.capacity = capacity
        self.horizon = horizon
        self.action_dim = action_dim
        self.obs_spec = {k: (tuple(shape), str(dtype)) for k, (shape, dtype) in obs_spec.items()}
        self.rng = np.random.default_rng(seed)
        self.pos = 0          # next entry to write
        self.size = 0         # entries written and not yet overwritten
        self.episodes = 0     # episodes started
        self.writes = 0       # entries ever written (a device mirror copies what came since its last look)
        self.layout = 0       # bumped when the arrays are replaced (grown or loaded): mirrors copy all again
        self._alloc(min(capacity, 4096))

    def _alloc(self, n: int) -> None:
        self.layout = getattr(self, "layout", 0) + 1
        old = getattr(self, "episode", None)
        obs = {k: np.zeros((n, *shape), dtype=dtype) for k, (shape, dtype) in self.obs_spec.items()}
        action = np.zeros((n, self.action_dim), dtype=np.float32)
        reward = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=np.float32)
        episode = np.full(n, -1, dtype=np.int64)
        if old is not None:
            m = len(old)
            for k in obs:
                obs[k][:m] = self.obs[k]
            action[:m], reward[:m], terminated[:m], episode[:m] = self.action, self.reward, self.terminated, old
        self.obs, self.action, self.reward, self.terminated, self.episode = obs, action, reward, terminated, episode

    def __len__(self) -> int:
        return self.size

    def _write(self, obs: dict[str, np.ndarray], action: np.ndarray | None, reward: float,
               terminated: bool = False) -> None:
        if self.pos >= len(self.episode):
            self._alloc(min(self.capacity, 2 * len(self.episode)))
        i = self.pos
        for k in self.obs_spec:
            self.obs[k][i] = obs[k]
        self.action[i] = 0.0 if action is None else action
        self.reward[i] = reward
        self.terminated[i] = float(terminated)
        self.episode[i] = self.episodes - 1
        self.pos = (self.pos + 1) % self.capacity
        self.writes += 1
        self.size = min(self.size + 1, self.capacity)

    def start_episode(self, obs: dict[str, np.ndarray]) -> None:
        self.episodes += 1
        self._write(obs, None, 0.0)

    def add(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: float, terminated: bool = False) -> None:
        """The observation reached by `action`, the reward received for it, and whether it is terminal."""
        if self.episodes == 0:
            raise RuntimeError("ReplayBuffer.add before start_episode")
        self._write(obs, action, reward, terminated)

    def add_episode(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: np.ndarray,
                    terminated: bool = False) -> None:
        """A whole episode: obs arrays (T+1, ...), action (T, A), reward (T,); `terminated`: it ended in a
        terminal state (its last step), rather than by truncation."""
        steps = len(action)
        if len(reward) != steps or any(len(v) != steps + 1 for v in obs.values()):
            raise ValueError(f"episode lengths disagree: action {len(action)}, reward {len(reward)}, "
                             f"obs {[len(v) for v in obs.values()]} (expected T, T, T+1)")
        self.start_episode({k: v[0] for k, v in obs.items()})
        for t in range(steps):
            self.add({k: v[t + 1] for k, v in obs.items()}, action[t], float(reward[t]),
                     terminated and t == steps - 1)

    def _valid(self, start: np.ndarray) -> np.ndarray:
        end = (start + self.horizon) % self.capacity
        n = len(self.episode)
        ok = end < n
        ep_end = np.where(ok, self.episode[np.minimum(end, n - 1)], -2)
        # The slice must not run through the write head (its last entry would be older than its first).
        ahead = (self.pos - start - 1) % self.capacity
        return ok & (self.episode[start] >= 0) & (ep_end == self.episode[start]) & (ahead >= self.horizon)

    def sample_indices(self, batch_size: int) -> np.ndarray:
        idx = self.rng.integers(0, self.size, batch_size)
        for _ in range(1000):
            bad = ~self._valid(idx)
            if not bad.any():
                return idx
            idx[bad] = self.rng.integers(0, self.size, int(bad.sum()))
        raise RuntimeError(f"replay buffer holds no sub-trajectory of {self.horizon + 1} steps from one episode")

    def sample_steps(self, batch_size: int) -> np.ndarray:
        """Entry indices (H+1, B) of `batch_size` random sub-trajectories."""
        start = self.sample_indices(batch_size)
        return (start[None, :] + np.arange(self.horizon + 1)[:, None]) % self.capacity

    def sample(self, batch_size: int, device: torch.device | str = "cpu", pin: bool = False) -> Batch:
        """`pin`: gather into pinned host memory and copy asynchronously (CUDA, when the storage is on the host)."""
        steps = self.sample_steps(batch_size)

        def to_device(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(a)
            return t.pin_memory().to(device, non_blocking=True) if pin else t.to(device)
        return Batch(obs={k: to_device(v[steps]) for k, v in self.obs.items()}, action=to_device(self.action[steps[1:]]),
                     reward=to_device(self.reward[steps[1:]]), terminated=to_device(self.terminated[steps[1:]]))

    # --- persistence (resume) ---
    def state(self) -> dict:
        n = min(len(self.episode), max(self.size, self.pos))
        return {"capacity": self.capacity, "horizon": self.horizon, "pos": self.pos, "size": self.size,
                "episodes": self.episodes, "rng": self.rng.bit_generator.state,
                "obs": {k: v[:n].copy() for k, v in self.obs.items()}, "action": self.action[:n].copy(),
                "reward": self.reward[:n].copy(), "terminated": self.terminated[:n].copy(),
                "episode": self.episode[:n].copy()}

    def load_state(self, state: dict) -> None:
        if state["capacity"] != self.capacity or state["horizon"] != self.horizon:
            raise ValueError(f"buffer state has capacity {state['capacity']}, horizon {state['horizon']}; "
                             f"expected {self.capacity}, {self.horizon}")
        n = len(state["episode"])
        self.obs = {k: np.zeros((max(n, 1), *shape), dtype=dtype) for k, (shape, dtype) in self.obs_spec.items()}
        for k in self.obs:
            self.obs[k][:n] = state["obs"][k]
        self.action = np.array(state["action"], dtype=np.float32).reshape(n, self.action_dim)
        self.reward = np.array(state["reward"], dtype=np.float32)
        self.terminated = np.array(state.get("terminated", np.zeros(n)), dtype=np.float32)  # older files: none
        self.episode = np.array(state["episode"], dtype=np.int64)
        self.pos, self.size, self.episodes = state["pos"], state["size"], state["episodes"]
        self.layout += 1
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> None:
        """Atomic write of the buffer (npz; a temp file in the same folder, then rename)."""
        path = Path(path)
        state = self.state()
        arrays = {f"obs.{k}": v for k, v in state.pop("obs").items()}
        arrays.update(action=state.pop("action"), reward=state.pop("reward"), terminated=state.pop("terminated"),
                      episode=state.pop("episode"))
        arrays["meta"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, path: str | Path) -> None:
        path = Path(path)
        try:
            with np.load(path) as data:
                state = json.loads(bytes(data["meta"]).decode())
                state["obs"] = {k: data[f"obs.{k}"] for k in self.obs_spec}
                state.update(action=data["action"], reward=data["reward"], episode=data["episode"])
                if "terminated" in data:
                    state["terminated"] = data["terminated"]
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: replay buffer file not found") from None
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path}: not a replay buffer written by robot_rl ({err})") from None
        self.load_state(state)
