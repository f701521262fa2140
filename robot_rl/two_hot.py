"""Symlog transform and two-hot discrete regression (TD-MPC2 predicts reward and value as a distribution
over `num_bins` bins spaced evenly in symlog space on [vmin, vmax], trained with cross-entropy)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    # exp(|x|) - 1 rather than expm1: the ONNX exporters have no expm1 (absolute error stays ~1e-7)
    return torch.sign(x) * (torch.exp(torch.abs(x)) - 1.0)


def bin_centers(num_bins: int, vmin: float, vmax: float, device: torch.device | None = None) -> torch.Tensor:
    return torch.linspace(vmin, vmax, num_bins, device=device)


def two_hot(x: torch.Tensor, num_bins: int, vmin: float, vmax: float) -> torch.Tensor:
    """Scalars `x` (any shape) -> soft two-hot targets (*x.shape, num_bins) over symlog bins."""
    bin_size = (vmax - vmin) / (num_bins - 1)
    pos = (symlog(x).clamp(vmin, vmax) - vmin) / bin_size
    low = pos.floor().clamp(max=num_bins - 2)  # the top value falls in the last interval with weight 1 on its upper bin
    frac = (pos - low).unsqueeze(-1)
    low = low.long().unsqueeze(-1)
    target = torch.zeros(*x.shape, num_bins, device=x.device, dtype=x.dtype)
    target.scatter_(-1, low, 1.0 - frac)
    target.scatter_add_(-1, low + 1, frac)
    return target


def two_hot_inv(logits: torch.Tensor, vmin: float, vmax: float) -> torch.Tensor:
    """Logits (..., num_bins) -> the scalar expectation (...), back in the original (symexp) space."""
    centers = bin_centers(logits.shape[-1], vmin, vmax, logits.device).to(logits.dtype)
    return symexp(torch.softmax(logits, dim=-1) @ centers)


def soft_ce(logits: torch.Tensor, target: torch.Tensor, vmin: float, vmax: float) -> torch.Tensor:
    """Cross-entropy between predicted logits (..., num_bins) and two-hot encoded scalars (...)."""
    return -(two_hot(target, logits.shape[-1], vmin, vmax) * F.log_softmax(logits, dim=-1)).sum(-1)
