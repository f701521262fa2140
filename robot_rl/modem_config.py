"""Typed settings of MoDem and MoDem-V2 (robot_rl/modem.py), light to import: the train command's Config
embeds them as `modem.*` keys (`robot-rl train demos=demos/pick modem.bc_steps=2000 ...`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModemConfig:
    episodes: int = 0                  # demonstrations used (the first N in the folder; 0: all)
    bc_steps: int = 2000               # phase 1: behaviour-cloning gradient steps
    bc_lr: float = 3e-4
    seed_noise: float = 0.05           # phase 2: std of the truncated-normal noise on the cloned policy (MoDem)
    seed_steps: int = 5000             # phase 2's length when the run's seed_steps is 0 (MoDem's default)
    demo_ratio_start: float = 0.75     # phase 3: fraction of each batch drawn from the demos ...
    demo_ratio_end: float = 0.25       # ... annealed linearly to this ...
    demo_ratio_steps: int = 100_000    # ... over this many environment steps after seeding
    bc_coef: float = 10.0              # BC term on each batch's demo share in the policy loss (0: MoDem as published)
    handover_steps: int = 0            # MoDem-V2 agency handover (0: the planner acts from the start)


def check_config(cfg: ModemConfig) -> None:
    for name in ("demo_ratio_start", "demo_ratio_end"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"modem.{name}={getattr(cfg, name)}; expected a fraction in [0, 1]")
    for name in ("bc_steps", "demo_ratio_steps", "handover_steps", "episodes", "seed_steps"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"modem.{name}={getattr(cfg, name)}; expected >= 0")
    if cfg.bc_coef < 0:
        raise ValueError(f"modem.bc_coef={cfg.bc_coef}; expected >= 0")
    if cfg.seed_noise < 0:
        raise ValueError(f"modem.seed_noise={cfg.seed_noise}; expected >= 0")
