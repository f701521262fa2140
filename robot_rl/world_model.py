"""The TD-MPC2 implicit world model: per-modality encoders into a SimNorm latent, latent dynamics, reward
head, policy prior (tanh-squashed Gaussian) and an ensemble of Q heads (batched weights, no vmap) with a
Polyak-averaged target copy. Reward and Q heads output logits over symlog two-hot bins."""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn as nn

from robot_rl.agent_config import AgentConfig, model_dims
from robot_rl.layers import ConvTrunk, EnsembleMLP, NormedLinear, SimNorm, init_trunc_normal_, mlp, zero_output_layer
from robot_rl.two_hot import two_hot_inv

# Observation spec: modality name -> shape. "state" is a float vector (D,), "pixels" uint8 (C, H, W).
ObsSpec = dict[str, tuple[int, ...]]
MODALITIES = ("state", "pixels")


class PolicySample(NamedTuple):
    """A reparameterised sample of the tanh-squashed Gaussian policy prior."""
    action: torch.Tensor              # tanh(mean + eps * std), in [-1, 1]
    mean: torch.Tensor                # tanh(mean): the deterministic action
    log_prob: torch.Tensor            # log-density of `action` (with the tanh change of variables)
    gaussian_log_prob: torch.Tensor   # log-density of the pre-tanh Gaussian sample (what TD-MPC2's entropy uses)


class Encoder(nn.Module):
    """One trunk per modality (MLP for state, conv for pixels), concatenated and projected to the SimNorm
    latent. With state alone this is exactly TD-MPC2's state encoder."""

    def __init__(self, obs_spec: ObsSpec, cfg: AgentConfig):
        super().__init__()
        unknown = set(obs_spec) - set(MODALITIES)
        if unknown or not obs_spec:
            raise ValueError(f"observation keys {sorted(obs_spec)}; expected a non-empty subset of {MODALITIES}")
        dims = model_dims(cfg)
        self.keys = [k for k in MODALITIES if k in obs_spec]
        self.trunks = nn.ModuleDict()
        features = 0
        for key in self.keys:
            shape = tuple(obs_spec[key])
            if key == "state":
                if len(shape) != 1:
                    raise ValueError(f"state observation shape {shape}; expected (D,)")
                hidden = [dims.enc_dim] * max(dims.num_enc_layers - 1, 1)
                layers = [NormedLinear(i, o) for i, o in zip([shape[0], *hidden[:-1]], hidden)]
                self.trunks[key] = nn.Sequential(*layers)
                features += hidden[-1]
            else:
                if len(shape) != 3:
                    raise ValueError(f"pixels observation shape {shape}; expected (C, H, W)")
                trunk = ConvTrunk(shape, cfg.num_channels)
                self.trunks[key] = trunk
                features += trunk.out_dim
        self.head = NormedLinear(features, dims.latent_dim, act=SimNorm(cfg.simnorm_dim))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.trunks[k](obs[k]) for k in self.keys]
        return self.head(parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1))


class WorldModel(nn.Module):
    def __init__(self, cfg: AgentConfig, obs_spec: ObsSpec, action_dim: int):
        super().__init__()
        dims = model_dims(cfg)
        self.cfg = cfg
        self.action_dim = action_dim
        self.obs_spec = {k: tuple(v) for k, v in obs_spec.items()}
        latent, hidden = dims.latent_dim, [dims.mlp_dim, dims.mlp_dim]
        self.encoder = Encoder(obs_spec, cfg)
        self.dynamics = mlp(latent + action_dim, hidden, latent, out_act=SimNorm(cfg.simnorm_dim))
        self.reward_head = mlp(latent + action_dim, hidden, cfg.num_bins)
        self.pi_head = mlp(latent, hidden, 2 * action_dim)
        # episodic tasks (TD-MPC2's `episodic`): logit that the step into a latent ended the episode
        self.termination_head = mlp(latent, hidden, 1) if cfg.episodic else None
        self.qs = EnsembleMLP(dims.num_q, latent + action_dim, hidden, cfg.num_bins, dropout=cfg.dropout)
        init_trunc_normal_(self)
        zero_output_layer(self.reward_head)
        zero_output_layer(self.qs)
        self.target_qs = copy.deepcopy(self.qs).requires_grad_(False)
        self.log_std_min = cfg.log_std_min
        self.log_std_dif = cfg.log_std_max - cfg.log_std_min

    @property
    def num_q(self) -> int:
        return self.qs.num

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(obs)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, a], dim=-1))

    def reward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Reward logits (..., num_bins)."""
        return self.reward_head(torch.cat([z, a], dim=-1))

    def pi(self, z: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample the policy prior with standard-normal `eps` (drawn here when None).
        Returns (action, deterministic action tanh(mean), log-probability of action) with actions in [-1, 1]."""
        sample = self.pi_sample(z, eps)
        return sample.action, sample.mean, sample.log_prob

    def pi_sample(self, z: torch.Tensor, eps: torch.Tensor | None = None) -> PolicySample:
        mean, log_std = self.pi_head(z).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * self.log_std_dif * (torch.tanh(log_std) + 1)
        if eps is None:
            eps = torch.randn_like(mean)
        action = torch.tanh(mean + eps * log_std.exp())
        gaussian = (-0.5 * eps.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * eps.shape[-1]
        squashed = gaussian - torch.log(torch.relu(1 - action.pow(2)) + 1e-6).sum(-1)  # tanh change of variables
        return PolicySample(action, torch.tanh(mean), squashed, gaussian)

    def termination(self, z: torch.Tensor) -> torch.Tensor:
        """Termination logits (...) of latents (..., L); only for cfg.episodic models."""
        if self.termination_head is None:
            raise ValueError("termination: this world model is not episodic (AgentConfig.episodic=false)")
        return self.termination_head(z).squeeze(-1)

    def q(self, z: torch.Tensor, a: torch.Tensor, target: bool = False, detach: bool = False,
          dropout: bool | None = None, heads: torch.Tensor | None = None) -> torch.Tensor:
        """Q logits (num_q, ..., num_bins) of every head, or of the heads indexed by `heads` (k,) only."""
        ensemble = self.target_qs if target else self.qs
        return ensemble(torch.cat([z, a], dim=-1), detach=detach, dropout=False if target else dropout, members=heads)

    def q_values(self, z: torch.Tensor, a: torch.Tensor, **kwargs) -> torch.Tensor:
        """Decoded Q values (num_q or len(heads), ...); keywords as `q`."""
        return two_hot_inv(self.q(z, a, **kwargs), self.cfg.vmin, self.cfg.vmax)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        torch._foreach_lerp_(list(self.target_qs.parameters()), list(self.qs.parameters()), tau)
