"""MoDem (Hansen et al., ICLR 2023): TD-MPC2 bootstrapped from a few demonstrations, in three phases, plus
MoDem-V2's switches for learning safely on a real robot (Lancaster et al., 2023). In the training engine
(robot_rl/training/) MoDem is an acting strategy and a batch sampler, not branches in the loop.

1. policy pretraining (`Modem.pretrain_policy`): behaviour cloning of the encoder and the policy prior on the
   demonstrations (random-shift augmentation of pixels, as DrQ); a frozen snapshot of the cloned encoder and
   policy is kept for seeding and the handover;
2. seeding (`ModemSeeding`, the first `seed_steps`, 5000 by default as in MoDem): the cloned policy with
   truncated-normal action noise (std `modem.seed_noise`, 0.05 as in MoDem) collects the first interaction
   data; the world model is then pretrained on demos + seeding data (the trainer's seed-step updates, with
   batches from the oversampling sampler below);
3. interactive learning with demo oversampling (`DemoOversampler`): each batch draws a scheduled fraction from
   the demo buffer, annealed linearly from `demo_ratio_start` (75 %) to `demo_ratio_end` (25 %) over
   `demo_ratio_steps`. Added here (not in the paper, `modem.bc_coef=0` turns it off): a behaviour-cloning
   term on each batch's demo share in the policy loss, which keeps the cloned policy while Q is still
   untrained (see `_bc_regulariser`).

MoDem-V2 switches (each off by default):
- exploration centering: `planner.center_std > 0` (robot_rl/planner.py) samples the planner's trajectories
  around the policy's own plan with that std instead of a wide Gaussian;
- agency handover (`AgencyHandover`): `modem.handover_steps > 0`: after seeding, each step is acted by the
  planner with a probability rising linearly from 0 to 1 over that many steps, otherwise by the frozen
  behaviour-cloned snapshot (decided per step and per environment, as MoDem-V2 does);
- pessimistic value: `planner.value_std_coef = k` plans with mean - k * std over the Q heads.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.demo_dataset import DemoEpisode, check_compatible, load_demos
from robot_rl.frame_stack import stack_frames
from robot_rl.layers import random_shift
from robot_rl.modem_config import ModemConfig, check_config
from robot_rl.replay_buffer import Batch, ReplayBuffer
from robot_rl.training.samplers import mixed_batch
from robot_rl.training.strategies import ActingStrategy, Schedule


def linear_schedule(start: float, end: float, duration: int, t: float) -> float:
    if duration <= 0:
        return end
    frac = min(max(t / duration, 0.0), 1.0)
    return start + (end - start) * frac


def demo_buffer(episodes: list[DemoEpisode], obs_spec: dict[str, tuple[tuple[int, ...], str]], action_dim: int,
                horizon: int, seed: int = 0) -> ReplayBuffer:
    """The demos in a replay buffer of their own (never overwritten), sampled like the interaction buffer."""
    capacity = sum(len(e) + 1 for e in episodes) + horizon + 2
    buffer = ReplayBuffer(capacity, obs_spec, action_dim, horizon, seed=seed)
    for ep in episodes:
        obs = ep.obs(list(obs_spec))
        if "pixels" in obs:  # a frame-stacked run: stack the demo's camera frames the same way
            obs["pixels"] = stack_frames(obs["pixels"], obs_spec["pixels"][0][0] // obs["pixels"].shape[1])
        buffer.add_episode(obs, ep.action, ep.reward)
    return buffer


class Modem:
    """The MoDem parts of a training run: the demos, phase 1 (`pretrain_policy`), and the acting strategy and
    batch sampler the training engine runs with (`strategy`, `sampler`)."""

    def __init__(self, cfg: ModemConfig, demos: str | Path, agent, env_info, seed: int, seed_steps: int):
        check_config(cfg)
        meta, episodes = load_demos(demos, cfg.episodes, task=env_info.task)  # task: LeRobot-recorded datasets
        model_spec = {k: shape for k, (shape, _) in env_info.obs_spec.items()}
        check_compatible(meta, demos, env_info.task, model_spec, env_info.action_dim, env_info.obs_layout)
        self.cfg, self.agent, self.seed_steps = cfg, agent, seed_steps
        self.meta, self.num_demos = meta, len(episodes)
        self.demos = demo_buffer(episodes, env_info.obs_spec, env_info.action_dim, agent.cfg.horizon, seed + 7919)
        self.seed = seed
        self.cloned = copy.deepcopy(agent.model).eval()  # the frozen behaviour-cloned snapshot (after phase 1)
        for p in self.cloned.parameters():
            p.requires_grad_(False)

    # ---- phase 1 ----
    def pretrain_policy(self, steps: int | None = None, batch_size: int | None = None, progress: bool = False
                        ) -> list[float]:
        """Behaviour cloning of encoder + policy prior on the demos; returns the loss of every step and
        freezes the result as the snapshot that seeds and shares control during the handover."""
        losses = behaviour_clone(self.agent, self.demos, self.cfg.bc_steps if steps is None else steps,
                                 batch_size or self.agent.cfg.batch_size, self.cfg.bc_lr, progress)
        self.cloned.load_state_dict(self.agent.model.state_dict())
        return losses

    def cloned_policy(self) -> "ClonedPolicy":
        return ClonedPolicy(self.cloned, self.agent.device)

    # ---- phases 2 and 3: what the training engine runs ----
    def strategy(self, interaction: ActingStrategy) -> Schedule:
        """Seeding with the cloned policy, then `interaction` (the agent's planner), through the handover if set."""
        seeding = ModemSeeding(self.cloned_policy(), self.cfg.seed_noise, self.seed + 104_729)
        after = interaction
        if self.cfg.handover_steps > 0:
            after = AgencyHandover(interaction, self.cloned_policy(), self.seed_steps, self.cfg.handover_steps,
                                   self.seed + 15_485_863)
        return Schedule([(self.seed_steps, seeding)], then=after)

    def sampler(self, buffer: ReplayBuffer, device: torch.device) -> "DemoOversampler":
        sampler = DemoOversampler(buffer, self.demos, self.cfg, self.seed_steps, device, self.seed + 104_723)
        if self.cfg.bc_coef > 0:
            self.agent.pi_regulariser = sampler.bc_regulariser(self.agent, self.cfg.bc_coef)
        return sampler

    def state(self) -> dict:
        return {"cloned": {k: v.cpu() for k, v in self.cloned.state_dict().items()}}

    def load_state(self, state: dict) -> None:
        self.cloned.load_state_dict(state["cloned"])


class ClonedPolicy:
    """The frozen behaviour-cloned encoder and policy: deterministic actions (N, A) for batched observations."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device

    @torch.inference_mode()
    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = {k: torch.as_tensor(np.asarray(v), device=self.device) for k, v in obs.items()}
        _, mean, _ = self.model.pi(self.model.encode(x))
        return mean.cpu().numpy()


def truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float, clip: float) -> np.ndarray:
    """Normal noise with its tails cut at +-clip (resampled, so the std inside is close to `std` when clip >> std)."""
    noise = rng.normal(0.0, std, shape)
    bad = np.abs(noise) > clip
    while bad.any():
        noise[bad] = rng.normal(0.0, std, int(bad.sum()))
        bad = np.abs(noise) > clip
    return noise


class ModemSeeding:
    """Phase 2: the cloned policy's action plus truncated-normal noise (cut at 2 std), clipped to [-1, 1]."""

    def __init__(self, policy: ClonedPolicy, noise: float, seed: int):
        self.policy, self.noise = policy, noise
        self.rng = np.random.default_rng(seed)

    def act(self, obs, first, envs, step) -> np.ndarray:
        mean = self.policy(obs)
        noise = truncated_normal(self.rng, mean.shape, self.noise, 2 * self.noise) if self.noise > 0 else 0.0
        return np.clip(mean + noise, -1.0, 1.0).astype(np.float32)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class AgencyHandover:
    """MoDem-V2's agency transfer: at each step, each environment is acted by the planner with probability
    `share(step)` (0 -> 1 linearly over `duration` steps after seeding), otherwise by the frozen cloned policy."""

    def __init__(self, planner: ActingStrategy, policy: ClonedPolicy, start: int, duration: int, seed: int):
        self.planner, self.policy, self.start, self.duration = planner, policy, start, duration
        self.rng = np.random.default_rng(seed)
        self.last_by_planner = np.zeros(0, dtype=bool)  # which environments the planner acted for last

    def share(self, step: int) -> float:
        return linear_schedule(0.0, 1.0, self.duration, step - self.start)

    def act(self, obs, first, envs, step) -> np.ndarray:
        by_planner = self.rng.random(len(envs)) < self.share(step)
        actions = np.empty((len(envs), 0), np.float32)
        if by_planner.any():
            pick = {k: v[by_planner] for k, v in obs.items()}
            planned = self.planner.act(pick, first[by_planner], envs[by_planner], step)
            actions = np.zeros((len(envs), planned.shape[1]), np.float32)
            actions[by_planner] = planned
        if (~by_planner).any():
            cloned = self.policy({k: v[~by_planner] for k, v in obs.items()})
            if actions.shape[1] == 0:
                actions = np.zeros((len(envs), cloned.shape[1]), np.float32)
            actions[~by_planner] = cloned
        self.last_by_planner = by_planner
        return actions

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "planner": self.planner.state()}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.planner.load_state(state["planner"])


