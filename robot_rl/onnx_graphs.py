"""Export-friendly torch modules around a trained WorldModel, one per ONNX graph in a policy bundle.

- `PolicyGraph`: observation -> the policy prior's deterministic action tanh(mean) (what `TDMPC2.act` returns
  with `plan=false` in eval mode).
- `PlannerGraph`: (observation, previous plan, episode-start flag, noise, policy noise, select noise) ->
  (action, next plan), calling `robot_rl.planner.plan` unchanged, so the exported planner is the training/eval
  planner: iterations and horizon unrolled at trace time (static loops), the Q ensemble as batched matmuls,
  the value of a trajectory's last latent = mean of ALL Q heads minus value_std_coef x their std.

Observations enter as separate inputs named after their modality ("state" float32 (B, D), "pixels" uint8
(B, C, H, W)) in `WorldModel.encoder.keys` order; the pixel scaling to [-0.5, 0.5] happens inside the graph.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from robot_rl.agent_config import PlannerConfig
from robot_rl.planner import plan
from robot_rl.world_model import WorldModel


class PolicyGraph(nn.Module):
    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model
        self.keys = list(model.encoder.keys)

    def forward(self, *obs: torch.Tensor) -> torch.Tensor:
        z = self.model.encode(dict(zip(self.keys, obs)))
        mean, _ = self.model.pi_head(z).chunk(2, dim=-1)
        return torch.tanh(mean)


class PlannerGraph(nn.Module):
    def __init__(self, model: WorldModel, cfg: PlannerConfig, discount: float):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.discount = float(discount)
        self.keys = list(model.encoder.keys)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.keys)
        obs = dict(zip(self.keys, inputs[:n]))
        prev_plan, is_first, noise, policy_noise, select_noise = inputs[n:]
        action, next_plan, _ = plan(self.model, obs, prev_plan, is_first, noise, policy_noise, select_noise,
                                    self.cfg, self.discount)
        return action, next_plan

