"""The robot as a learning environment's body: one control period per `step()`, over the same topics, action
mapping and safety filter as policy_node (hardware/nodes/policy_node.py), with resets, teleoperation and operator
marks between the learner and the arm. numpy and the node interface only (no torch).

  subscribes  <joint_states_topic>          sensor_msgs/JointState (best effort)
              <goal_topic>, <object_topic>  std_msgs/Float64MultiArray (when the policy's observation needs them)
              <image_topic>                 sensor_msgs/Image rgb8 (pixel policies)
              <task_state_topic>            std_msgs/String JSON: dense_reward, sparse_reward, success[, episode]
              <scene_ready_topic>           std_msgs/Bool, latched (transient local): True when the scene is reset
              <teleop_topic>                std_msgs/Float64MultiArray: a normalised action in the policy's action
                                            space; overrides the policy while messages keep coming
              <operator_topic>              std_msgs/String "success" | "failure" | "end": ends the episode
              <estop_topic>, <estop_reset_topic>  std_msgs/Bool: policy_node's e-stop. Without estop_sources (a
                                            bench): True latches, True on the reset topic while released clears
                                            it. With sources (hardware/estop.py): each heartbeats on
                                            <estop_topic>/<source>, a silent one counts as pressed, anyone may
                                            press on <estop_topic>, a source's True on <estop_reset_topic>/<source>
                                            clears it once all are alive and released
  publishes   /<controller>/commands or /<trajectory_controller>/joint_trajectory, /<gripper_controller>/commands
                                            (as policy_node), <scene_reset_topic> std_msgs/Float64MultiArray []

Real time: step k has the period [t0 + k T, t0 + (k+1) T). step() publishes the command at once, sleeps until
the period's end and builds the observation from the latest inputs there. A step() called after its period
ended has missed its deadline (late=True, counted); the schedule then re-anchors at that call.

Any doubt holds the arm (the filter brakes to rest and stays): stale or missing joint states, the e-stop, a
safety fault, a bad action. The step then reports `fault`, and its data must not be trained on.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from hardware.estop import EstopConfigError, EstopSources, parse_sources
from hardware.joint_state_input import JointStateInput, hardware_joint_names
from hardware.log_throttle import ThrottledLog
from hardware.messages import (Bool, Float64MultiArray, Image, JointState, JointTrajectory, String, array_from_image,
                               float64_multi_array, joint_trajectory)
from hardware.nodes.policy_node import COMMAND_INTERFACES, SMALL_ARRAY_BYTES, subscribe_latched_or_not
from hardware.policy_io import FrameStacker, PolicyIO, PolicyIOError
from hardware.safety import SafetyFilter
from hardware.safety_config import SafetyConfig, SafetyConfigError, SafetyLimits
from hardware.transport.base import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA, Node

OPERATOR_MARKS = ("success", "failure", "end")
REWARDS = ("dense", "sparse")
LIMIT_TOLERANCE = 1e-9    # rad, as the safety filter's own invariant check
POLL_S = 0.002            # how often waits look at the shared state
JITTER_WINDOW = 5000      # observation times kept for the percentiles


class RobotLinkError(ValueError):
    """Bad configuration or input, or a robot that does not answer; the message names the topic/field."""


@dataclass(frozen=True)
class RobotLinkConfig:
    joint_states_topic: str = "/joint_states"
    hardware_joint_names: tuple[str, ...] = ()        # the robot's names of the policy's joints; (): the same names
    command_interface: str = "forward"                # forward | trajectory (policy_node's topics and messages)
    controller: str = "forward_position_controller"
    trajectory_controller: str = "joint_trajectory_controller"
    gripper_controller: str = "gripper_controller"    # "": leave the gripper alone
    goal_topic: str = "/goal"
    object_topic: str = "/object_pose"
    image_topic: str = "/camera/color/image_raw"
    task_state_topic: str = "/sim_robot/task_state"   # JSON with dense_reward, sparse_reward, success
    scene_reset_topic: str = "/sim_robot/reset"       # [] asks for the next scene (sim_robot_node's ~/reset)
    scene_ready_topic: str = "/sim_robot/ready"       # latched True once the scene is reset
    reset_timeout_s: float = 10.0                     # the scene's ready (and each wait inside reset) at most this
    home_speed: float = 0.5                           # rad/s of the fastest joint on the way to the start posture
    home_tolerance: float = 0.02                      # rad: max |q - home| that counts as arrived
    teleop_topic: str = "/teleop/action"
    teleop_timeout_s: float = 0.15                    # a teleop message younger than this overrides the policy
    operator_topic: str = "/operator/episode"
    estop_topic: str = "/estop"
    estop_reset_topic: str = "/estop_reset"
    estop_sources: tuple[str, ...] = ()               # e.g. ("pendant", "operator"); (): the plain topics (bench)
    estop_heartbeat_timeout_s: float = 0.5            # a source silent this long counts as pressed
    connect_timeout_s: float = 5.0                    # the first inputs (joint states, ...) must arrive within this
    # control_period_s is replaced by 1 / control_hz: the filter's limits are per the link's own period.
    safety: SafetyConfig = field(default_factory=lambda: SafetyConfig(control_period_s=0.05))

    def __post_init__(self) -> None:
        for name in ("hardware_joint_names", "estop_sources"):   # "a, b" as ROS parameters write lists of names
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(n.strip() for n in value.split(",") if n.strip()))
            elif not isinstance(value, (list, tuple)) or not all(isinstance(n, str) for n in value):
                raise RobotLinkError(f"robot link config: {name}: expected a list of names, got {value!r}")
            else:
                object.__setattr__(self, name, tuple(value))
        try:
            parse_sources(",".join(self.estop_sources), "robot link config: estop_sources")
        except EstopConfigError as err:
            raise RobotLinkError(str(err)) from None
        if self.command_interface not in COMMAND_INTERFACES:
            raise RobotLinkError(f"robot link config: command_interface: expected one of {COMMAND_INTERFACES}, "
                                 f"got {self.command_interface!r}")
        for name in ("reset_timeout_s", "home_speed", "home_tolerance", "teleop_timeout_s", "connect_timeout_s",
                     "estop_heartbeat_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise RobotLinkError(f"robot link config: {name}: expected a number > 0, got {value!r}")

    @classmethod
    def from_dict(cls, data: Any, source: str = "robot link config") -> "RobotLinkConfig":
        """From a mapping of the fields (safety: SafetyConfig's fields but control_period_s); errors name
        `source` and the field."""
        if not isinstance(data, dict):
            raise RobotLinkError(f"{source}: expected a mapping, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RobotLinkError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        defaults = cls()
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(defaults, name)
            if name == "safety":
                values[name] = _safety_from_dict(value, f"{source}: safety")
            elif isinstance(default, tuple):   # lists of names: checked by __post_init__
                values[name] = value
            elif isinstance(default, str):
                if not isinstance(value, str):
                    raise RobotLinkError(f"{source}: {name}: expected a string, got {value!r}")
                values[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise RobotLinkError(f"{source}: {name}: expected a number, got {value!r}")
                values[name] = float(value)
        try:
            return cls(**values)
        except RobotLinkError as err:
            raise RobotLinkError(f"{source}: {str(err).removeprefix('robot link config: ')}") from None


def _safety_from_dict(value: Any, source: str) -> SafetyConfig:
    if isinstance(value, SafetyConfig):
        return value
    if not isinstance(value, dict):
        raise RobotLinkError(f"{source}: expected a mapping of SafetyConfig fields, got {type(value).__name__}")
    if "control_period_s" in value:
        raise RobotLinkError(f"{source}: control_period_s is 1 / control_hz of the task; leave it out")
    try:
        return SafetyConfig.from_dict({"control_period_s": 0.05, **value}, source)
    except SafetyConfigError as err:
        raise RobotLinkError(str(err)) from None


@dataclass
class Observation:
    state: np.ndarray | None      # io.state(...) float32 in the bundle/sim layout, None for pixel-only policies
    pixels: np.ndarray | None     # (3k, H, W) uint8 stacked frames, or None
    q: np.ndarray                 # arm joint positions, policy order
    stamp_ns: int                 # stamp of the joint state this was built from


@dataclass
class StepOutcome:
    obs: Observation
    reward: float
    success: bool
    applied_action: np.ndarray    # what was executed (the teleop action while intervening), clipped to [-1, 1]
    intervention: bool
    operator: str | None          # "success" | "failure" | "end" when the operator marked the episode this step
    fault: str | None             # why the arm holds; the episode must end and this step's data not be trained on
    late: bool                    # step() was called after its deadline
    safety_status: str            # SafetyStatus value of the command that went out


class Detector(Protocol):
    """A user's reward/success source (e.g. a success classifier on camera images, as HIL-SERL trains one);
    called once per step with the step's observation and the latest task state dict (None if none came)."""

    def __call__(self, observation: Observation, task_state: dict | None) -> tuple[float, bool]: ...


@dataclass
class _Inputs:
    """What the callbacks write and step()/reset() read, under RobotLink._lock."""
    q: np.ndarray | None = None
    dq: np.ndarray | None = None
    stamp_ns: int | None = None
    gripper_width: float = 0.0
    joint_states: int = 0
    bad_joint_states: int = 0
    last_bad_names: list[str] | None = None
    goal: np.ndarray | None = None
    goals: int = 0
    object_pose: np.ndarray | None = None
    image: np.ndarray | None = None
    task_state: dict | None = None
    task_states: int = 0
    ready: int = 0                                   # True messages on the ready topic
    teleop: np.ndarray | None = None
    teleop_at: float = -math.inf                     # monotonic receipt time
    operator: str | None = None
    malformed: Counter = field(default_factory=Counter)   # topic -> messages dropped


class RobotLink:
    def __init__(self, node: Node, io: PolicyIO, limits: SafetyLimits, control_hz: float, home: np.ndarray,
                 config: RobotLinkConfig, reward: str = "dense", detector: Detector | None = None):
        if tuple(limits.joint_names) != tuple(io.joint_names):
            raise RobotLinkError(f"safety limits joints {list(limits.joint_names)} differ from the policy's "
                                 f"{list(io.joint_names)}")
        if not (isinstance(control_hz, (int, float)) and control_hz > 0 and math.isfinite(control_hz)):
            raise RobotLinkError(f"control_hz: expected a number > 0, got {control_hz!r}")
        if reward not in REWARDS:
            raise RobotLinkError(f"reward: expected one of {REWARDS}, got {reward!r}")
        self.node, self.io, self.limits, self.config = node, io, limits, config
        self.reward, self.detector = reward, detector
        self.period_s = 1.0 / control_hz
        self.safety_config = replace(config.safety, control_period_s=self.period_s)
        self.home = np.asarray(home, dtype=float).reshape(-1)
        margin = self.safety_config.position_margin
        if self.home.shape != (limits.n,) or not np.all(np.isfinite(self.home)) or \
                np.any(self.home < limits.lower + margin) or np.any(self.home > limits.upper - margin):
            raise RobotLinkError(f"home: expected {limits.n} finite joint positions inside the limits less the "
                                 f"safety margin {margin} rad, got {np.asarray(home).tolist()}")
        try:
            self.hardware_names = hardware_joint_names(",".join(config.hardware_joint_names), io.joint_names,
                                                       "robot link config: hardware_joint_names")
        except ValueError as err:
            raise RobotLinkError(str(err)) from None
        self.joint_input = JointStateInput(self.hardware_names)
        self.safety = SafetyFilter(limits, self.safety_config)
        sources = config.estop_sources
        self.estop_sources = EstopSources(sources, config.estop_heartbeat_timeout_s) if sources else None
        self._awaiting_sources = self.estop_sources is not None   # hold until each source was heard released
        self.estop_reasons: list[str] = []
        self.frames = FrameStacker(io.pixels_shape[0] // 3) if io.needs_pixels else None
        self.log = ThrottledLog()
        self._lock = threading.Lock()   # callbacks run on the executor's thread, step()/reset() on the caller's
        self._in = _Inputs()
        self._previous_targets: np.ndarray | None = None   # what the arm was last told (the action steps from it)
        self._last_command: np.ndarray | None = None       # the arm targets last published, for recordings
        self._t0: float | None = None   # the schedule's anchor (monotonic s) and periods since it
        self._k = 0
        self._steps = self._missed = self._resets = self._interventions = self._outside = self._published = 0
        self._reset_s: list[float] = []
        self._faults: Counter[str] = Counter()
        self._jitter_s: deque[float] = deque(maxlen=JITTER_WINDOW)
        self._closed = False
        self._estop_announced = False

        c = config
        # The e-stop first: the DDS executor drains readers in the order they were created.
        for source in sources:
            subscribe_latched_or_not(node, Bool, f"{c.estop_topic}/{source}",
                                     lambda msg, source=source: self._on_estop_source(source, msg))
            node.create_subscription(Bool, f"{c.estop_reset_topic}/{source}",
                                     lambda msg, source=source: self._on_estop_reset(msg, source), QOS_DEFAULT)
        subscribe_latched_or_not(node, Bool, c.estop_topic, self._on_estop)
        node.create_subscription(Bool, c.estop_reset_topic, lambda msg: self._on_estop_reset(msg, None), QOS_DEFAULT)
        node.create_subscription(JointState, c.joint_states_topic, self._on_joint_state, QOS_SENSOR_DATA)
        if io.needs_goal:
            subscribe_latched_or_not(node, Float64MultiArray, c.goal_topic, self._on_goal, SMALL_ARRAY_BYTES)
        if io.needs_object:
            node.create_subscription(Float64MultiArray, c.object_topic, self._on_object,
                                     replace(QOS_DEFAULT, max_sample_bytes=SMALL_ARRAY_BYTES))
        if io.needs_pixels:
            node.create_subscription(Image, c.image_topic, self._on_image, QOS_SENSOR_DATA)
        node.create_subscription(String, c.task_state_topic, self._on_task_state, QOS_DEFAULT)
        node.create_subscription(Bool, c.scene_ready_topic, self._on_ready, QOS_LATCHED)
        # Best effort matches every teleop publisher (a joystick node may publish either way); only the latest counts.
        node.create_subscription(Float64MultiArray, c.teleop_topic, self._on_teleop,
                                 replace(QOS_SENSOR_DATA, max_sample_bytes=SMALL_ARRAY_BYTES))
        node.create_subscription(String, c.operator_topic, self._on_operator,
                                 replace(QOS_DEFAULT, max_sample_bytes=SMALL_ARRAY_BYTES))
        if c.command_interface == "forward":
            self._arm_pub = node.create_publisher(Float64MultiArray, f"/{c.controller}/commands", QOS_DEFAULT)
        else:
            self._arm_pub = node.create_publisher(JointTrajectory, f"/{c.trajectory_controller}/joint_trajectory",
                                                  QOS_DEFAULT)
        self._gripper_pub = (node.create_publisher(Float64MultiArray, f"/{c.gripper_controller}/commands",
                                                   QOS_DEFAULT) if c.gripper_controller else None)
        self._reset_pub = node.create_publisher(Float64MultiArray, c.scene_reset_topic, QOS_DEFAULT)
        if self.estop_sources is None:
            node.logger.warning(f"e-stop: no estop_sources configured; anyone on the domain can release and reset "
                                f"{c.estop_topic} (fine on a bench, not on a robot)")

    # ---------------------------------------------------------------- callbacks (executor thread)
    def _on_joint_state(self, msg: JointState) -> None:
        with self._lock:
            try:
                q, dq, stamp = self.joint_input.read(msg)
            except ValueError as err:   # e.g. a robot without the policy's joints: no fresh state, so the filter holds
                self._in.bad_joint_states += 1
                self._in.last_bad_names = list(msg.name)
                self.log(self.node.logger.error, "joint_states", f"{self.config.joint_states_topic}: {err}")
                return
            self._in.q, self._in.dq, self._in.stamp_ns = q, dq, stamp
            self._in.joint_states += 1
            fingers = [i for i, name in enumerate(msg.name) if name in self.io.gripper_joints]
            if fingers and len(msg.position) == len(msg.name):
                self._in.gripper_width = float(sum(msg.position[i] for i in fingers))

    def _on_goal(self, msg: Float64MultiArray) -> None:
        goal = np.asarray(msg.data, dtype=float)
        with self._lock:
            if goal.shape != (3,) or not np.all(np.isfinite(goal)):
                self._malformed(self.config.goal_topic, f"expected 3 finite numbers, got {list(msg.data)[:10]}")
                return
            self._in.goal, self._in.goals = goal, self._in.goals + 1

    def _on_object(self, msg: Float64MultiArray) -> None:
        pose = np.asarray(msg.data, dtype=float)
        with self._lock:
            if pose.shape != (7,) or not np.all(np.isfinite(pose)):
                self._malformed(self.config.object_topic, f"expected 7 finite numbers, got {list(msg.data)[:10]}")
                return
            self._in.object_pose = pose

    def _on_image(self, msg: Image) -> None:
        try:
            image = array_from_image(msg)
        except ValueError as err:
            with self._lock:
                self._malformed(self.config.image_topic, str(err))
            return
        with self._lock:
            self._in.image = image

    def _on_task_state(self, msg: String) -> None:
        try:
            state = json.loads(msg.data)
        except ValueError:
            state = None
        with self._lock:
            if not isinstance(state, dict):
                self._malformed(self.config.task_state_topic, f"expected a JSON object, got {msg.data[:80]!r}")
                return
            self._in.task_state, self._in.task_states = state, self._in.task_states + 1

    def _on_ready(self, msg: Bool) -> None:
        if msg.data:
            with self._lock:
                self._in.ready += 1

    def _on_teleop(self, msg: Float64MultiArray) -> None:
        action = np.asarray(msg.data, dtype=float)
        with self._lock:
            if action.shape != (self.io.actions.dim,) or not np.all(np.isfinite(action)):
                self._malformed(self.config.teleop_topic, f"expected {self.io.actions.dim} finite numbers (the "
                                                          f"{self.io.actions.name} action space), got "
                                                          f"{list(msg.data)[:10]}")
                return
            self._in.teleop, self._in.teleop_at = np.clip(action, -1.0, 1.0), time.monotonic()

    def _on_operator(self, msg: String) -> None:
        with self._lock:
            if msg.data not in OPERATOR_MARKS:
                self._malformed(self.config.operator_topic, f"expected one of {OPERATOR_MARKS}, got {msg.data[:40]!r}")
                return
            self._in.operator = msg.data

    def _on_estop(self, msg: Bool) -> None:
        """The plain e-stop topic; with sources anyone may press there, and False releases nothing."""
        with self._lock:
            if self.estop_sources is None:
                self.safety.estop(bool(msg.data))
                self._on_estop_change()
            elif msg.data:
                self.estop_sources.press_anonymous()
                self._apply_estop_sources()

    def _on_estop_source(self, source: str, msg: Bool) -> None:
        with self._lock:
            self.estop_sources.heard(source, bool(msg.data), time.monotonic())
            self._apply_estop_sources()

    def _apply_estop_sources(self) -> None:
        """With sources (under the lock): the filter's e-stop input is whether any source holds (pressed, silent,
        or an unreset press); also checked before every command, so a source falling silent stops the arm."""
        if self.estop_sources is None:
            return
        self.estop_reasons = self.estop_sources.holding(time.monotonic())
        self.safety.estop(bool(self.estop_reasons))
        if self._awaiting_sources:
            if not self.estop_reasons:
                self._awaiting_sources = False
                self.safety.reset()
                self.node.logger.info(f"e-stop sources {list(self.estop_sources.names)} heard and released")
            return
        self._on_estop_change()

    def _on_estop_change(self) -> None:
        if self.safety.estop_active and not self._estop_announced:
            self.node.logger.warning(f"E-STOP: holding ({'; '.join(self.estop_reasons) or 'pressed'})")
            self._filter_and_publish(None, check_estop=False)   # the hold goes out now, not at the next step
        self._estop_announced = self.safety.estop_latched

    def _on_estop_reset(self, msg: Bool, source: str | None) -> None:
        """A reset clears a latched e-stop or safety fault (as policy_node's); with sources only theirs count."""
        if not msg.data:
            return
        with self._lock:
            if self.estop_sources is not None:
                accepted, why = (False, "it names no source") if source is None else \
                    self.estop_sources.reset(source, time.monotonic())
                if not accepted:
                    self.safety.counters["reset_refused"] += 1
                    self.log(self.node.logger.warning, f"reset:{source}", f"e-stop reset refused: {why}")
                    return
                self._apply_estop_sources()
            if (self.safety.estop_latched or self.safety.fault is not None) and self.safety.reset():
                self._estop_announced = False
                self.node.logger.info(f"e-stop/fault reset by {source or 'the plain reset topic'}")

    def _malformed(self, topic: str, why: str) -> None:
        self._in.malformed[topic] += 1
        self.log(self.node.logger.error, f"malformed:{topic}",
                 f"{topic}: dropped ({self._in.malformed[topic]} so far): {why}")

    # ---------------------------------------------------------------- commands (under the lock)
    def _filter_and_publish(self, command: np.ndarray | None, gripper: float | None = None,
                            check_estop: bool = True):
        """One pass through the safety filter; what leaves is published. Returns the SafeCommand."""
        if check_estop:
            self._apply_estop_sources()
        now = self.node.now_ns()
        stamp = self._in.stamp_ns if self._in.stamp_ns is not None else 0
        safe = self.safety.filter(command, self._in.q, self._in.dq, stamp, now, time.monotonic_ns())
        if safe.positions is not None:
            positions = np.asarray(safe.positions, dtype=float)
            if np.any(positions < self.limits.lower - LIMIT_TOLERANCE) or \
                    np.any(positions > self.limits.upper + LIMIT_TOLERANCE):
                self._outside += 1   # independent of the filter's own check: must stay 0
            if self.config.command_interface == "forward":
                self._arm_pub.publish(float64_multi_array(positions))
            else:   # reach the target one period from now, as the policy expects
                self._arm_pub.publish(joint_trajectory(self.hardware_names, positions, self.period_s))
            self._previous_targets = self._last_command = positions
            self._published += 1
            if command is not None and gripper is not None and not safe.status.holding and \
                    self._gripper_pub is not None:
                self._gripper_pub.publish(float64_multi_array([float(np.clip(gripper, 0.0,
                                                                             self.io.gripper_max_width))]))
        return safe

    @property
    def last_command(self) -> list[float] | None:
        """The arm joint targets last published (the filter's output), in the policy's joint order."""
        return None if self._last_command is None else self._last_command.tolist()

    def hold(self) -> None:
        """A safe hold command now (the filter brakes to rest and stays)."""
        with self._lock:
            if self._in.q is not None:
                self._filter_and_publish(None)

    def _fresh(self, stamp_ns: int | None) -> bool:
        """A joint state stamped `stamp_ns` is young enough to act on (the filter's observation timeout)."""
        return stamp_ns is not None and \
            (self.node.now_ns() - stamp_ns) * 1e-9 <= self.safety_config.observation_timeout_s

    def _why_unhealthy(self) -> str | None:
        """(Under the lock.) Why no episode can run now, or None: stale/no joint states, a latched stop."""
        if self.safety.estop_latched or self.safety.fault is not None:
            return "the e-stop or a safety fault is latched (the operator clears it on the reset topic)"
        if not self._fresh(self._in.stamp_ns):
            return f"no fresh joint states on {self.config.joint_states_topic}"
        return None

    def why_unhealthy(self) -> str | None:
        with self._lock:
            return self._why_unhealthy()

    def wait_until_healthy(self, timeout_s: float) -> bool:
        """Hold the arm (a hold each period while joint states come) until fresh joint states flow and no stop is
        latched, at most `timeout_s`; True when the robot is back."""
        return self._wait(lambda: self._why_unhealthy() is None, time.monotonic() + timeout_s, hold=True)

    # ---------------------------------------------------------------- connect
    def connect(self) -> None:
        """Wait for joint states with the policy's joints (and the goal, object pose, image the observation
        needs, and a task state unless a detector gives rewards); RobotLinkError naming what did not come."""
        c = self.config
        deadline = time.monotonic() + c.connect_timeout_s
        if not self._wait(lambda: self._in.joint_states > 0, deadline):
            with self._lock:
                bad, names = self._in.bad_joint_states, self._in.last_bad_names
            if bad:
                raise RobotLinkError(f"{c.joint_states_topic}: {bad} joint state(s) without the policy's joints: "
                                     f"expected {list(self.hardware_names)}, got {names} (set hardware_joint_names "
                                     f"to the robot's names of {list(self.io.joint_names)})")
            raise RobotLinkError(f"{c.joint_states_topic}: no joint states within connect_timeout_s="
                                 f"{c.connect_timeout_s:g} s (is the robot's joint_state_broadcaster running, on "
                                 f"this DDS domain?)")
        needed = [(self.io.needs_goal, c.goal_topic, lambda: self._in.goal is not None),
                  (self.io.needs_object, c.object_topic, lambda: self._in.object_pose is not None),
                  (self.io.needs_pixels, c.image_topic, lambda: self._in.image is not None),
                  (self.detector is None, c.task_state_topic, lambda: self._in.task_state is not None)]
        for need, topic, arrived in needed:
            if need and not self._wait(arrived, deadline):
                raise RobotLinkError(f"{topic}: nothing within connect_timeout_s={c.connect_timeout_s:g} s; the "
                                     f"observation or the reward needs it")
        if self.estop_sources is not None and not self._wait(lambda: not self._awaiting_sources, deadline):
            with self._lock:
                reasons = self.estop_sources.holding(time.monotonic())
            raise RobotLinkError(f"e-stop sources on {c.estop_topic}/<source> not all heard released within "
                                 f"connect_timeout_s={c.connect_timeout_s:g} s: {'; '.join(reasons)}")

    def _wait(self, predicate: Callable[[], bool], deadline: float, hold: bool = False) -> bool:
        """Poll `predicate` (under the lock) until the monotonic deadline; with `hold`, send a hold each period."""
        next_hold = time.monotonic()
        while True:
            with self._lock:
                if predicate():
                    return True
                now = time.monotonic()
                if hold and now >= next_hold and self._in.q is not None:
                    self._filter_and_publish(None)
                    next_hold = now + self.period_s
            if now >= deadline:
                return False
            time.sleep(POLL_S)

    # ---------------------------------------------------------------- reset
    def reset(self) -> Observation:
        """Home move, scene reset, first observation of the new episode (the schedule starts there)."""
        started = time.monotonic()
        c = self.config
        self._t0 = None   # until this reset succeeds, there is no episode to step
        self._move_home()
        with self._lock:
            ready_before, goals_before = self._in.ready, self._in.goals
            episode_before = (self._in.task_state or {}).get("episode")
            tasks_before = self._in.task_states
        self._reset_pub.publish(float64_multi_array([]))
        if not self._wait(lambda: self._in.ready > ready_before, time.monotonic() + c.reset_timeout_s, hold=True):
            self.hold()
            raise RobotLinkError(f"{c.scene_ready_topic}: no ready (std_msgs/Bool True, latched) within "
                                 f"reset_timeout_s={c.reset_timeout_s:g} s after the reset request on "
                                 f"{c.scene_reset_topic}; the arm holds at home")
        ready_at = time.monotonic()
        if self.io.needs_goal:   # the new goal is published before ready, but on another topic: allow a period
            self._wait(lambda: self._in.goals > goals_before, ready_at + self.period_s, hold=True)
        if self.detector is None:   # rewards of the new scene only: a task state of the old one would end it at once
            def new_scene() -> bool:
                state = self._in.task_state
                if self._in.task_states == tasks_before or state is None:
                    return False
                episode = state.get("episode")
                return episode is None or episode_before is None or episode != episode_before
            if not self._wait(new_scene, ready_at + c.reset_timeout_s, hold=True):
                self.hold()
                raise RobotLinkError(f"{c.task_state_topic}: no task state of the new scene within "
                                     f"reset_timeout_s={c.reset_timeout_s:g} s after ready")
        with self._lock:
            self.io.reset()
            if self.frames is not None:
                self.frames.reset()
            self._in.operator = None
            self._filter_and_publish(None)   # keep the controller fed at home while the learner thinks
            obs = self._observe()
        if obs is None:
            raise RobotLinkError(f"{c.joint_states_topic}: joint states went stale during the reset; the arm holds")
        self._t0, self._k = time.monotonic(), 0
        self._resets += 1
        self._reset_s.append(time.monotonic() - started)
        return obs

    def _move_home(self) -> None:
        """Joint-space straight line to `home`, the fastest joint at home_speed, one command per period through
        the safety filter (its start ramp and limits apply on top). A latched e-stop or safety fault is the
        operator's to clear (True on estop_reset_topic), never the learner's."""
        c = self.config
        step = c.home_speed * self.period_s
        with self._lock:
            if self.safety.estop_latched or self.safety.fault is not None:
                why = "e-stop latched" if self.safety.estop_latched else f"safety fault {self.safety.fault.value}"
                where = c.estop_reset_topic if self.estop_sources is None else f"{c.estop_reset_topic}/<source>"
                raise RobotLinkError(f"reset: {why}; the operator clears it with True on {where}")
            start = self._previous_targets if self._previous_targets is not None else self._in.q
        distance = float(np.max(np.abs(self.home - start))) if start is not None else 0.0
        deadline = time.monotonic() + distance / c.home_speed + self.safety_config.ramp_time_s + c.reset_timeout_s
        next_tick = time.monotonic()
        why = "too slow"
        while True:
            with self._lock:
                q, stamp = self._in.q, self._in.stamp_ns
                if self._fresh(stamp):
                    previous = self._previous_targets if self._previous_targets is not None else q
                    delta = self.home - previous
                    largest = float(np.max(np.abs(delta)))
                    target = self.home if largest <= step else previous + delta * (step / largest)
                    safe = self._filter_and_publish(target)
                    if np.max(np.abs(q - self.home)) <= c.home_tolerance and \
                            np.allclose(self._previous_targets, self.home, rtol=0.0, atol=LIMIT_TOLERANCE):
                        if self._gripper_pub is not None:   # episodes start with the hand open, as in sim/
                            self._gripper_pub.publish(float64_multi_array([self.io.gripper_max_width]))
                        return
                    if safe.status.holding or safe.positions is None:
                        why = f"{safe.status.value}: {safe.detail}"
                else:
                    if q is not None:
                        self._filter_and_publish(None)
                    why = "no fresh joint states"
            if time.monotonic() > deadline:
                self.hold()
                raise RobotLinkError(f"reset: the arm did not reach home {np.round(self.home, 3).tolist()} within "
                                     f"{c.home_tolerance} rad in time ({why}; joint states on "
                                     f"{c.joint_states_topic})")
            next_tick += self.period_s
            time.sleep(max(0.0, next_tick - time.monotonic()))

    # ---------------------------------------------------------------- step
    def step(self, action: np.ndarray) -> StepOutcome:
        if self._t0 is None:
            raise RobotLinkError("step() before reset(): an episode starts with reset()")
        called = time.monotonic()
        late = called > self._t0 + (self._k + 1) * self.period_s
        if late:   # re-anchor: this call starts a new period, rather than racing to catch up
            self._missed += 1
            self._t0, self._k = called, 0
        policy_action = np.asarray(action, dtype=float).reshape(-1)
        if policy_action.shape != (self.io.actions.dim,):
            self.hold()
            raise RobotLinkError(f"step(action): expected {self.io.actions.dim} values ({self.io.actions.name} "
                                 f"action space), got shape {np.shape(action)}")
        fault = None
        with self._lock:
            intervention = self._in.teleop is not None and called - self._in.teleop_at <= self.config.teleop_timeout_s
            applied = self._in.teleop.copy() if intervention else np.clip(policy_action, -1.0, 1.0)
            command = gripper = None
            if not np.all(np.isfinite(applied)):
                fault = "invalid_action: the policy's action is not finite"
            elif self._in.q is not None:
                previous = self._previous_targets if self._previous_targets is not None else self._in.q
                try:
                    command, gripper = self.io.targets(applied, previous)
                except PolicyIOError as err:
                    fault = f"invalid_action: {err}"
            safe = self._filter_and_publish(command, gripper)
        if intervention:
            self._interventions += 1
        if safe.status.holding or safe.positions is None:
            fault = fault or f"{safe.status.value}: {safe.detail}"

        boundary = self._t0 + (self._k + 1) * self.period_s
        time.sleep(max(0.0, boundary - time.monotonic()))
        self._jitter_s.append(time.monotonic() - boundary)
        self._k += 1
        with self._lock:
            obs = self._observe()
            if obs is None:   # stale: observe the last known state, but never as a good step
                age = (self.node.now_ns() - (self._in.stamp_ns or 0)) * 1e-9
                fault = fault or (f"stale_joint_states: the latest on {self.config.joint_states_topic} is "
                                  f"{age * 1e3:.0f} ms old (timeout "
                                  f"{self.safety_config.observation_timeout_s * 1e3:.0f} ms)")
                obs = self._observe(allow_stale=True)
            task_state = None if self._in.task_state is None else dict(self._in.task_state)
            operator, self._in.operator = self._in.operator, None
        reward, success = self._reward(obs, task_state)
        self._steps += 1
        if fault is not None:
            self._faults[fault.split(":")[0]] += 1
        return StepOutcome(obs=obs, reward=reward, success=success, applied_action=applied.astype(np.float32),
                           intervention=intervention, operator=operator, fault=fault, late=late,
                           safety_status=safe.status.value)

    def _observe(self, allow_stale: bool = False) -> Observation | None:
        """The observation from the latest inputs (under the lock); None when the joint states are stale."""
        q, stamp = self._in.q, self._in.stamp_ns
        if q is None or stamp is None:
            return None
        if not allow_stale and not self._fresh(stamp):
            return None
        io = self.io
        state = io.state(q, self._in.dq, self._in.gripper_width, self._in.goal, self._in.object_pose) \
            if io.obs_layout else None
        pixels = None
        if io.needs_pixels:
            if self._in.image.shape != (io.pixels_shape[1], io.pixels_shape[2], 3):
                raise RobotLinkError(f"{self.config.image_topic}: image {self._in.image.shape}, the policy takes "
                                     f"{io.pixels_shape[1]}x{io.pixels_shape[2]} rgb")
            pixels = self.frames.push(self._in.image)
        return Observation(state=state, pixels=pixels, q=q.copy(), stamp_ns=int(stamp))

    def _reward(self, obs: Observation, task_state: dict | None) -> tuple[float, bool]:
        if self.detector is not None:
            reward, success = self.detector(obs, task_state)
            return float(reward), bool(success)
        key = f"{self.reward}_reward"
        if task_state is None or key not in task_state or "success" not in task_state:
            raise RobotLinkError(f"{self.config.task_state_topic}: the task state needs fields {key!r} and "
                                 f"'success' (or give a detector); got {sorted(task_state or {})}")
        return float(task_state[key]), bool(task_state["success"])

    # ---------------------------------------------------------------- reports
    def stats(self) -> dict:
        jitter = np.asarray(self._jitter_s) * 1e3
        with self._lock:
            return {"steps": self._steps, "missed_deadlines": self._missed, "resets": self._resets,
                    "reset_s": list(self._reset_s), "interventions": self._interventions,
                    "faults": dict(self._faults), "commands_outside_limits": self._outside,
                    "commands_published": self._published,
                    "step_jitter_ms_p50": float(np.percentile(jitter, 50)) if jitter.size else math.nan,
                    "step_jitter_ms_p99": float(np.percentile(jitter, 99)) if jitter.size else math.nan,
                    "step_jitter_ms_max": float(jitter.max()) if jitter.size else math.nan,
                    "safety": dict(self.safety.counters), "limits": dict(self.safety.limit_counters),
                    "estop_latched": self.safety.estop_latched, "estop_reasons": list(self.estop_reasons),
                    "malformed": dict(self._in.malformed),
                    "bad_joint_states": self._in.bad_joint_states,
                    "dropped_samples": self.node.dropped_samples()}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.hold()
            self.node.logger.info(f"robot link closed: {self.stats()}")


@contextmanager
def open_link(io: PolicyIO, limits: SafetyLimits, control_hz: float, home: np.ndarray, config: RobotLinkConfig,
              transport: str = "dds", domain_id: int | None = None, node_name: str = "robot_env",
              reward: str = "dense", detector: Detector | None = None) -> Iterator[RobotLink]:
    """A node of its own spun on a daemon thread, a connected RobotLink; on exit the arm holds and all closes."""
    from hardware.transport import create_executor, create_node
    from hardware.transport.base import NodeOptions

    node = create_node(NodeOptions(name=node_name), transport,
                       **({"domain_id": domain_id} if domain_id is not None else {}))
    try:
        link = RobotLink(node, io, limits, control_hz, home, config, reward, detector)
    except BaseException:
        node.destroy()
        raise
    executor = create_executor(node)
    thread = threading.Thread(target=executor.spin, name=f"{node_name}-executor", daemon=True)
    thread.start()
    try:
        link.connect()
        yield link
    finally:
        link.close()
        executor.shutdown()
        thread.join(5.0)
        node.destroy()
