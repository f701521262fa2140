"""The learner: the agent, its replay buffer and a batch sampler. Takes plain-data Transitions in (from a
collector in this process, on other cores or on the robot), gives weights out as bytes.

Entries are staged per episode and enter the buffer when their episode ends (TD-MPC2 does the same), so
interleaved environments never mix inside a sub-trajectory and a buffer checkpoint holds whole episodes only.

With a `demos` buffer (learning on the robot), the stretches of an episode a teleoperator drove (entries flagged
`intervention`) also go into it as episodes of their own, HIL-SERL's scheme, when at least `horizon` steps long
(shorter ones hold no sub-trajectory for the world model); they stay in the main buffer too.
"""
from __future__ import annotations

import io

import numpy as np
import torch

from robot_rl.replay_buffer import ReplayBuffer
from robot_rl.training.profile import PhaseTimer
from robot_rl.training.samplers import BatchSampler
from robot_rl.training.transitions import Transitions


class Learner:
    def __init__(self, agent, buffer: ReplayBuffer, sampler: BatchSampler, timer: PhaseTimer | None = None,
                 demos: ReplayBuffer | None = None):
        self.agent, self.buffer, self.sampler, self.demos = agent, buffer, sampler, demos
        self.timer = timer or PhaseTimer()
        self.staged: dict[int, list[tuple]] = {}   # episode -> [(obs, action, reward, terminated, intervention)]
        self.demo_segments = 0                     # intervened stretches added to `demos`
        self.updates = 0
        self.metrics: dict[str, torch.Tensor] = {}

    @property
    def pending(self) -> int:
        """Episodes received in part, not yet in the buffer."""
        return len(self.staged)

    def ingest(self, t: Transitions) -> int:
        """Stage `t`'s entries; episodes that ended go into the buffer. Returns the episodes added."""
        added = 0
        with self.timer.phase("buffer"):
            for j in range(len(t)):
                e = int(t.episode[j])
                if t.first[j]:
                    if e in self.staged:
                        raise ValueError(f"transitions: episode {e} started twice")
                    self.staged[e] = []
                elif e not in self.staged:
                    raise ValueError(f"transitions: entry of episode {e} without its first observation")
                self.staged[e].append(({k: v[j] for k, v in t.obs.items()}, t.action[j], t.reward[j],
                                       bool(t.terminated[j]), bool(t.intervention[j])))
                if t.last[j]:
                    self._add_episode(self.staged.pop(e))
                    added += 1
        return added

    def _add_episode(self, entries: list[tuple]) -> None:
        obs = {k: np.stack([e[0][k] for e in entries]) for k in entries[0][0]}
        action = np.stack([e[1] for e in entries[1:]])
        reward = np.array([e[2] for e in entries[1:]], dtype=np.float32)
        self.buffer.add_episode(obs, action, reward, terminated=entries[-1][3])
        if self.demos is not None:
            self._add_interventions(obs, action, reward, np.array([e[4] for e in entries[1:]]), entries[-1][3])

    def _add_interventions(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: np.ndarray,
                           intervened: np.ndarray, terminated: bool) -> None:
        """Each run of intervened steps [i, j) with j - i >= horizon: observations i .. j (the one the operator
        took over at, through the one their last action reached), actions and rewards i .. j-1."""
        edges = np.flatnonzero(np.diff(np.concatenate([[0], intervened.astype(np.int8), [0]])))
        for i, j in zip(edges[::2], edges[1::2]):
            if j - i >= self.demos.horizon:
                self.demos.add_episode({k: v[i:j + 1] for k, v in obs.items()}, action[i:j], reward[i:j],
                                       terminated=terminated and j == len(action))
                self.demo_segments += 1

    def update(self, count: int, step: int, progress: bool = False) -> None:
        """`count` gradient updates on batches from the sampler; the last update's metrics stay on the device
        in `metrics` until someone logs them. `progress`: a bar of its own (the seed-step burst takes minutes
        on a CPU)."""
        from tqdm import tqdm

        batch_size = self.agent.cfg.batch_size
        for _ in tqdm(range(count), disable=not progress, desc="updates on the seeding data", leave=False,
                      dynamic_ncols=True):
            with self.timer.phase("sample"):
                batch = self.sampler.sample(batch_size, step)
            with self.timer.phase("update"):
                self.metrics = self.agent.update(batch)
            self.updates += 1

    def logged_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.metrics.items()}

    def weights(self) -> bytes:
        """The world model's parameters (what an actor needs), as bytes."""
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.agent.model.state_dict().items()}, buf)
        return buf.getvalue()


def load_weights(agent, blob: bytes) -> None:
    """Load `Learner.weights()` into an acting agent (e.g. a remote collector's copy)."""
    state = torch.load(io.BytesIO(blob), map_location=agent.device, weights_only=True)
    agent.model.load_state_dict(state)
