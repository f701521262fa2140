"""Policy bundles on the robot: load and check `bundle.json` and its two ONNX models (written by `robot-rl export`,
schema in docs/formats.md) before anything runs.

Checked: the JSON parses and has every field with the right type; format and version; the files exist and their
sha256 matches; onnxruntime loads each model and its input/output names, shapes and dtypes are the ones bundle.json
declares; the safety limits and kinematic chain parse (hardware/safety_config.py, hardware/kinematics.py) and name
the same joints; the action space (`action.space`: joint, ee or ee_yaw, hardware/policy_io.py) parses and its size
matches; the last-actions observation (`observation.action_history`) matches the state layout; and, when given,
the robot's joint names equal the policy's. Every error names the file and field.

numpy + onnxruntime only (no torch).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.kinematics import ChainError, KinematicChain
from hardware.policy_io import JointActions, PolicyIO, PolicyIOError, ToolPointActions, action_space_from_dict
from hardware.safety_config import SafetyConfigError, SafetyLimits

BUNDLE_FORMAT = "robot_rl.bundle"
BUNDLE_VERSION = 1
MODELS = ("policy", "planner")
ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(int64)": "int64"}


class BundleError(ValueError):
    pass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _field(data: dict, key: str, kind, where: str):
    if key not in data:
        raise BundleError(f"{where}: missing field {key!r}")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BundleError(f"{where}: field {key!r} must be {names}, got {value!r}")
    return value


def _specs(raw: Any, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise BundleError(f"{where}: expected a non-empty list of {{name, shape, dtype}}")
    specs = []
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise BundleError(f"{w}: expected a mapping")
        shape = _field(item, "shape", list, w)
        if not all(isinstance(s, int) and s > 0 for s in shape):
            raise BundleError(f"{w}: field 'shape' must be positive integers, got {shape}")
        specs.append(TensorSpec(_field(item, "name", str, w), tuple(shape), _field(item, "dtype", str, w)))
    return tuple(specs)


def _names(data: dict, key: str, where: str) -> tuple[str, ...]:
    names = _field(data, key, list, where)
    if not all(isinstance(n, str) for n in names):
        raise BundleError(f"{where}: field {key!r} must be a list of strings, got {names!r}")
    return tuple(names)


@dataclass(frozen=True)
class RobotInterface:
    """bundle.json's non-model part: what the policy observes and commands on the robot (written by
    robot_rl.export.robot_interface; the robot environment of on-robot learning parses the same dict)."""
    joint_names: tuple[str, ...]            # arm joints, the policy's order
    gripper_joints: tuple[str, ...]
    obs_keys: tuple[str, ...]               # graph observation inputs, in order ("state", "pixels")
    state_layout: tuple[tuple[str, int], ...]
    pixels_shape: tuple[int, ...] | None    # (C, H, W), C = 3 x frame_stack
    frame_stack: int
    action_history: int                     # k: the state ends with the last k actions sent ("last_actions")
    action_dim: int
    actions: JointActions | ToolPointActions    # the action space: action -> joint targets
    gripper_max_width: float
    control_hz: float
    safety: SafetyLimits
    chain: KinematicChain

    def policy_io(self) -> PolicyIO:
        """The observation builder and action mapping policy_node runs with (a fresh one: it keeps the episode's
        last actions)."""
        return PolicyIO(obs_layout=self.state_layout if "state" in self.obs_keys else (),
                        pixels_shape=self.pixels_shape, joint_names=self.joint_names,
                        gripper_joints=self.gripper_joints, actions=self.actions, chain=self.chain,
                        action_history=self.action_history)


@dataclass(frozen=True)
class Bundle(RobotInterface):
    """A policy bundle: the robot interface plus the two models and the planner's settings."""
    folder: Path
    raw: dict[str, Any]                     # bundle.json as read
    planner: dict[str, Any]
    inputs: dict[str, tuple[TensorSpec, ...]]   # model -> declared inputs
    outputs: dict[str, tuple[TensorSpec, ...]]

    def model_path(self, name: str) -> Path:
        return self.folder / self.raw["models"][name]["file"]


