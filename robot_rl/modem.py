"""MoDem (Hansen et al., ICLR 2023): TD-MPC2 bootstrapped from a few demonstrations, in three phases, plus
MoDem-V2's switches for learning safely on a real robot (Lancaster et al., 2023).

1. policy pretraining: behaviour cloning of the encoder and the policy prior on the demonstrations
   (random-shift augmentation of pixels, as DrQ);
2. seeding: the pretrained policy, with small Gaussian action noise, collects the first interaction data;
   the world model is then pretrained on demos + seeding data (the trainer's usual seed-step updates, with
   batches drawn by the oversampling sampler below);
3. interactive learning with demo oversampling: each batch draws a scheduled fraction from the demo buffer,
   annealed linearly from `demo_ratio_start` (75 %) to `demo_ratio_end` (25 %) over `demo_ratio_steps`.
   Added here (not in the paper, `modem.bc_coef=0` turns it off): a behaviour-cloning term on each batch's
   demo share in the policy loss, which keeps the cloned policy while Q is still untrained (see
   `_bc_regulariser`).

MoDem-V2 switches (each off by default):
- exploration centering: `planner.center_std > 0` (robot_rl/planner.py) samples the planner's trajectories
  around the policy's own plan with that std instead of a wide Gaussian;
- agency handover: `modem.handover_steps > 0`: after seeding, each episode is driven by the planner with a
  probability rising linearly from 0 to 1 over that many steps, otherwise by the behaviour-cloned policy;
- pessimistic value: `planner.value_std_coef = k` plans with mean - k * std over the Q heads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.demo_dataset import DemoEpisode, check_compatible, load_demos
from robot_rl.frame_stack import stack_frames
from robot_rl.layers import random_shift
from robot_rl.modem_config import ModemConfig, check_config
from robot_rl.replay_buffer import Batch, ReplayBuffer


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
    """The MoDem parts of a training run; the trainer calls `pretrain_policy` once, `seed_action` while
    seeding, `sample` for every update batch and `act` for every interaction step after seeding."""

    def __init__(self, cfg: ModemConfig, demos: str | Path, agent, env_info, seed: int, seed_steps: int):
        check_config(cfg)
        meta, episodes = load_demos(demos, cfg.episodes)
        model_spec = {k: shape for k, (shape, _) in env_info.obs_spec.items()}
        check_compatible(meta, demos, env_info.task, model_spec, env_info.action_dim, env_info.obs_layout)
        self.cfg, self.agent, self.seed_steps = cfg, agent, seed_steps
        self.meta, self.num_demos = meta, len(episodes)
        self.demos = demo_buffer(episodes, env_info.obs_spec, env_info.action_dim, agent.cfg.horizon, seed + 7919)
        self.rng = np.random.default_rng(seed + 104_729)
        self.policy_episode = False   # handover: the current episode is driven by the policy, not the planner
        self.last_demo_count = 0      # demo samples at the front of the latest `sample` batch
        if cfg.bc_coef > 0:
            agent.pi_regulariser = self._bc_regulariser

    # ---- phase 1 ----
    def pretrain_policy(self, steps: int | None = None, batch_size: int | None = None, progress: bool = False
                        ) -> list[float]:
        """Behaviour cloning of encoder + policy prior on the demos; returns the loss of every step."""
        return behaviour_clone(self.agent, self.demos, self.cfg.bc_steps if steps is None else steps,
                               batch_size or self.agent.cfg.batch_size, self.cfg.bc_lr, progress)

    # ---- phase 2 ----
    @torch.inference_mode()
    def seed_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self._policy_action(obs)

    def _policy_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        model = self.agent.model
        _, mean, _ = model.pi(model.encode(self.agent.obs_tensors(obs)))
        action = mean[0].cpu().numpy() + self.rng.normal(0.0, self.cfg.seed_noise, mean.shape[-1])
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ---- phase 3 ----
    def demo_ratio(self, step: int) -> float:
        """Fraction of a batch drawn from the demos at environment step `step`."""
        c = self.cfg
        return linear_schedule(c.demo_ratio_start, c.demo_ratio_end, c.demo_ratio_steps, step - self.seed_steps)

    def sample(self, buffer: ReplayBuffer, batch_size: int, step: int, device: torch.device | str = "cpu") -> Batch:
        """A batch whose demo share is Binomial(batch_size, demo_ratio(step)): unbiased for any batch size."""
        n_demo = self.last_demo_count = int(self.rng.binomial(batch_size, self.demo_ratio(step)))
        parts = [self.demos.sample(n_demo, device)] if n_demo else []
        if n_demo < batch_size:
            parts.append(buffer.sample(batch_size - n_demo, device))
        return parts[0] if len(parts) == 1 else Batch.cat(parts)

    def _bc_regulariser(self, zs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """modem.bc_coef x the policy's squared action error on the demo share of the batch (the first
        `last_demo_count` samples), added to TD-MPC2's policy loss. Not in the MoDem paper: without it the
        policy update, whose Q gradients are noise while Q is untrained, erases the cloned policy within ~200
        updates (measured on panda-reach-sparse: BC policy 100% -> 0% success, action MSE 1e-4 -> 0.24), and
        the demos' head start with it. A separate BC step with its own optimiser did not help (Adam moves both
        by ~lr per step: 0% success, MSE 0.08); in one objective the BC gradient outweighs the noise."""
        n = self.last_demo_count
        if n == 0:
            return zs.new_zeros(())
        _, mean, _ = self.agent.model.pi(zs[:-1, :n])
        return self.cfg.bc_coef * F.mse_loss(mean, action[:, :n])

    def planner_share(self, step: int) -> float:
        """MoDem-V2 agency handover: the planner's share of control at environment step `step`."""
        if self.cfg.handover_steps <= 0:
            return 1.0
        return linear_schedule(0.0, 1.0, self.cfg.handover_steps, step - self.seed_steps)

    @torch.inference_mode()
    def act(self, obs: dict[str, np.ndarray], first: bool, step: int) -> np.ndarray:
        """The interaction action after seeding: the agent's (planner) action, or during a handover the
        behaviour-cloned policy's for the episodes the planner does not drive."""
        if first:
            self.policy_episode = bool(self.rng.random() >= self.planner_share(step))
        if self.policy_episode:
            return self._policy_action(obs)
        return self.agent.act(obs, first)


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
