"""What the safety filter enforces (`SafetyLimits`: the robot's joint limits and the end-effector workspace box)
and how it behaves (`SafetyConfig`: margins, control period, timeouts, ramp). Both round-trip through JSON-able
dicts (docs/formats.md, "Safety limits"), so a policy bundle carries the limits and the node's parameters carry
the config."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hardware.kinematics import ChainError, KinematicChain

if TYPE_CHECKING:  # only for the type hint: hardware/ must not pull in sim/ at run time
    from sim.robot import RobotConfig

LIMITS_FORMAT = "robot_rl.safety_limits"
LIMITS_VERSION = 1


class SafetyConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box (world frame, m) the tool point of `chain` must stay in."""
    lower: np.ndarray          # (3,)
    upper: np.ndarray          # (3,)
    chain: KinematicChain

    def violation(self, q: np.ndarray) -> np.ndarray:
        """Distance (m) of the tool point outside the box, 0 inside; batched over leading axes of q."""
        p = self.chain.tip_position(q)
        outside = np.maximum(self.lower - p, 0.0) + np.maximum(p - self.upper, 0.0)
        return np.linalg.norm(outside, axis=-1)


@dataclass(frozen=True)
class SafetyLimits:
    joint_names: tuple[str, ...]
    lower: np.ndarray          # (n,) rad, hard position limits
    upper: np.ndarray          # (n,) rad
    velocity: np.ndarray       # (n,) rad/s, > 0
    acceleration: np.ndarray   # (n,) rad/s^2, > 0
    workspace: Workspace | None = None

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("lower", "upper", "velocity", "acceleration"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (n,) or not np.all(np.isfinite(value)):
                raise SafetyConfigError(f"safety limits: {name!r} must be {n} finite numbers (one per joint "
                                        f"{list(self.joint_names)}), got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        if not np.all(self.lower < self.upper):
            raise SafetyConfigError(f"safety limits: every lower position limit must be below the upper one, got "
                                    f"lower={self.lower.tolist()} upper={self.upper.tolist()}")
        for name in ("velocity", "acceleration"):
            if not np.all(getattr(self, name) > 0):
                raise SafetyConfigError(f"safety limits: {name!r} limits must be > 0, got {getattr(self, name).tolist()}")
        if self.workspace is not None and self.workspace.chain.joint_names != tuple(self.joint_names):
            raise SafetyConfigError(f"safety limits: workspace chain joints {list(self.workspace.chain.joint_names)} "
                                    f"differ from the limited joints {list(self.joint_names)}")

    @property
    def n(self) -> int:
        return len(self.joint_names)

    def to_dict(self) -> dict[str, Any]:
        ws = None
        if self.workspace is not None:
            ws = {"lower": self.workspace.lower.tolist(), "upper": self.workspace.upper.tolist(),
                  "chain": self.workspace.chain.to_dict()}
        return {"format": LIMITS_FORMAT, "version": LIMITS_VERSION, "joint_names": list(self.joint_names),
                "position_lower": self.lower.tolist(), "position_upper": self.upper.tolist(),
                "velocity": self.velocity.tolist(), "acceleration": self.acceleration.tolist(), "workspace": ws}

    @classmethod
    def from_dict(cls, data: Any, source: str = "safety limits") -> "SafetyLimits":
        """From the dict `to_dict` writes (e.g. `bundle.json["safety"]`); errors name `source` and the field."""
        if not isinstance(data, dict):
            raise SafetyConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        if data.get("format") != LIMITS_FORMAT or data.get("version") != LIMITS_VERSION:
            raise SafetyConfigError(f"{source}: expected format {LIMITS_FORMAT!r} version {LIMITS_VERSION}, got "
                                    f"{data.get('format')!r} version {data.get('version')!r}")
        missing = [k for k in ("joint_names", "position_lower", "position_upper", "velocity", "acceleration")
                   if k not in data]
        if missing:
            raise SafetyConfigError(f"{source}: missing field(s) {missing}")
        names = data["joint_names"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise SafetyConfigError(f"{source}: field 'joint_names' must be a non-empty list of strings")
        arrays = {}
        for field in ("position_lower", "position_upper", "velocity", "acceleration"):
            try:
                arrays[field] = np.asarray(data[field], dtype=float)
            except (TypeError, ValueError) as err:
                raise SafetyConfigError(f"{source}: field {field!r} must be a list of numbers ({err})") from None
            if arrays[field].shape != (len(names),):
                raise SafetyConfigError(f"{source}: field {field!r} must have {len(names)} entries (one per joint), "
                                        f"got {data[field]!r}")
        workspace = None
        if data.get("workspace") is not None:
            workspace = _workspace_from_dict(data["workspace"], f"{source}: workspace")
        try:
            return cls(joint_names=tuple(names), lower=arrays["position_lower"], upper=arrays["position_upper"],
                       velocity=arrays["velocity"], acceleration=arrays["acceleration"], workspace=workspace)
        except SafetyConfigError as err:
            raise SafetyConfigError(f"{source}: {err}") from None


def limits_from_robot(robot: "RobotConfig", workspace_lower: Sequence[float] | None = None,
                      workspace_upper: Sequence[float] | None = None,
                      chain: dict[str, Any] | KinematicChain | None = None) -> SafetyLimits:
    """Limits of a `sim.robot.RobotConfig`'s arm joints; a workspace box needs the chain
    (`sim.kinematic_chain.chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)`)."""
    workspace = None
    if workspace_lower is not None or workspace_upper is not None or chain is not None:
        if workspace_lower is None or workspace_upper is None or chain is None:
            raise SafetyConfigError(f"robot {robot.name!r}: a workspace needs workspace_lower, workspace_upper "
                                    f"and chain together")
        workspace = _workspace_from_dict({"lower": list(workspace_lower), "upper": list(workspace_upper),
                                          "chain": chain}, f"robot {robot.name!r} workspace")
    return SafetyLimits(joint_names=tuple(robot.arm_joints), lower=np.asarray(robot.lower, dtype=float),
                        upper=np.asarray(robot.upper, dtype=float),
                        velocity=np.asarray(robot.velocity_limits, dtype=float),
                        acceleration=np.asarray(robot.acceleration_limits, dtype=float), workspace=workspace)


def _workspace_from_dict(raw: Any, source: str) -> Workspace:
    if not isinstance(raw, dict):
        raise SafetyConfigError(f"{source}: expected a mapping with lower, upper, chain")
    box = {}
    for field in ("lower", "upper"):
        try:
            box[field] = np.asarray(raw.get(field), dtype=float)
        except (TypeError, ValueError):
            box[field] = np.empty(0)
        if box[field].shape != (3,) or not np.all(np.isfinite(box[field])):
            raise SafetyConfigError(f"{source}.{field}: expected 3 finite numbers (x, y, z in m), got {raw.get(field)!r}")
    if not np.all(box["lower"] < box["upper"]):
        raise SafetyConfigError(f"{source}: lower {box['lower'].tolist()} must be below upper {box['upper'].tolist()}")
    chain = raw.get("chain")
    if not isinstance(chain, KinematicChain):
        try:
            chain = KinematicChain.from_dict(chain, f"{source}.chain")
        except ChainError as err:
            raise SafetyConfigError(str(err)) from None
    return Workspace(lower=box["lower"], upper=box["upper"], chain=chain)


@dataclass(frozen=True)
class SafetyConfig:
    control_period_s: float                 # the node's control period: the most elapsed time one step may use
    position_margin: float = 0.05           # rad kept free inside each hard position limit
    max_step_from_measured: float = 0.2     # rad: |command - measured position| per joint. Commands also keep
    #                                         room to brake inside this band, which caps speed at about
    #                                         sqrt(2 a_max (band - tracking lag)): 1.5 rad/s on Panda joint 2 at 0.05 lag
    observation_timeout_s: float = 0.1      # older joint states -> hold (also bounds how far apart the robot's
    #                                         and this host's clocks may be: docs/formats.md, "Clocks")
    future_stamp_tolerance_s: float = 0.01  # stamps this far ahead of `now` mean a clock problem -> hold
    ramp_time_s: float = 2.0                # velocity limit scales 0 -> 1 over this time after start/reset
    workspace_resolution: float = 4e-3      # fraction of a step the workspace search resolves (1/256: 2 FK batches)

    def __post_init__(self) -> None:
        rules = {"control_period_s": lambda v: v > 0, "position_margin": lambda v: v >= 0,
                 "max_step_from_measured": lambda v: v > 0, "observation_timeout_s": lambda v: v > 0,
                 "future_stamp_tolerance_s": lambda v: v >= 0, "ramp_time_s": lambda v: v >= 0,
                 "workspace_resolution": lambda v: 0 < v < 1}
        for name, ok in rules.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or not ok(value):
                raise SafetyConfigError(f"safety config: {name!r} has invalid value {value!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "safety config") -> "SafetyConfig":
        if not isinstance(data, dict):
            raise SafetyConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SafetyConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        if "control_period_s" not in data:
            raise SafetyConfigError(f"{source}: missing field 'control_period_s'")
        try:
            return cls(**data)
        except SafetyConfigError as err:
            raise SafetyConfigError(f"{source}: {err}") from None