def robot_interface(raw: dict, where: str = "robot interface",
                    joint_names: tuple[str, ...] | list[str] | None = None) -> tuple[PolicyIO, SafetyLimits, float]:
    """(PolicyIO, SafetyLimits, control_hz) of a bundle.json-like dict: the one path from the robot interface to
    what goes on the wire, shared by policy bundles and on-robot learning."""
    interface = robot_interface_from_dict(raw, where, joint_names)
    return interface.policy_io(), interface.safety, interface.control_hz


def robot_interface_from_dict(raw: dict, where: str, joint_names: tuple[str, ...] | list[str] | None = None
                              ) -> RobotInterface:
    """Parse and check the robot-interface fields of `raw` (observation, action, joint_names, gripper_joints,
    position_lower/upper, control_hz, safety, kinematics). `joint_names`: the robot's arm joints, which must equal
    the interface's."""
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: expected a JSON object")
    names = _names(raw, "joint_names", where)
    if joint_names is not None and tuple(joint_names) != names:
        raise BundleError(f"{where}: field 'joint_names' is {list(names)} but the robot's joints are "
                          f"{list(joint_names)}; this bundle was exported for another robot or joint order")
    obs = _field(raw, "observation", dict, where)
    ow = f"{where}: observation"
    keys = _names(obs, "keys", ow)
    if not keys or set(keys) - {"state", "pixels"}:
        raise BundleError(f"{ow}: field 'keys' must be a non-empty subset of ['state', 'pixels'], got {list(keys)}")
    layout = []
    for i, item in enumerate(_field(obs, "state_layout", list, ow)):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int)):
            raise BundleError(f"{ow}: state_layout[{i}] must be [name, size], got {item!r}")
        layout.append((item[0], item[1]))
    if "state" in keys and not layout:
        raise BundleError(f"{ow}: field 'state_layout' is empty but the policy takes a state vector")
    pixels = obs.get("pixels_shape")
    if ("pixels" in keys) != (pixels is not None):
        raise BundleError(f"{ow}: field 'pixels_shape' is {pixels!r} but keys are {list(keys)}")
    if pixels is not None and not (isinstance(pixels, list) and len(pixels) == 3 and pixels[0] % 3 == 0):
        raise BundleError(f"{ow}: field 'pixels_shape' must be [C, H, W] with C a multiple of 3, got {pixels!r}")
    action = _field(raw, "action", dict, where)
    aw = f"{where}: action"
    action_dim = _field(action, "dim", int, aw)
    control_hz = _field(raw, "control_hz", float, where)
    if not control_hz > 0:
        raise BundleError(f"{where}: field 'control_hz' must be > 0, got {control_hz}")
    try:
        safety = SafetyLimits.from_dict(_field(raw, "safety", dict, where), f"{where}: safety")
        chain = KinematicChain.from_dict(_field(raw, "kinematics", dict, where), f"{where}: kinematics")
    except (SafetyConfigError, ChainError) as err:
        raise BundleError(str(err)) from None
    if safety.joint_names != names or chain.joint_names != names:
        raise BundleError(f"{where}: joints of 'safety' {list(safety.joint_names)} / 'kinematics' "
                          f"{list(chain.joint_names)} differ from 'joint_names' {list(names)}")
    lower = _field(raw, "position_lower", list, where)
    upper = _field(raw, "position_upper", list, where)
    if len(lower) != len(names) or len(upper) != len(names):
        raise BundleError(f"{where}: fields 'position_lower'/'position_upper' need {len(names)} entries each")
    try:
        actions = action_space_from_dict(action, lower, upper, chain, aw)
    except PolicyIOError as err:
        raise BundleError(str(err)) from None
    if action_dim != actions.dim:
        raise BundleError(f"{aw}: field 'dim' is {action_dim}; the {actions.name!r} action space of "
                          f"{len(names)} joints takes {actions.dim}")
    history = obs.get("action_history", 0)
    if isinstance(history, bool) or not isinstance(history, int) or history < 0:
        raise BundleError(f"{ow}: field 'action_history' must be a whole number >= 0, got {history!r}")
    if dict(layout).get("last_actions", 0) != history * action_dim:
        raise BundleError(f"{ow}: state_layout's 'last_actions' has {dict(layout).get('last_actions', 0)} values; "
                          f"action_history={history} x action dim {action_dim} needs {history * action_dim}")

    return RobotInterface(joint_names=names, gripper_joints=_names(raw, "gripper_joints", where), obs_keys=keys,
                          state_layout=tuple(layout), pixels_shape=tuple(pixels) if pixels else None,
                          frame_stack=_field(obs, "frame_stack", int, ow), action_history=history,
                          action_dim=action_dim, actions=actions,
                          gripper_max_width=_field(action, "gripper_max_width", float, aw), control_hz=control_hz,
                          safety=safety, chain=chain)


