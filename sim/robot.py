"""A robot is a small config: its description file (MJCF, the single source of truth for both engines),
joint names, limits, gripper and end-effector site. A user's own arm plugs in with a YAML file of this
shape and its MJCF, without code changes; the Panda is the built-in default (sim/robots/panda.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROBOTS_DIR = Path(__file__).parent / "robots"


@dataclass(frozen=True)
class RobotConfig:
    name: str
    description: Path                     # MJCF file; PyBullet loads a URDF generated from it
    arm_joints: tuple[str, ...]
    gripper_joints: tuple[str, ...]       # finger joints (slide), driven together by one command
    ee_site: str                          # MJCF site at the tool centre point
    home_qpos: tuple[float, ...]
    position_limits: tuple[tuple[float, float], ...]   # from the description's joint ranges, rad
    velocity_limits: tuple[float, ...]    # rad/s (datasheet)
    acceleration_limits: tuple[float, ...]  # rad/s^2 (datasheet)
    gripper_max_width: float              # finger gap fully open, m
    max_joint_step: float                 # rad per control step at |action| = 1

    @property
    def n_arm(self) -> int:
        return len(self.arm_joints)

    @property
    def lower(self) -> np.ndarray:
        return np.array([lo for lo, _ in self.position_limits])

    @property
    def upper(self) -> np.ndarray:
        return np.array([hi for _, hi in self.position_limits])


class RobotConfigError(ValueError):
    pass


def load_robot(name_or_path: str | Path = "panda") -> RobotConfig:
    """Load `sim/robots/<name>.yaml` or a YAML file path; joint limits come from the MJCF description."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = ROBOTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in ROBOTS_DIR.glob("*.yaml"))
        raise RobotConfigError(f"{path}: robot config not found; built-in robots: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    required = ("name", "description", "arm_joints", "gripper_joints", "ee_site", "home_qpos",
                "velocity_limits", "acceleration_limits", "gripper_max_width", "max_joint_step")
    missing = [k for k in required if k not in raw]
    if missing:
        raise RobotConfigError(f"{path}: missing field(s) {missing}")
    description = (path.parent / raw["description"]).resolve()
    if not description.is_file():
        raise RobotConfigError(f"{path}: field 'description': file {description} not found")
    arm = tuple(raw["arm_joints"])
    for field in ("home_qpos", "velocity_limits", "acceleration_limits"):
        if len(raw[field]) != len(arm):
            raise RobotConfigError(f"{path}: field {field!r} has {len(raw[field])} entries, expected {len(arm)} "
                                   f"(one per arm joint)")
    limits = _joint_ranges(description, arm, path)
    return RobotConfig(
        name=str(raw["name"]), description=description, arm_joints=arm,
        gripper_joints=tuple(raw["gripper_joints"]), ee_site=str(raw["ee_site"]),
        home_qpos=tuple(float(v) for v in raw["home_qpos"]), position_limits=limits,
        velocity_limits=tuple(float(v) for v in raw["velocity_limits"]),
        acceleration_limits=tuple(float(v) for v in raw["acceleration_limits"]),
        gripper_max_width=float(raw["gripper_max_width"]), max_joint_step=float(raw["max_joint_step"]),
    )


def _joint_ranges(description: Path, joints: tuple[str, ...], config_path: Path) -> tuple[tuple[float, float], ...]:
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(description))
    ranges = []
    for name in joints:
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            raise RobotConfigError(f"{config_path}: arm joint {name!r} not in {description}")
        if not model.jnt_limited[jid]:
            raise RobotConfigError(f"{description}: joint {name!r} has no range; arm joints must be limited")
        lo, hi = model.jnt_range[jid]
        ranges.append((float(lo), float(hi)))
    return tuple(ranges)
