"""Batch samplers: where a learner's update batches come from. One interface, `sample(batch_size, step)`;
MoDem's demo oversampling is the other implementation (robot_rl/modem.py)."""
from __future__ import annotations

from typing import Protocol

import torch

from robot_rl.replay_buffer import Batch, ReplayBuffer


class BatchSampler(Protocol):
    def sample(self, batch_size: int, step: int) -> Batch: ...

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...


class UniformSampler:
    """Sub-trajectories drawn uniformly from the interaction buffer (TD-MPC2)."""

    def __init__(self, buffer: ReplayBuffer, device: torch.device):
        self.buffer, self.device = buffer, device

    def sample(self, batch_size: int, step: int) -> Batch:
        return self.buffer.sample(batch_size, self.device)

    def state(self) -> dict:
        return {}  # the buffer's own generator is saved with the buffer

    def load_state(self, state: dict) -> None:
        pass
