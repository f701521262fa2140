"""Hidden arms for testing identification: robot parameters files drawn from seeds over ranges.

A fit is only worth its numbers on arms it was not tuned on, so tests and `benchmarks/sysid_heldout.py` draw
arms here instead of using one hand-picked twin. Every joint draws its own damping, armature, friction loss and
position gain (as a multiple of the description's kp) independently; the arm draws one payload mass, one action
latency (whole control steps) and one joint-position noise. The result is a sim/params.py file the simulated
arm (calibration.simulated_arm, sim_robot_node's params_file) plays and the fit never sees.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

JOINT_KINDS = ("damping", "armature", "frictionloss", "kp")


@dataclass(frozen=True)
class ArmRanges:
    """Uniform ranges (low, high) of the hidden parameters; kp as a factor of the description's value."""
    damping: tuple[float, float] = (0.5, 3.0)              # N m s / rad
    armature: tuple[float, float] = (0.05, 0.4)            # kg m^2
    frictionloss: tuple[float, float] = (0.05, 1.0)        # N m
    kp_factor: tuple[float, float] = (0.5, 1.2)
    payload_mass: tuple[float, float] = (0.2, 1.5)         # kg
    action_latency: tuple[int, int] = (1, 2)               # control steps, both ends included
    obs_noise: tuple[float, float] = (0.2e-3, 1.5e-3)      # rad, std of joint-position noise

    def __post_init__(self):
        for name in ("damping", "armature", "frictionloss", "kp_factor", "payload_mass", "action_latency",
                     "obs_noise"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"ArmRanges.{name}: expected 0 <= low <= high, got ({lo}, {hi})")


@dataclass(frozen=True)
class HiddenArm:
    seed: int
    values: dict[str, float] = field(default_factory=dict)    # named parameter -> hidden value

    def params(self, robot: str):
        from sim.params import Parameter, RobotParams

        return RobotParams(robot, {n: Parameter(v) for n, v in self.values.items()}, f"<hidden arm seed {self.seed}>")


def description_kp(robot) -> dict[str, float]:
    """The description's position gain of each arm joint (what kp_factor multiplies)."""
    from sim.backends.mujoco_backend import MuJoCoBackend

    backend = MuJoCoBackend(robot)
    try:
        return {j: backend.get_parameter(f"kp/{j}") for j in robot.arm_joints}
    finally:
        backend.close()


def draw(seed: int, robot, ranges: ArmRanges = ArmRanges(), kp: dict[str, float] | None = None) -> HiddenArm:
    """One hidden arm: per-joint values drawn independently, then the arm-wide ones."""
    rng = np.random.default_rng(seed)
    kp = kp if kp is not None else description_kp(robot)
    values: dict[str, float] = {}
    for joint in robot.arm_joints:
        values[f"damping/{joint}"] = float(rng.uniform(*ranges.damping))
        values[f"armature/{joint}"] = float(rng.uniform(*ranges.armature))
        values[f"frictionloss/{joint}"] = float(rng.uniform(*ranges.frictionloss))
        values[f"kp/{joint}"] = float(kp[joint] * rng.uniform(*ranges.kp_factor))
    values["payload_mass"] = float(rng.uniform(*ranges.payload_mass))
    values["action_latency"] = float(rng.integers(ranges.action_latency[0], ranges.action_latency[1] + 1))
    values["obs_noise"] = float(rng.uniform(*ranges.obs_noise))
    return HiddenArm(seed, values)


def write(path: str | Path, arm: HiddenArm, robot_name: str) -> Path:
    """The arm as a robot parameters file (sim/params.py format), written atomically."""
    from sim.params import save_params

    path = Path(path)
    save_params(arm.params(robot_name), path)
    return path
