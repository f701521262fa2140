"""Forward kinematics of a serial arm in plain numpy, so the robot computer checks the end-effector workspace
without MuJoCo.

The chain is plain data (a JSON-able dict, see docs/formats.md "Safety limits"): per joint, the fixed transform
from the previous joint's moved frame to this joint's frame (`pos` xyz + `quat` wxyz), the joint `axis` in its
own frame, its `type` ("hinge" or "slide") and `ref` (the joint value at which the description's pose holds,
MuJoCo's qpos0); then the fixed transform from the last joint's frame to the tool point (`tip`).
`sim.kinematic_chain.chain_from_mjcf` extracts it from an MJCF. Hand-written because the only libraries that do
this (MuJoCo, pybullet, pinocchio) are not meant to be installed on the robot computer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CHAIN_FORMAT = "robot_rl.kinematic_chain"
CHAIN_VERSION = 1
JOINT_TYPES = ("hinge", "slide")


class ChainError(ValueError):
    pass


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion (w, x, y, z); normalised first."""
    w, x, y, z = np.asarray(quat, dtype=float) / np.linalg.norm(quat)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) with w >= 0 of a rotation matrix (Shepperd's method: stable for every angle)."""
    r = np.asarray(rot, dtype=float)
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = np.array([0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = np.empty(4)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    return q if q[0] >= 0 else -q


@dataclass(frozen=True)
class ChainJoint:
    name: str
    type: str                 # "hinge" (rad) or "slide" (m)
    pos: np.ndarray           # (3,) origin in the previous frame
    rot: np.ndarray           # (3, 3) orientation in the previous frame
    axis: np.ndarray          # (3,) unit axis in this joint's frame
    ref: float                # joint value of the description's pose

    def __post_init__(self) -> None:
        # Rodrigues with the fixed rotation folded in: rot @ R(axis, a) = rot + sin a * rot K + (1 - cos a) * rot K^2
        k = np.array([[0.0, -self.axis[2], self.axis[1]], [self.axis[2], 0.0, -self.axis[0]],
                      [-self.axis[1], self.axis[0], 0.0]])
        object.__setattr__(self, "_rot_k", self.rot @ k)
        object.__setattr__(self, "_rot_k2", self.rot @ k @ k)
        object.__setattr__(self, "_axis_in_prev", self.rot @ self.axis)

    def moved_rotation(self, value: np.ndarray) -> np.ndarray:
        """Orientation (..., 3, 3) of this joint's moved frame in the previous frame, for hinge angles (...)."""
        s, c = np.sin(value)[..., None, None], np.cos(value)[..., None, None]
        return self.rot + s * self._rot_k + (1.0 - c) * self._rot_k2


@dataclass(frozen=True)
class KinematicChain:
    joints: tuple[ChainJoint, ...]
    tip_name: str
    tip_pos: np.ndarray       # (3,) tool point in the last joint's frame
    tip_rot: np.ndarray       # (3, 3)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool point position (..., 3) and orientation (..., 3, 3) in the chain's base (world) frame for joint
        values q (..., n), batched over leading axes."""
        q = np.asarray(q, dtype=float)
        if q.shape[-1:] != (len(self.joints),):
            raise ChainError(f"forward kinematics: expected {len(self.joints)} joint values, got shape {q.shape}")
        batch = q.shape[:-1]
        rot = np.broadcast_to(np.eye(3), batch + (3, 3))
        pos = np.zeros(batch + (3,))
        for i, joint in enumerate(self.joints):
            pos = pos + rot @ joint.pos
            value = q[..., i] - joint.ref
            if joint.type == "hinge":
                rot = rot @ joint.moved_rotation(value)
            else:
                pos = pos + (rot @ joint._axis_in_prev) * value[..., None]
                rot = rot @ joint.rot
        return pos + rot @ self.tip_pos, rot @ self.tip_rot

    def tip_position(self, q: np.ndarray) -> np.ndarray:
        return self.forward(q)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHAIN_FORMAT, "version": CHAIN_VERSION,
            "joints": [{"name": j.name, "type": j.type, "pos": j.pos.tolist(),
                        "quat": matrix_to_quat(j.rot).tolist(), "axis": j.axis.tolist(), "ref": j.ref}
                       for j in self.joints],
            "tip": {"name": self.tip_name, "pos": self.tip_pos.tolist(), "quat": matrix_to_quat(self.tip_rot).tolist()},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "kinematic chain") -> "KinematicChain":
        """Build from the dict `to_dict` writes; errors name `source` and the field."""
        if not isinstance(data, dict):
            raise ChainError(f"{source}: expected a mapping, got {type(data).__name__}")
        if data.get("format") != CHAIN_FORMAT or data.get("version") != CHAIN_VERSION:
            raise ChainError(f"{source}: expected format {CHAIN_FORMAT!r} version {CHAIN_VERSION}, "
                             f"got {data.get('format')!r} version {data.get('version')!r}")
        raw_joints = data.get("joints")
        if not isinstance(raw_joints, list) or not raw_joints:
            raise ChainError(f"{source}: field 'joints' must be a non-empty list")
        joints = []
        for i, raw in enumerate(raw_joints):
            where = f"{source}: joints[{i}]"
            if not isinstance(raw, dict):
                raise ChainError(f"{where}: expected a mapping")
            if raw.get("type") not in JOINT_TYPES:
                raise ChainError(f"{where}.type: expected one of {JOINT_TYPES}, got {raw.get('type')!r}")
            axis = _vector(raw, "axis", 3, where)
            norm = np.linalg.norm(axis)
            if norm < 1e-9:
                raise ChainError(f"{where}.axis: must be non-zero")
            joints.append(ChainJoint(name=str(raw.get("name", f"joint{i}")), type=raw["type"],
                                     pos=_vector(raw, "pos", 3, where), rot=_rotation(raw, where),
                                     axis=axis / norm, ref=float(_vector(raw, "ref", 1, where)[0])))
        tip = data.get("tip")
        if not isinstance(tip, dict):
            raise ChainError(f"{source}: field 'tip' must be a mapping with pos and quat")
        return cls(joints=tuple(joints), tip_name=str(tip.get("name", "tip")),
                   tip_pos=_vector(tip, "pos", 3, f"{source}: tip"), tip_rot=_rotation(tip, f"{source}: tip"))


def _vector(raw: dict, field: str, size: int, where: str) -> np.ndarray:
    value = raw.get(field)
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (size,) or not np.all(np.isfinite(arr)):
        raise ChainError(f"{where}.{field}: expected {size} finite number(s), got {value!r}")
    return arr


def _rotation(raw: dict, where: str) -> np.ndarray:
    quat = _vector(raw, "quat", 4, where)
    if np.linalg.norm(quat) < 1e-9:
        raise ChainError(f"{where}.quat: must be a non-zero quaternion (w, x, y, z)")
    return quat_to_matrix(quat)
