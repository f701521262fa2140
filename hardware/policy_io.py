"""What a policy sees and what its action means, on the robot: the observation vector assembled from joint states,
forward kinematics, the goal, the object pose and the last actions sent, in the bundle's observation layout (the
same components and order as sim/env.py builds in simulation), and the action mapped to joint position targets by
the bundle's action space, the rules of sim/action_mapping.py:

- `joint` (`JointActions`): normalised joint steps of `max_joint_step` rad added to the previous targets, clipped
  to the joint limits;
- `ee` / `ee_yaw` (`ToolPointActions`): tool-point deltas (and yaw) added to the tool pose of the previous targets,
  clipped to the workspace box, solved to joint targets by a fixed number of damped least-squares iterations with
  joint limits and a null-space rest posture (sim/ik.track_pose), on the bundle's kinematic chain;

the gripper from -1 closed to +1 open over the finger gap 0 .. gripper_max_width in both.

numpy only; hardware/ may not import sim/ outside the simulated robot, so the mapping is restated here and
tests/hardware/test_policy_io.py checks it against sim/ value for value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hardware.kinematics import KinematicChain

# Observation components (sim/env.py's names) and what each needs from the robot's surroundings.
STATE_COMPONENTS = ("arm_qpos", "arm_qvel", "gripper_width", "ee_pos", "goal_pos", "ee_to_goal", "object_pos",
                    "object_quat", "ee_to_object", "object_to_goal", "last_actions")
ACTION_SPACES = ("joint", "ee", "ee_yaw")
FD_STEP = 1e-4            # rad, the Jacobian's finite-difference step (sim/ik.py)
NEEDS_GOAL = {"goal_pos", "ee_to_goal", "object_to_goal"}
NEEDS_OBJECT = {"object_pos", "object_quat", "ee_to_object", "object_to_goal"}


class PolicyIOError(ValueError):
    pass


def _checked(action: np.ndarray, dim: int, what: str) -> np.ndarray:
    action = np.asarray(action, dtype=np.float64).reshape(-1)
    if action.shape != (dim,):
        raise PolicyIOError(f"action has {action.size} values, expected {dim} ({what})")
    if not np.all(np.isfinite(action)):
        raise PolicyIOError(f"action has non-finite entries: {action}")
    return np.clip(action, -1.0, 1.0)


@dataclass(frozen=True)
class JointActions:
    """Normalised joint-position deltas + gripper (sim/action_mapping.JointActions)."""
    lower: np.ndarray
    upper: np.ndarray
    max_joint_step: float
    gripper_max_width: float
    name = "joint"

    @property
    def dim(self) -> int:
        return self.lower.shape[0] + 1

    def targets(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, float]:
        n = self.dim - 1
        action = _checked(action, self.dim, f"{n} joint steps + gripper")
        targets = np.clip(np.asarray(previous_targets, float) + action[:n] * self.max_joint_step, self.lower,
                          self.upper)
        return targets, float(0.5 * (action[n] + 1.0) * self.gripper_max_width)


def rotation_vector(r: np.ndarray) -> np.ndarray:
    """Axis * angle of a rotation matrix (log map; sim/ik.rotation_vector)."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-6:
        return 0.5 * axis
    if np.pi - angle < 1e-4:   # near pi the antisymmetric part vanishes: axis from the diagonal
        axis = np.sqrt(np.clip((np.diag(r) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        axis = np.sign(np.where(np.arange(3) == k, 1.0, r[k] + r[:, k])) * axis
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * np.sin(angle))


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class ToolPointActions:
    """Normalised tool-point deltas (x, y, z[, yaw]) + gripper -> joint targets (sim/action_mapping.ToolPointActions
    with sim/ik.track_pose), on the bundle's kinematic chain."""
    chain: KinematicChain
    lower: np.ndarray
    upper: np.ndarray
    rest: np.ndarray
    tool_rotation: np.ndarray
    gripper_max_width: float
    yaw: bool
    max_position_step: float
    max_yaw_step: float
    yaw_limit: float
    workspace_low: np.ndarray
    workspace_high: np.ndarray
    iterations: int
    damping: float
    posture_gain: float

    @property
    def name(self) -> str:
        return "ee_yaw" if self.yaw else "ee"

    @property
    def dim(self) -> int:
        return 5 if self.yaw else 4

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tool point, rotation, 6xn Jacobian) by forward differences, as sim/ik.jacobian (one batched FK)."""
        pos, rot = self.chain.forward(np.concatenate([q[None], q + FD_STEP * np.eye(q.shape[0])]))
        delta = rot[1:] @ rot[0].T
        angular = 0.5 * np.stack([delta[:, 2, 1] - delta[:, 1, 2], delta[:, 0, 2] - delta[:, 2, 0],
                                  delta[:, 1, 0] - delta[:, 0, 1]], axis=-1)
        return pos[0], rot[0], np.concatenate([(pos[1:] - pos[0]).T, angular.T]) / FD_STEP

    def target_pose(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, rot = self.chain.forward(np.asarray(previous_targets, float))
        point = np.clip(pos + action[:3] * self.max_position_step, self.workspace_low, self.workspace_high)
        yaw = 0.0
        if self.yaw:
            m = rot @ self.tool_rotation.T
            previous = float(np.arctan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))
            yaw = float(np.clip(previous + action[3] * self.max_yaw_step, -self.yaw_limit, self.yaw_limit))
        return point, rot_z(yaw) @ self.tool_rotation

    def targets(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, float]:
        action = _checked(action, self.dim, "tool-point deltas x, y, z" + (", yaw" if self.yaw else "")
                          + " + gripper")
        point, target_rot = self.target_pose(action, previous_targets)
        q = np.asarray(previous_targets, float).copy()
        pos, rot, jac = self.jacobian(q)
        gain = jac.T @ np.linalg.inv(jac @ jac.T + self.damping ** 2 * np.eye(6))
        null = np.eye(q.shape[0]) - gain @ jac
        for i in range(self.iterations):
            if i:
                pos, rot = self.chain.forward(q)
            error = np.concatenate([point - pos, rotation_vector(target_rot @ rot.T)])
            posture = null @ (self.posture_gain * (self.rest - q)) if i == 0 else 0.0
            q = np.clip(q + gain @ error + posture, self.lower, self.upper)
        return q, float(0.5 * (action[-1] + 1.0) * self.gripper_max_width)


def _floats(spec: dict, key: str, size: int | None, where: str) -> np.ndarray:
    value = spec.get(key)
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or (size is None and arr.ndim != 0) or (size is not None and arr.size != size) \
            or not np.all(np.isfinite(arr)):
        expected = "a finite number" if size is None else f"{size} finite numbers"
        raise PolicyIOError(f"{where}: field {key!r} must be {expected}, got {value!r}")
    return arr if size is None else arr.reshape(-1)


def action_space_from_dict(spec: Any, lower: np.ndarray, upper: np.ndarray, chain: KinematicChain | None,
                           where: str = "action") -> JointActions | ToolPointActions:
    """The action space a bundle.json `action` block declares (`space` absent: joint, as bundles before it)."""
    if not isinstance(spec, dict):
        raise PolicyIOError(f"{where}: expected a mapping, got {type(spec).__name__}")
    space = spec.get("space", "joint")
    n = len(lower)
    width = float(_floats(spec, "gripper_max_width", None, where))
    if space == "joint":
        return JointActions(np.asarray(lower, float), np.asarray(upper, float),
                            float(_floats(spec, "max_joint_step", None, where)), width)
    if space not in ACTION_SPACES:
        raise PolicyIOError(f"{where}: field 'space' is {space!r}; expected one of {ACTION_SPACES}")
    if chain is None:
        raise PolicyIOError(f"{where}: the {space!r} action space needs the bundle's kinematic chain")
    iterations = spec.get("iterations")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise PolicyIOError(f"{where}: field 'iterations' must be a whole number >= 1, got {iterations!r}")
    rotation = _floats(spec, "tool_rotation", 9, where).reshape(3, 3)
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6):
        raise PolicyIOError(f"{where}: field 'tool_rotation' is not a rotation matrix")
    return ToolPointActions(
        chain=chain, lower=np.asarray(lower, float), upper=np.asarray(upper, float),
        rest=_floats(spec, "rest_posture", n, where), tool_rotation=rotation, gripper_max_width=width,
        yaw=space == "ee_yaw", max_position_step=float(_floats(spec, "max_position_step", None, where)),
        max_yaw_step=float(_floats(spec, "max_yaw_step", None, where)),
        yaw_limit=float(_floats(spec, "yaw_limit", None, where)),
        workspace_low=_floats(spec, "workspace_low", 3, where), workspace_high=_floats(spec, "workspace_high", 3, where),
        iterations=iterations, damping=float(_floats(spec, "damping", None, where)),
        posture_gain=float(_floats(spec, "posture_gain", None, where)))


@dataclass(frozen=True)
class PolicyIO:
    obs_layout: tuple[tuple[str, int], ...]    # state components and sizes, in order
    pixels_shape: tuple[int, ...] | None       # (C, H, W) the policy takes (C = 3 x frame stack), None: state only
    joint_names: tuple[str, ...]               # arm joints, in the policy's order
    gripper_joints: tuple[str, ...]            # finger joints; the gap is the sum of their positions
    actions: JointActions | ToolPointActions   # the bundle's action space
    chain: KinematicChain | None               # tool point FK, needed when the layout has ee_* components
    action_history: int = 0                    # k: the last k actions sent are the "last_actions" component
    _sent: list = field(default_factory=list, compare=False, repr=False)   # actions sent this episode (last k)

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.obs_layout if name not in STATE_COMPONENTS]
        if unknown:
            raise PolicyIOError(f"observation layout: unknown component(s) {unknown}; known: {STATE_COMPONENTS}")
        if self.needs_fk and self.chain is None:
            raise PolicyIOError("observation layout uses the tool point (ee_*) but no kinematic chain was given")
        if self.chain is not None and self.chain.joint_names != tuple(self.joint_names):
            raise PolicyIOError(f"kinematic chain joints {list(self.chain.joint_names)} differ from the policy's "
                                f"joints {list(self.joint_names)}")
        if self.actions.lower.shape != (len(self.joint_names),):
            raise PolicyIOError(f"action space limits are for {self.actions.lower.shape[0]} joints, the policy "
                                f"has {len(self.joint_names)}")
        history = dict(self.obs_layout).get("last_actions", 0)
        if history != self.action_history * self.actions.dim:
            raise PolicyIOError(f"observation layout: 'last_actions' has {history} values; action_history="
                                f"{self.action_history} x action dim {self.actions.dim} needs "
                                f"{self.action_history * self.actions.dim}")

    @property
    def gripper_max_width(self) -> float:
        return self.actions.gripper_max_width

    def reset(self) -> None:
        """A new episode: no actions sent yet (the last_actions component is zeros again)."""
        self._sent.clear()

    def last_actions(self) -> np.ndarray:
        """The last `action_history` actions sent, oldest first, zeros before the episode's first (sim/env.py)."""
        missing = (self.action_history - len(self._sent)) * self.actions.dim
        return np.concatenate([np.zeros(missing, np.float32), *self._sent])

    @property
    def components(self) -> set[str]:
        return {name for name, _ in self.obs_layout}

    @property
    def needs_fk(self) -> bool:
        return any(name.startswith("ee_") for name in self.components)

    @property
    def needs_goal(self) -> bool:
        return bool(self.components & NEEDS_GOAL)

    @property
    def needs_object(self) -> bool:
        return bool(self.components & NEEDS_OBJECT)

    @property
    def needs_pixels(self) -> bool:
        return self.pixels_shape is not None

    def state(self, q: np.ndarray, dq: np.ndarray | None, gripper_width: float, goal: np.ndarray | None,
              object_pose: np.ndarray | None) -> np.ndarray:
        """The float32 state vector in the layout's order."""
        n = len(self.joint_names)
        ee = self.chain.tip_position(q) if self.needs_fk else None
        values = {"arm_qpos": q, "arm_qvel": np.zeros(n) if dq is None else dq, "gripper_width": [gripper_width]}
        if self.action_history:
            values["last_actions"] = self.last_actions()
        if ee is not None:
            values["ee_pos"] = ee
        if goal is not None:
            values["goal_pos"] = goal
            if ee is not None:
                values["ee_to_goal"] = goal - ee
        if object_pose is not None:
            values.update(object_pos=object_pose[:3], object_quat=object_pose[3:7])
            if ee is not None:
                values["ee_to_object"] = object_pose[:3] - ee
            if goal is not None:
                values["object_to_goal"] = goal - object_pose[:3]
        parts = []
        for name, size in self.obs_layout:
            if name not in values:
                raise PolicyIOError(f"observation component {name!r} needs an input that is missing")
            part = np.asarray(values[name], dtype=np.float32).reshape(-1)
            if part.shape != (size,):
                raise PolicyIOError(f"observation component {name!r}: {part.size} values, layout says {size}")
            parts.append(part)
        return np.concatenate(parts)

    def targets(self, action: np.ndarray, previous_targets: np.ndarray) -> tuple[np.ndarray, float]:
        """(arm joint targets, finger gap) for one normalised action, by the bundle's action space; the action is
        remembered (clipped to [-1, 1]) for the last_actions component."""
        targets = self.actions.targets(action, previous_targets)
        if self.action_history:
            self._sent.append(np.clip(np.asarray(action, dtype=np.float32).reshape(-1), -1.0, 1.0))
            del self._sent[:-self.action_history]
        return targets


class FrameStacker:
    """The last k camera images, oldest first, concatenated along channels (robot_rl/frame_stack.py's rule: an
    episode's first observation repeats its first image k times)."""

    def __init__(self, k: int):
        self.k = k
        self.frames: list[np.ndarray] = []

    def reset(self) -> None:
        self.frames = []

    def push(self, image_hwc: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(np.asarray(image_hwc, dtype=np.uint8).transpose(2, 0, 1))
        self.frames = (self.frames or [chw] * self.k)[1:] + [chw] if self.k > 1 else [chw]
        return np.concatenate(self.frames, axis=0)
