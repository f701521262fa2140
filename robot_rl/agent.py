"""The TD-MPC2 agent: acting (MPPI planning or the policy prior) and one gradient update on a batch of
sub-trajectories (joint-embedding consistency, reward and TD value losses; policy loss with percentile
value scaling and an entropy bonus; Polyak-averaged target Q)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.agent_config import AgentConfig, check_planner, heuristic_discount
from robot_rl.layers import random_shift
from robot_rl.planner import plan, sample_noise
from robot_rl.replay_buffer import Batch
from robot_rl.two_hot import soft_ce
from robot_rl.world_model import ObsSpec, WorldModel


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available on this machine; use device=cpu or auto")
    return device


class TDMPC2:
    def __init__(self, cfg: AgentConfig, obs_spec: ObsSpec, action_dim: int, episode_length: int,
                 device: torch.device | str = "cpu", compile: bool = False):
        check_planner(cfg.planner)
        self.cfg = cfg
        self.device = torch.device(device)
        self.action_dim = action_dim
        self.discount = heuristic_discount(episode_length, cfg)
        self.model = WorldModel(cfg, obs_spec, action_dim).to(self.device)
        m = self.model
        self.optim = torch.optim.Adam([
            {"params": m.encoder.parameters(), "lr": cfg.lr * cfg.enc_lr_scale},
            {"params": [*m.dynamics.parameters(), *m.reward_head.parameters(), *m.qs.parameters()]},
        ], lr=cfg.lr, fused=True)  # fused: one kernel for all parameters instead of ~10 ops per tensor
        self.pi_optim = torch.optim.Adam(m.pi_head.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
        self.scale = torch.ones((), device=self.device)  # running 5th-95th percentile range of Q
        self.prev_mean = torch.zeros(1, cfg.planner.horizon, action_dim, device=self.device)
        # Optional extra policy loss f(latents (H+1, B, L), actions (H, B, A)) -> scalar, added to the policy
        # objective (MoDem's behaviour-cloning term on the demo share of a batch, robot_rl/modem.py).
        self.pi_regulariser = None
        self._rho = cfg.rho ** torch.arange(cfg.horizon + 1, dtype=torch.float32, device=self.device)
        self.model.eval()
        if compile:  # the loss computations; optimiser steps stay eager
            # (inductor's pattern matcher fails on this graph in torch 2.13: "slice_shape" missing)
            options = {"pattern_matcher": False}
            self._model_loss = torch.compile(self._model_loss, options=options)
            self._pi_forward = torch.compile(self._pi_forward, options=options)

    # ---- acting ----
    def obs_tensors(self, obs: dict[str, np.ndarray], batched: bool = False) -> dict[str, torch.Tensor]:
        """Observations -> tensors on the device; one observation (no batch dim) gains a batch dim of 1."""
        def tensor(v: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(np.asarray(v), device=self.device)
            return t if batched else t.unsqueeze(0)
        return {k: tensor(v) for k, v in obs.items()}

    def initial_plan(self, batch: int) -> torch.Tensor:
        """A zero warm start for `batch` environments (the planner ignores it where is_first is set)."""
        return torch.zeros(batch, self.cfg.planner.horizon, self.action_dim, device=self.device)

    @torch.inference_mode()
    def act_batch(self, obs: dict[str, torch.Tensor], first: torch.Tensor, prev_mean: torch.Tensor,
                  eval_mode: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (N, A) in [-1, 1] for N environments in one call, and their next warm starts (N, H, A).
        `first` (N,) marks episode starts; `prev_mean` is each environment's previous plan (unused by the
        policy-only path). Training (eval_mode=False) explores: the policy samples; the planner adds its
        std as noise."""
        pcfg = self.cfg.planner
        if not pcfg.plan:
            action, mean, _ = self.model.pi(self.model.encode(obs))
            return (mean if eval_mode else action), prev_mean
        noise = sample_noise(pcfg, len(first), self.action_dim, self.device)
        action, next_mean, std = plan(self.model, obs, prev_mean, first, *noise, pcfg, self.discount)
        if not eval_mode:
            action = (action + std * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action, next_mean

    def act(self, obs: dict[str, np.ndarray], first: bool, eval_mode: bool = False) -> np.ndarray:
        """One environment's action (A,) in [-1, 1]; the agent keeps its warm start between calls."""
        action, self.prev_mean = self.act_batch(self.obs_tensors(obs), torch.tensor([first], device=self.device),
                                                self.prev_mean, eval_mode)
        return action[0].cpu().numpy()

    # ---- learning ----
    def update(self, batch: Batch) -> dict[str, float]:
        obs = batch.obs
        if "pixels" in obs and self.cfg.pixel_shift > 0:
            pix = obs["pixels"]
            obs = dict(obs, pixels=random_shift(pix.reshape(-1, *pix.shape[2:]), self.cfg.pixel_shift)
                       .reshape(pix.shape))
        self.model.train()
        try:
            info = self._update_step(obs, batch.action, batch.reward)
        finally:
            self.model.eval()
        return {k: float(v) for k, v in info.items()}

    def _td_target(self, next_z: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        action, _, _ = self.model.pi(next_z)
        q = self.model.q_values(next_z, action, target=True)  # (num_q, H, B)
        pair = torch.randperm(q.shape[0], device=q.device)[:2]  # min over 2 random heads
        return reward + self.discount * q[pair].min(0).values

    def _update_step(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor):
        cfg, m = self.cfg, self.model
        total, zs, info = self._model_loss(obs, action, reward)
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for g in self.optim.param_groups for p in g["params"]], cfg.grad_clip_norm, foreach=True)
        self.optim.step()

        zs = zs.detach()
        _, log_prob, q = self._pi_forward(zs)
        with torch.no_grad():  # running 5th-95th percentile range of Q, at least 1
            lo, hi = torch.quantile(q[0], torch.tensor([0.05, 0.95], device=q.device))
            self.scale.lerp_(torch.clamp(hi - lo, min=1.0), cfg.tau)
        entropy = -log_prob
        rho = self._rho[: zs.shape[0]]
        pi_loss = (-(cfg.entropy_coef * entropy + q / self.scale).mean(-1) * rho).mean()
        if self.pi_regulariser is not None:
            pi_loss = pi_loss + self.pi_regulariser(zs, action)
        self.pi_optim.zero_grad(set_to_none=True)
        pi_loss.backward()
        torch.nn.utils.clip_grad_norm_(m.pi_head.parameters(), cfg.grad_clip_norm, foreach=True)
        self.pi_optim.step()
        m.update_target(cfg.tau)
        return {**info, "total_loss": total.detach(), "grad_norm": grad_norm.detach(), "pi_loss": pi_loss.detach(),
                "entropy": entropy.mean().detach(), "pi_scale": self.scale.clone()}

    def _model_loss(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor):
        """World-model loss over the horizon: consistency, reward and TD value, weighted by rho^t."""
        cfg, m = self.cfg, self.model
        horizon = action.shape[0]
        rho = self._rho[:horizon]
        with torch.no_grad():
            next_z = m.encode({k: v[1:] for k, v in obs.items()})  # (H, B, L)
            td_target = self._td_target(next_z, reward)  # (H, B)
        z = m.encode({k: v[0] for k, v in obs.items()})
        zs = [z]
        consistency = 0.0
        for t in range(horizon):
            z = m.next(z, action[t])
            consistency = consistency + rho[t] * F.mse_loss(z, next_z[t])
            zs.append(z)
        zs = torch.stack(zs)  # (H+1, B, L)
        q_logits = m.q(zs[:-1], action)  # (num_q, H, B, bins)
        r_logits = m.reward(zs[:-1], action)  # (H, B, bins)
        reward_loss = (soft_ce(r_logits, reward, cfg.vmin, cfg.vmax).mean(-1) * rho).sum() / horizon
        value_loss = (soft_ce(q_logits, td_target.unsqueeze(0), cfg.vmin, cfg.vmax).mean(-1) * rho).sum()
        value_loss = value_loss / (horizon * m.num_q)
        consistency = consistency / horizon
        total = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        return total, zs, {"consistency_loss": consistency.detach(), "reward_loss": reward_loss.detach(),
                           "value_loss": value_loss.detach()}

    def _pi_forward(self, zs: torch.Tensor):
        """Policy samples on the (detached) latents and their Q: mean of 2 random heads, Q weights fixed."""
        action, _, log_prob = self.model.pi(zs)
        q = self.model.q_values(zs, action, detach=True)
        pair = torch.randperm(q.shape[0], device=q.device)[:2]
        return action, log_prob, q[pair].mean(0)  # (H+1, B)

    # ---- persistence ----
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optim": self.optim.state_dict(),
                "pi_optim": self.pi_optim.state_dict(), "scale": self.scale.cpu(),
                "prev_mean": self.prev_mean.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.scale.copy_(state["scale"])
        self.prev_mean.copy_(state["prev_mean"])
