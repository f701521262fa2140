"""Batch samplers: where a learner's update batches come from. One interface, `sample(batch_size, step)`;
MoDem's demo oversampling (robot_rl/modem.py) and the on-robot mix of teleoperated and online data
(`InterventionSampler`) are the others."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from robot_rl.replay_buffer import Batch, ReplayBuffer


class BatchSampler(Protocol):
    def sample(self, batch_size: int, step: int) -> Batch: ...

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...


class DeviceMirror:
    """A copy of the buffer's storage on the training device, kept up to date with the entries written since the
    last batch (so a CUDA update gathers its batch on the GPU instead of copying it from the host each time)."""

    def __init__(self, buffer: ReplayBuffer, device: torch.device):
        self.buffer, self.device = buffer, device
        self.layout, self.writes = -1, 0
        self.arrays: dict[str, torch.Tensor] = {}

    def _host_arrays(self) -> dict[str, np.ndarray]:
        b = self.buffer
        return {**{f"obs.{k}": v for k, v in b.obs.items()}, "action": b.action, "reward": b.reward,
                "terminated": b.terminated}

    def sync(self) -> None:
        b = self.buffer
        host = self._host_arrays()
        new = b.writes - self.writes
        if b.layout != self.layout or new >= len(b.episode):
            self.arrays = {k: torch.from_numpy(v).to(self.device) for k, v in host.items()}
        elif new:
            rows = (b.pos - new + np.arange(new)) % len(b.episode)
            index = torch.as_tensor(rows, device=self.device)
            for k, v in host.items():
                self.arrays[k][index] = torch.from_numpy(v[rows]).to(self.device)
        self.layout, self.writes = b.layout, b.writes

    def sample(self, batch_size: int) -> Batch:
        self.sync()
        steps = torch.as_tensor(self.buffer.sample_steps(batch_size), device=self.device)
        a = self.arrays
        obs = {k[4:]: v[steps] for k, v in a.items() if k.startswith("obs.")}
        return Batch(obs=obs, action=a["action"][steps[1:]], reward=a["reward"][steps[1:]],
                     terminated=a["terminated"][steps[1:]])


def fits_on_device(buffer: ReplayBuffer, device: torch.device, share: float = 0.25) -> bool:
    """The buffer at full capacity takes at most `share` of the device's free memory."""
    if device.type != "cuda":
        return False
    entry = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in buffer.obs_spec.values())
    entry += 4 * (buffer.action_dim + 2)
    free, _ = torch.cuda.mem_get_info(device)
    return buffer.capacity * entry <= share * free


class UniformSampler:
    """Sub-trajectories drawn uniformly from the interaction buffer (TD-MPC2). On CUDA the storage is mirrored
    on the GPU when it fits, else batches are gathered in pinned host memory and copied asynchronously."""

    def __init__(self, buffer: ReplayBuffer, device: torch.device, mirror: bool | None = None):
        self.buffer, self.device = buffer, device
        self.mirror = DeviceMirror(buffer, device) if (fits_on_device(buffer, device) if mirror is None
                                                        else mirror) else None

    def sample(self, batch_size: int, step: int) -> Batch:
        if self.mirror is not None:
            return self.mirror.sample(batch_size)
        return self.buffer.sample(batch_size, self.device, pin=self.device.type == "cuda")

    def state(self) -> dict:
        return {}  # the buffer's own generator is saved with the buffer

    def load_state(self, state: dict) -> None:
        pass


def mixed_batch(demos: ReplayBuffer, buffer: ReplayBuffer, n_demo: int, batch_size: int,
                device: torch.device | str) -> Batch:
    """`n_demo` samples from `demos` first, the rest of `batch_size` from `buffer`, as one batch."""
    parts = [demos.sample(n_demo, device)] if n_demo else []
    if n_demo < batch_size:
        parts.append(buffer.sample(batch_size - n_demo, device))
    return parts[0] if len(parts) == 1 else Batch.cat(parts)


class InterventionSampler:
    """HIL-SERL's batches: a share `demo_ratio` (binomially drawn, unbiased for any batch size) from the buffer of
    teleoperated stretches, the rest from the interaction buffer; all from the interaction buffer while the demo
    buffer holds no whole sub-trajectory yet. The demo share comes first in the batch (as DemoOversampler's)."""

    def __init__(self, buffer: ReplayBuffer, demos: ReplayBuffer, demo_ratio: float, device: torch.device | str,
                 seed: int):
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio={demo_ratio}: expected a share in [0, 1]")
        self.buffer, self.demos, self.demo_ratio, self.device = buffer, demos, demo_ratio, device
        self.rng = np.random.default_rng(seed)
        self.last_demo_count = 0

    def sample(self, batch_size: int, step: int) -> Batch:
        ratio = self.demo_ratio if self.demos.episodes else 0.0   # only stretches >= horizon steps enter it
        n_demo = self.last_demo_count = int(self.rng.binomial(batch_size, ratio))
        return mixed_batch(self.demos, self.buffer, n_demo, batch_size, self.device)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
