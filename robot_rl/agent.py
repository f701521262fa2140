"""The TD-MPC2 agent: acting (MPPI planning or the policy prior) and one gradient update on a batch of
sub-trajectories (joint-embedding consistency, reward and TD value losses; policy loss with percentile
value scaling and an entropy bonus; Polyak-averaged target Q)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.agent_config import AgentConfig, check_planner, heuristic_discount
from robot_rl.layers import random_shift
from robot_rl.overrides import ConfigError
from robot_rl.planner import plan, sample_noise
from robot_rl.replay_buffer import Batch
from robot_rl.two_hot import soft_ce
from robot_rl.world_model import ObsSpec, PolicySample, WorldModel

# The policy's entropy bonus per sample (AgentConfig.entropy): (...) from a PolicySample with actions (..., A).
ENTROPY_BONUS: dict[str, Callable[[PolicySample], torch.Tensor]] = {
    # TD-MPC2's `scaled_entropy`: -log-prob of the pre-tanh Gaussian sample, times the action dimension (the
    # official writes it as -log_prob_squashed * (A * log_prob_gaussian) / (log_prob_squashed + 1e-8))
    "scaled_gaussian": lambda s: -s.gaussian_log_prob * s.action.shape[-1],
    # -log-density of the tanh-squashed action, unscaled
    "squashed": lambda s: -s.log_prob,
}


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
        if cfg.entropy not in ENTROPY_BONUS:
            raise ConfigError(f"entropy={cfg.entropy!r}; expected one of {list(ENTROPY_BONUS)}")
        self._entropy = ENTROPY_BONUS[cfg.entropy]
        heads = [m.dynamics, m.reward_head, m.qs] + ([m.termination_head] if cfg.episodic else [])
        self.optim = torch.optim.Adam([
            {"params": m.encoder.parameters(), "lr": cfg.lr * cfg.enc_lr_scale},
            {"params": [p for head in heads for p in head.parameters()]},
        ], lr=cfg.lr, fused=True)  # fused: one kernel for all parameters instead of ~10 ops per tensor
        self._model_params = [p for g in self.optim.param_groups for p in g["params"]]
        self.pi_optim = torch.optim.Adam(m.pi_head.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
        self.scale = torch.ones((), device=self.device)  # running 5th-95th percentile range of Q
        self.prev_mean = torch.zeros(1, cfg.planner.horizon, action_dim, device=self.device)
        # Optional extra policy loss f(latents (H+1, B, L), actions (H, B, A)) -> scalar, added to the policy
        # objective (MoDem's behaviour-cloning term on the demo share of a batch, robot_rl/modem.py).
        self.pi_regulariser = None
        self._rho = cfg.rho ** torch.arange(cfg.horizon + 1, dtype=torch.float32, device=self.device)
        self._scale_quantiles = torch.tensor([0.05, 0.95], device=self.device)
        self.model.eval()
        if self.device.type == "cuda":  # TF32 tensor-core matmuls (10 mantissa bits; TD-MPC2 trains in them)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # On CUDA the compiled losses replay as CUDA graphs (mode="reduce-overhead"): one launch per function.
        self._cuda_graphs = compile and self.device.type == "cuda"
        if compile:  # the loss computations; optimiser steps stay eager
            # (inductor's pattern matcher fails on this graph in torch 2.13: "slice_shape" missing)
            options = {"pattern_matcher": False, "triton.cudagraphs": self._cuda_graphs}
            self._model_loss = torch.compile(self._model_loss, options=options)
            self._pi_forward = torch.compile(self._pi_forward, options=options)
        # Planning too: inductor fuses its LayerNorm/Mish/softmax chains (2.6x less CPU time per call for 16
        # environments at the CPU preset, 1 thread). Shapes are fixed, so batched callers pad to one batch size.
        self.compiled = compile
        self._plan = torch.compile(plan, dynamic=False) if compile else plan

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
        action, next_mean, std = self._plan(self.model, obs, prev_mean, first, *noise, pcfg, self.discount)
        if not eval_mode:
            action = (action + std * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action, next_mean

    def act(self, obs: dict[str, np.ndarray], first: bool, eval_mode: bool = False) -> np.ndarray:
        """One environment's action (A,) in [-1, 1]; the agent keeps its warm start between calls."""
        action, self.prev_mean = self.act_batch(self.obs_tensors(obs), torch.tensor([first], device=self.device),
                                                self.prev_mean, eval_mode)
        return action[0].cpu().numpy()

    # ---- learning ----
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on `batch`. Returns the losses as detached 0-d tensors on the device: they leave it
        only when the caller converts them (e.g. when it logs)."""
        obs = batch.obs
        if "pixels" in obs and self.cfg.pixel_shift > 0:
            pix = obs["pixels"]
            obs = dict(obs, pixels=random_shift(pix.reshape(-1, *pix.shape[2:]), self.cfg.pixel_shift)
                       .reshape(pix.shape))
        terminated = batch.terminated if self.cfg.episodic else None  # None: no terminal states
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        self.model.train()
        try:
            info = self._update_step(obs, batch.action, batch.reward, terminated)
        finally:
            self.model.eval()
        return info

    def _q_pair(self) -> torch.Tensor | None:
        """Indices (on the device) of 2 random Q heads, or None (every head) when there are no more than 2."""
        if self.model.num_q <= 2:
            return None
        return torch.rand(self.model.num_q, device=self.device).argsort()[:2]

    def _td_target(self, next_z: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor | None) -> torch.Tensor:
        """reward + discount x min over 2 random target heads, not bootstrapped past a terminal state."""
        action, _, _ = self.model.pi(next_z)
        q = self.model.q_values(next_z, action, target=True, heads=self._q_pair())  # (2, H, B)
        bootstrap = self.discount * q.min(0).values
        return reward + (bootstrap if terminated is None else (1.0 - terminated) * bootstrap)

    def _update_step(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor,
                     terminated: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cfg, m = self.cfg, self.model
        total, zs, info = self._model_loss(obs, action, reward, terminated)
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self._model_params, cfg.grad_clip_norm, foreach=True)
        self.optim.step()

        zs = zs.detach()
        entropy, q = self._pi_forward(zs)
        with torch.no_grad():  # running 5th-95th percentile range of Q, at least 1
            lo, hi = torch.quantile(q[0], self._scale_quantiles)
            self.scale.lerp_(torch.clamp(hi - lo, min=1.0), cfg.tau)
        rho = self._rho[: zs.shape[0]]
        pi_loss = (-(cfg.entropy_coef * entropy + q / self.scale).mean(-1) * rho).mean()
        if self.pi_regulariser is not None:
            pi_loss = pi_loss + self.pi_regulariser(zs, action)
        self.pi_optim.zero_grad(set_to_none=True)
        pi_loss.backward()
        torch.nn.utils.clip_grad_norm_(m.pi_head.parameters(), cfg.grad_clip_norm, foreach=True)
        self.pi_optim.step()
        m.update_target(cfg.tau)
        # clones: under CUDA graphs the compiled functions' outputs are overwritten by their next replay
        return {**{k: v.clone() for k, v in info.items()}, "total_loss": total.detach().clone(),
                "grad_norm": grad_norm.detach(), "pi_loss": pi_loss.detach(), "entropy": entropy.detach().mean(),
                "pi_scale": self.scale.clone()}

    def _model_loss(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor,
                    terminated: torch.Tensor | None):
        """World-model loss over the horizon: consistency, reward and TD value weighted by rho^t (and, for
        episodic tasks, the termination BCE)."""
        cfg, m = self.cfg, self.model
        horizon = action.shape[0]
        rho = self._rho[:horizon]
        with torch.no_grad():
            next_z = m.encode({k: v[1:] for k, v in obs.items()})  # (H, B, L)
            td_target = self._td_target(next_z, reward, terminated)  # (H, B)
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
        info = {"consistency_loss": consistency.detach(), "reward_loss": reward_loss.detach(),
                "value_loss": value_loss.detach()}
        if cfg.episodic:  # does the step into latent t+1 end the episode (TD-MPC2: on the rolled-out latents)
            logits = m.termination(zs[1:])
            termination_loss = F.binary_cross_entropy_with_logits(
                logits, terminated if terminated is not None else torch.zeros_like(logits))
            total = total + cfg.termination_coef * termination_loss
            info["termination_loss"] = termination_loss.detach()
        return total, zs, info

    def _pi_forward(self, zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy samples on the (detached) latents: their entropy bonus (H+1, B) and Q (H+1, B), the mean of
        2 random heads with the Q weights fixed."""
        sample = self.model.pi_sample(zs)
        q = self.model.q_values(zs, sample.action, detach=True, heads=self._q_pair())
        return self._entropy(sample), q.mean(0)

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
