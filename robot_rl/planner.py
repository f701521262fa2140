"""MPPI planning in the world model's latent space (TD-MPC2), written as a pure function of explicit
tensors so the same code runs in training, in evaluation, and exported to ONNX:

    action, next_mean, std = plan(model, obs, prev_mean, is_first, noise, policy_noise, select_noise, cfg, discount)

- `prev_mean` (B, H, A) is the previous step's plan; it is shifted by one step as a warm start unless
  `is_first` (B,) marks an episode start, in which case the plan starts from zero.
- All randomness is an input (`sample_noise` draws it): `noise` (I, B, S, H+1, A) standard normal, where
  [:, :, P:, :H] perturbs the sampled action sequences and [..., H, :] samples the policy at the last latent;
  `policy_noise` (B, P, H, A) standard normal for the policy-prior trajectories; `select_noise` (B, K) Gumbel
  for sampling the executed elite (zeros: take the best elite).
- Shapes are fixed by the config and the action dimension; no Python branch depends on tensor values, loops
  have static lengths. An action of >= 20 dimensions gets 2 more MPPI iterations than `cfg.iterations`, the
  official TD-MPC2 heuristic for large action spaces (`solve_iterations`).
- Trajectory value: sum of discounted predicted rewards + discounted value of the last latent, where the
  value is the mean over ALL Q heads minus `value_std_coef` x their std (see PlannerConfig).
- `center_std > 0` (MoDem-V2 exploration centering): the sampling mean starts at the policy prior's
  deterministic plan instead of the warm start, and the std is capped at `center_std` (a config branch only).
"""
from __future__ import annotations

import torch

from robot_rl.agent_config import PlannerConfig
from robot_rl.two_hot import two_hot_inv
from robot_rl.world_model import WorldModel


# TD-MPC2 (official implementation) plans action spaces of at least this many dimensions with
# LARGE_ACTION_EXTRA_ITERATIONS more iterations than configured (humanoids, dexterous hands).
LARGE_ACTION_DIM = 20
LARGE_ACTION_EXTRA_ITERATIONS = 2


def solve_iterations(cfg: PlannerConfig, action_dim: int) -> int:
    """The number of MPPI iterations one solve runs for an `action_dim`-dimensional action."""
    return cfg.iterations + (LARGE_ACTION_EXTRA_ITERATIONS if action_dim >= LARGE_ACTION_DIM else 0)


