"""Typed configuration of the TD-MPC2 agent: model sizes, optimisation and the MPPI planner.

Defaults follow the TD-MPC2 paper's hyperparameter table (Hansen, Su, Wang, ICLR 2024). `model_size`
picks one of the paper's presets; any of `enc_dim`, `mlp_dim`, `latent_dim`, `num_enc_layers`, `num_q`
set above 0 overrides the preset (e.g. a tiny model for CPU tests).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

# The paper's model-size presets (parameters in millions, single-task state input; as in the authors'
# release, the 1M model has 2 Q heads and the 317M model 8).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "1M": {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    "5M": {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    "19M": {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    "48M": {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    "317M": {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}


@dataclass
class PlannerConfig:
    """MPPI in latent space. Lower `samples`/`iterations`/`horizon` trade plan quality for speed;
    `plan=false` acts with the policy prior alone (fastest)."""
    plan: bool = True
    horizon: int = 3
    iterations: int = 6
    samples: int = 512
    policy_samples: int = 24      # of `samples`, trajectories proposed by the policy prior
    elites: int = 64
    temperature: float = 0.5
    min_std: float = 0.05
    max_std: float = 2.0
    # Value of a trajectory's last latent: mean over ALL Q heads minus value_std_coef * their std.
    # The paper averages 2 randomly chosen heads; all heads give the same expectation with less variance and
    # no randomness, so an exported planner is deterministic given its noise inputs. value_std_coef > 0 is
    # MoDem-V2's pessimistic value.
    value_std_coef: float = 0.0
    # MoDem-V2 exploration centering (robot_rl/modem.py): > 0 starts every solve from the policy prior's own
    # plan (its deterministic actions rolled through the dynamics) and samples around it with at most this std.
    center_std: float = 0.0


@dataclass
class AgentConfig:
    model_size: str = "5M"
    enc_dim: int = 0
    mlp_dim: int = 0
    latent_dim: int = 0
    num_enc_layers: int = 0
    num_q: int = 0
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    dropout: float = 0.01
    num_channels: int = 32
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    # optimisation
    batch_size: int = 256
    horizon: int = 3
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    grad_clip_norm: float = 20.0
    rho: float = 0.5
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    entropy_coef: float = 1e-4
    # The policy's entropy bonus (robot_rl/agent.py ENTROPY_BONUS): "scaled_gaussian" is TD-MPC2's
    # `scaled_entropy`, -log-prob of the pre-tanh Gaussian sample x the action dimension; "squashed" is
    # -log-prob of the tanh-squashed action, unscaled (this project's earlier form, ~7x weaker at 8 dims).
    entropy: Literal["scaled_gaussian", "squashed"] = "scaled_gaussian"
    # Episodic tasks (TD-MPC2's `episodic`): a termination head trained with BCE on Batch.terminated, and TD
    # targets that do not bootstrap past a terminal state. Off: every episode end is a truncation.
    episodic: bool = False
    termination_coef: float = 1.0
    tau: float = 0.01
    discount: float = 0.0          # 0: the paper's heuristic from the episode length
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    pixel_shift: int = 4           # random-shift augmentation of pixel observations during updates (0: off)
    planner: PlannerConfig = field(default_factory=PlannerConfig)


@dataclass(frozen=True)
class ModelDims:
    enc_dim: int
    mlp_dim: int
    latent_dim: int
    num_enc_layers: int
    num_q: int


def model_dims(cfg: AgentConfig) -> ModelDims:
    if cfg.model_size not in MODEL_SIZES:
        raise ValueError(f"model_size={cfg.model_size!r}; expected one of {list(MODEL_SIZES)}")
    dims = dict(MODEL_SIZES[cfg.model_size])
    for key in dims:
        value = getattr(cfg, key)
        if value > 0:
            dims[key] = value
    if dims["latent_dim"] % cfg.simnorm_dim:
        raise ValueError(f"latent_dim={dims['latent_dim']} must be a multiple of simnorm_dim={cfg.simnorm_dim}")
    return ModelDims(**dims)


def heuristic_discount(episode_length: int, cfg: AgentConfig) -> float:
    """The paper's discount from the episode length: (L/denom - 1)/(L/denom), clipped to [min, max]."""
    if cfg.discount > 0:
        return cfg.discount
    frac = episode_length / cfg.discount_denom
    return float(min(max((frac - 1) / frac, cfg.discount_min), cfg.discount_max)) if frac > 0 else cfg.discount_min


def check_planner(cfg: PlannerConfig) -> None:
    if not 0 <= cfg.policy_samples < cfg.samples:
        raise ValueError(f"planner.policy_samples={cfg.policy_samples}; expected 0 <= policy_samples < "
                         f"planner.samples={cfg.samples}")
    if not 0 < cfg.elites <= cfg.samples:
        raise ValueError(f"planner.elites={cfg.elites}; expected 0 < elites <= planner.samples={cfg.samples}")
    if cfg.horizon < 1 or cfg.iterations < 1:
        raise ValueError(f"planner.horizon={cfg.horizon}, planner.iterations={cfg.iterations}; expected >= 1")
    if not 0 <= cfg.center_std <= cfg.max_std:
        raise ValueError(f"planner.center_std={cfg.center_std}; expected 0 (off) <= center_std <= max_std")
    if not 0 < cfg.min_std <= cfg.max_std or not math.isfinite(cfg.max_std):
        raise ValueError(f"planner.min_std={cfg.min_std}, max_std={cfg.max_std}; expected 0 < min_std <= max_std")


def agent_config_of(obj: object) -> AgentConfig:
    """The AgentConfig fields of a config that extends it (e.g. the train command's Config)."""
    names = {f.name for f in dataclasses.fields(AgentConfig)}
    return AgentConfig(**{k: getattr(obj, k) for k in names})
