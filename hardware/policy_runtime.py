"""Running a policy bundle on the robot computer with onnxruntime alone (never torch).

`open_bundle(folder, mode, seed)` checks the bundle (hardware/bundle.py) and returns what policy_node needs:
the observation/action mapping (hardware/policy_io.PolicyIO, built from bundle.json's layout, action space,
last-actions length and FK chain), the runtime, the control rate and the safety limits.

`PolicyRuntime.act(state, pixels, first)` -> normalised action (A,) in [-1, 1]:
- mode "policy": policy.onnx, the policy prior's deterministic action;
- mode "planner": planner.onnx, one MPPI solve. The runtime keeps the plan between calls (warm start) and
  passes `is_first` on an episode's first step (`first=True`, or after `reset()`), which makes the graph start
  from a zero plan. The sampling noise is drawn here with numpy from `seed`, with the distributions of
  robot_rl.planner.sample_noise: standard normal `noise` (I, 1, S, H+1, A) and `policy_noise` (1, P, H, A),
  Gumbel `select_noise` (1, K) = -log(-log(u)), u uniform clamped to [1e-10, 1 - 1e-7].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.bundle import Bundle, BundleError, load_bundle, open_session
from hardware.policy_io import PolicyIO
from hardware.safety_config import SafetyLimits

MODES = ("policy", "planner")


def planner_noise(rng: np.random.Generator, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """One solve's (noise, policy_noise, select_noise), as robot_rl.planner.sample_noise draws them."""
    uniform = np.clip(rng.random(shapes["select_noise"], dtype=np.float32), 1e-10, 1 - 1e-7)
    return {"noise": rng.standard_normal(shapes["noise"], dtype=np.float32),
            "policy_noise": rng.standard_normal(shapes["policy_noise"], dtype=np.float32),
            "select_noise": (-np.log(-np.log(uniform))).astype(np.float32)}


class PolicyRuntime:
    def __init__(self, bundle: Bundle, mode: str = "policy", seed: int = 0, threads: int = 1):
        if mode not in MODES:
            raise BundleError(f"mode={mode!r}: expected one of {MODES}")
        self.bundle, self.mode = bundle, mode
        self.session = open_session(bundle, mode, threads)
        self.inputs = {s.name: s for s in bundle.inputs[mode]}
        self.rng = np.random.default_rng(seed)
        self.plan: np.ndarray | None = None
        if mode == "planner":
            self.noise_shapes = {k: self.inputs[k].shape for k in ("noise", "policy_noise", "select_noise")}
            self.plan = np.zeros(self.inputs["prev_plan"].shape, np.float32)
        self.first = True

    def reset(self) -> None:
        """A new episode: the next call starts the planner from a zero plan."""
        self.first = True

    def feeds(self, state: np.ndarray | None, pixels: np.ndarray | None) -> dict[str, np.ndarray]:
        feeds = {}
        for key, value, dtype in (("state", state, np.float32), ("pixels", pixels, np.uint8)):
            if key not in self.bundle.obs_keys:
                continue
            spec = self.inputs[key]
            if value is None:
                raise BundleError(f"{self.bundle.folder}: the policy takes {key!r} {spec.shape[1:]}, got None")
            value = np.asarray(value)
            if key == "pixels" and value.dtype != np.uint8:
                raise BundleError(f"pixels: expected uint8 (0..255), got {value.dtype}")
            array = value.astype(dtype, copy=False).reshape(spec.shape) if value.size == np.prod(spec.shape) else None
            if array is None:
                raise BundleError(f"{key}: shape {value.shape}, the policy takes {spec.shape[1:]}")
            feeds[key] = array
        return feeds

    def act(self, state: np.ndarray | None = None, pixels: np.ndarray | None = None,
            first: bool = False) -> np.ndarray:
        """One control step; `first` marks an episode's first step. Returns the action (A,) float64."""
        feeds = self.feeds(state, pixels)
        first = first or self.first
        if self.mode == "policy":
            (action,) = self.session.run(["action"], feeds)
        else:
            feeds.update(prev_plan=self.plan, is_first=np.array([first]), **planner_noise(self.rng, self.noise_shapes))
            action, self.plan = self.session.run(["action", "next_plan"], feeds)
        self.first = False
        return np.asarray(action[0], dtype=np.float64)


@dataclass
class LoadedBundle:
    bundle: Bundle
    io: PolicyIO
    runtime: PolicyRuntime
    control_hz: float
    safety: SafetyLimits


def open_bundle(folder: str | Path, mode: str = "policy", seed: int = 0,
                joint_names: tuple[str, ...] | list[str] | None = None, threads: int = 1) -> LoadedBundle:
    """Load, check and start a bundle (BundleError / PolicyIOError name the file and field on bad input)."""
    if mode not in MODES:
        raise BundleError(f"mode={mode!r}: expected one of {MODES}")
    bundle = load_bundle(folder, joint_names, check_models=False)
    return LoadedBundle(bundle=bundle, io=bundle.policy_io(), runtime=PolicyRuntime(bundle, mode, seed, threads),
                        control_hz=bundle.control_hz, safety=bundle.safety)