def sample_noise(cfg: PlannerConfig, batch: int, action_dim: int, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw (noise, policy_noise, select_noise) for one `plan` call."""
    i, s, h, p, k = solve_iterations(cfg, action_dim), cfg.samples, cfg.horizon, cfg.policy_samples, cfg.elites
    noise = torch.randn(i, batch, s, h + 1, action_dim, device=device, generator=generator)
    policy_noise = torch.randn(batch, p, h, action_dim, device=device, generator=generator)
    uniform = torch.rand(batch, k, device=device, generator=generator).clamp(1e-10, 1 - 1e-7)
    return noise, policy_noise, -torch.log(-torch.log(uniform))


def trajectory_value(model: WorldModel, z: torch.Tensor, actions: torch.Tensor, terminal_noise: torch.Tensor,
                     discount: float, value_std_coef: float) -> torch.Tensor:
    """z (B, S, L), actions (B, S, H, A), terminal_noise (B, S, A) -> value (B, S).
    Episodic models (cfg.episodic) stop counting at a predicted termination, as TD-MPC2 does: once the
    termination head says > 0.5 after a step, later rewards and the final value weigh nothing."""
    vmin, vmax = model.cfg.vmin, model.cfg.vmax
    episodic = model.cfg.episodic  # a config branch: the exported graph of a non-episodic model is unchanged
    ret = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
    alive = torch.ones_like(ret)
    weight = 1.0
    for t in range(actions.shape[2]):
        za = torch.cat([z, actions[:, :, t]], dim=-1)
        reward = two_hot_inv(model.reward_head(za), vmin, vmax)
        ret = ret + weight * (reward * alive if episodic else reward)
        z = model.dynamics(za)
        if episodic:
            alive = alive * (model.termination(z) <= 0.0).to(z.dtype)  # sigmoid(logit) > 0.5 <=> logit > 0
        weight *= discount
    a_last, _, _ = model.pi(z, terminal_noise)
    q = model.q_values(z, a_last, dropout=False)  # (num_q, B, S)
    value = q.mean(0)
    if value_std_coef != 0.0 and q.shape[0] > 1:
        value = value - value_std_coef * q.std(0)
    return ret + weight * (value * alive if episodic else value)


def plan(model: WorldModel, obs: dict[str, torch.Tensor], prev_mean: torch.Tensor, is_first: torch.Tensor,
         noise: torch.Tensor, policy_noise: torch.Tensor, select_noise: torch.Tensor, cfg: PlannerConfig,
         discount: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MPPI solve. Returns (action (B, A) in [-1, 1], next_mean (B, H, A) to pass back next step,
    std (B, A) of the first action, which training adds as exploration noise)."""
    h, s, p, k = cfg.horizon, cfg.samples, cfg.policy_samples, cfg.elites
    z = model.encode(obs)
    b, latent = z.shape
    a_dim = prev_mean.shape[-1]
    iterations = solve_iterations(cfg, a_dim)
    if noise.shape[0] != iterations:
        raise ValueError(f"noise has {noise.shape[0]} iterations; a {a_dim}-dimensional action is planned with "
                         f"{iterations} (solve_iterations; draw it with sample_noise)")

    # Policy-prior trajectories: fixed for this step, they compete with the sampled ones in every iteration.
    pi_actions = []
    zp = z[:, None].expand(b, p, latent)
    for t in range(h):
        a, _, _ = model.pi(zp, policy_noise[:, :, t])
        pi_actions.append(a)
        if t < h - 1:
            zp = model.next(zp, a)
    pi_actions = torch.stack(pi_actions, dim=2)  # (B, P, H, A)

    shifted = torch.cat([prev_mean[:, 1:], torch.zeros_like(prev_mean[:, :1])], dim=1)
    mean = torch.where(is_first.reshape(b, 1, 1).bool(), torch.zeros_like(shifted), shifted)
    max_std = cfg.max_std
    if cfg.center_std > 0:
        centre, zc = [], z
        for t in range(h):
            _, a, _ = model.pi(zc, torch.zeros_like(zc[..., :a_dim]))  # deterministic action; no hidden RNG
            centre.append(a)
            if t < h - 1:
                zc = model.next(zc, a)
        mean, max_std = torch.stack(centre, dim=1), cfg.center_std
    std = torch.full_like(mean, max_std)
    zs = z[:, None].expand(b, s, latent)
    score = elite_actions = None
    for i in range(iterations):
        sampled = (mean[:, None] + std[:, None] * noise[i, :, p:, :h]).clamp(-1.0, 1.0)
        actions = torch.cat([pi_actions, sampled], dim=1)  # (B, S, H, A)
        value = trajectory_value(model, zs, actions, noise[i, :, :, h], discount, cfg.value_std_coef)
        value = torch.nan_to_num(value, nan=0.0)
        elite_value, elite_idx = torch.topk(value, k, dim=1)  # (B, K)
        elite_actions = torch.gather(actions, 1, elite_idx[:, :, None, None].expand(b, k, h, a_dim))
        score = torch.softmax(cfg.temperature * elite_value, dim=1)  # exp(T (v - max)), normalised
        w = score[:, :, None, None]
        mean = (w * elite_actions).sum(1)
        std = ((w * (elite_actions - mean[:, None]).pow(2)).sum(1)).sqrt().clamp(min(cfg.min_std, max_std), max_std)

    choice = torch.argmax(torch.log(score + 1e-20) + select_noise, dim=1)  # Gumbel-max: sample an elite by score
    first = elite_actions[:, :, 0]  # (B, K, A)
    action = torch.gather(first, 1, choice[:, None, None].expand(b, 1, a_dim))[:, 0]
    return action.clamp(-1.0, 1.0), mean, std[:, 0]