class DemoOversampler:
    """Phase 3's batches: a share Binomial(batch_size, demo_ratio(step)) from the demos, the rest from the
    interaction buffer (unbiased for any batch size); the demo share comes first in the batch."""

    def __init__(self, buffer: ReplayBuffer, demos: ReplayBuffer, cfg: ModemConfig, seed_steps: int,
                 device: torch.device | str, seed: int):
        self.buffer, self.demos, self.cfg, self.seed_steps, self.device = buffer, demos, cfg, seed_steps, device
        self.rng = np.random.default_rng(seed)
        self.last_demo_count = 0      # demo samples at the front of the latest batch

    def demo_ratio(self, step: int) -> float:
        """Fraction of a batch drawn from the demos at environment step `step`."""
        c = self.cfg
        return linear_schedule(c.demo_ratio_start, c.demo_ratio_end, c.demo_ratio_steps, step - self.seed_steps)

    def sample(self, batch_size: int, step: int) -> Batch:
        n_demo = self.last_demo_count = int(self.rng.binomial(batch_size, self.demo_ratio(step)))
        return mixed_batch(self.demos, self.buffer, n_demo, batch_size, self.device)

    def bc_regulariser(self, agent, coef: float):
        """coef x the policy's squared action error on the demo share of the batch (the first
        `last_demo_count` samples), added to TD-MPC2's policy loss. Not in the MoDem paper: without it the
        policy update, whose Q gradients are noise while Q is untrained, erases the cloned policy within ~200
        updates (measured on panda-reach-sparse: BC policy 100% -> 0% success, action MSE 1e-4 -> 0.24), and
        the demos' head start with it. A separate BC step with its own optimiser did not help (Adam moves both
        by ~lr per step: 0% success, MSE 0.08); in one objective the BC gradient outweighs the noise."""
        def regulariser(zs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            n = self.last_demo_count
            if n == 0:
                return zs.new_zeros(())
            _, mean, _ = agent.model.pi(zs[:-1, :n])
            return coef * F.mse_loss(mean, action[:, :n])
        return regulariser

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "demo_rng": self.demos.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.demos.rng.bit_generator.state = state["demo_rng"]


def behaviour_clone(agent, demos: ReplayBuffer, steps: int, batch_size: int, lr: float,
                    progress: bool = False) -> list[float]:
    """MoDem phase 1: minimise || tanh(mu(h(o))) - a ||^2 over demo (observation, action) pairs, training the
    encoder and the policy head together (random shifts on pixels). Uses its own Adam: the agent's
    optimisers keep their fresh state for the later phases."""
    from tqdm import tqdm

    model = agent.model
    params = [*model.encoder.parameters(), *model.pi_head.parameters()]
    optim = torch.optim.Adam(params, lr=lr)
    shift = agent.cfg.pixel_shift
    losses: list[float] = []
    model.train()
    try:
        for _ in tqdm(range(steps), disable=not progress, desc="behaviour cloning"):
            batch = demos.sample(batch_size, agent.device)
            obs = {k: v[:-1].flatten(0, 1) for k, v in batch.obs.items()}  # every (obs, action) pair of the slices
            if "pixels" in obs and shift > 0:
                obs["pixels"] = random_shift(obs["pixels"], shift)
            _, mean, _ = model.pi(model.encode(obs))
            loss = F.mse_loss(mean, batch.action.flatten(0, 1))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, agent.cfg.grad_clip_norm)
            optim.step()
            losses.append(loss.item())
    finally:
        model.eval()
    return losses


@torch.inference_mode()
def policy_action_error(agent, episodes: list[DemoEpisode], keys: list[str]) -> float:
    """Mean squared error of the policy's deterministic action against demo actions (e.g. held-out episodes)."""
    model = agent.model
    errors = []
    for ep in episodes:
        obs = {k: torch.as_tensor(getattr(ep, k)[:-1], device=agent.device) for k in keys}
        _, mean, _ = model.pi(model.encode(obs))
        errors.append(((mean.cpu().numpy() - ep.action) ** 2).mean(-1))
    return float(np.concatenate(errors).mean())