def load_bundle(folder: str | Path, joint_names: tuple[str, ...] | list[str] | None = None,
                check_models: bool = True) -> Bundle:
    """Read and check a bundle folder. `joint_names`: the robot's arm joints, which must equal the bundle's.
    `check_models`: also load both models in onnxruntime and compare their inputs/outputs with bundle.json."""
    folder = Path(folder)
    path = folder / "bundle.json"
    if not folder.is_dir():
        raise BundleError(f"{folder}: bundle folder not found")
    if not path.is_file():
        raise BundleError(f"{path}: missing (a bundle folder holds bundle.json, policy.onnx and planner.onnx)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    where = str(path)
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: expected a JSON object")
    if raw.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: field 'format' is {raw.get('format')!r}; expected {BUNDLE_FORMAT!r}")
    if raw.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{where}: field 'version' is {raw.get('version')!r}; expected {BUNDLE_VERSION} "
                          f"(re-export with this version of robot-rl)")

    interface = robot_interface_from_dict(raw, where, joint_names)

    models = _field(raw, "models", dict, where)
    inputs, outputs = {}, {}
    for name in MODELS:
        entry = _field(models, name, dict, f"{where}: models")
        mw = f"{where}: models.{name}"
        file = folder / _field(entry, "file", str, mw)
        if not file.is_file():
            raise BundleError(f"{file}: missing (named by {mw}.file)")
        expected = _field(entry, "sha256", str, mw)
        actual = sha256_of(file)
        if actual != expected:
            raise BundleError(f"{file}: sha256 {actual} differs from {mw}.sha256 {expected} (corrupt or replaced "
                              f"file; re-export the bundle)")
        inputs[name] = _specs(entry.get("inputs"), f"{mw}.inputs")
        outputs[name] = _specs(entry.get("outputs"), f"{mw}.outputs")
    bundle = Bundle(folder=folder, raw=raw, **vars(interface), planner=_field(raw, "planner", dict, where),
                    inputs=inputs, outputs=outputs)
    if check_models:
        for name in MODELS:
            open_session(bundle, name)
    return bundle


def open_session(bundle: Bundle, name: str, threads: int = 1):
    """An onnxruntime session for model `name` whose inputs/outputs match bundle.json (else BundleError)."""
    import onnxruntime as ort

    path = bundle.model_path(name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable models
        raise BundleError(f"{path}: onnxruntime cannot load it ({type(err).__name__}: {err})") from None
    for kind, declared, actual in (("inputs", bundle.inputs[name], session.get_inputs()),
                                   ("outputs", bundle.outputs[name], session.get_outputs())):
        got = tuple(TensorSpec(a.name, tuple(a.shape), ORT_DTYPES.get(a.type, a.type)) for a in actual)
        if got != declared:
            raise BundleError(f"{path}: {kind} {[(s.name, s.shape, s.dtype) for s in got]} differ from "
                              f"bundle.json models.{name}.{kind} {[(s.name, s.shape, s.dtype) for s in declared]}")
    return session
