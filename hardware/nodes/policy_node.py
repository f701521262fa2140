"""policy_node: runs a policy bundle on an arm through ros2_control, every command through the safety filter.

At the control rate (the bundle's, or `control_rate_hz`) it assembles the observation the agent was trained on
from the latest /joint_states (forward kinematics of the bundle's chain gives the tool point; the goal comes from
`goal_topic` or the `goal` parameter, the object pose from `object_topic`, the image from `image_topic` when the
policy sees pixels), runs the policy prior or the MPPI planner (`mode`), maps the action to joint targets, passes
them through hardware/safety.py and publishes what leaves:

  forward     /<controller>/commands                    std_msgs/Float64MultiArray (arm joint positions)
  trajectory  /<trajectory_controller>/joint_trajectory trajectory_msgs/JointTrajectory (one point, one period)
  gripper     /<gripper_controller>/commands            std_msgs/Float64MultiArray (finger gap, m, clamped)

Any doubt means hold (the filter brakes to rest within the limits and stays): the policy raised or gave
NaN, no or stale joint states, limits, the e-stop. The gripper is commanded only while the filter passes the
policy's command (OK/LIMITED/WORKSPACE), so a hold also freezes the gripper.

E-stop (std_msgs/Bool). With `estop_sources` (e.g. "pendant,operator"; hardware/estop.py): each source heartbeats
on `<estop_topic>/<source>` (True pressed, False released) at least every `estop_heartbeat_timeout_s`, a silent
source counts as pressed, anyone may press on `estop_topic` itself, and the stop holds until every source is
alive and released and one of them sends True on `<estop_reset_topic>/<source>`; the log names who reset it.
At start the node holds until every source has been heard and released once (no reset needed for that).
Without sources (the default, for a bench): True on `estop_topic` latches, and True on `estop_reset_topic` while
it is released resets; anyone on the domain can do both (the node says so at start). The e-stop comes first: its
readers are created first (the DDS executor drains them first each round), a press applies the hold at once
(not at the next period), and while it is latched the policy is not run.

Inputs are bounded before they are decoded (the DDS transport drops and counts larger samples: /goal and the
object pose 1 KiB, std_msgs/Bool 64 bytes, joint states 64 KiB, images 64 MiB), malformed samples are dropped and
counted (`dropped_samples` in ~/diagnostics), and repeated log lines (status flapping, bad messages) are
throttled to one per `log_throttle_s` with a count.

Joint states: `hardware_joint_names` are the robot's names of the bundle's joints (FR3: fr3_joint1..7), in the
bundle's order, also the names commands go out under; non-finite or missing velocities (position-only hardware)
are estimated by finite differences; `controller_joints_file` (the ros2_control controllers YAML) lets the node
check the command order against the controller's `joints` at start (hardware/joint_state_input.py).

Clocks: joint state stamps come from the robot's host; the node holds when one is more than
`safety.future_stamp_tolerance_s` (10 ms) in its future or older than `safety.observation_timeout_s` (100 ms), so
the hosts' clocks must agree well within 10 ms (chrony/PTP). Velocity and acceleration limits use the real time
since the last command (a monotonic clock), not the period.

Every period is timed: compute time (observation assembled -> command published) and observation age at publish
(joint state stamp -> publish), and missed deadlines (periods the timer skipped, or compute longer than a
period). ~/diagnostics (std_msgs/String, JSON) carries p50/p99 of both, the misses and the filter's counters
every `diagnostics_period_s`; the same line goes to the log.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque

import numpy as np

from dataclasses import replace

from hardware.estop import EstopSources, parse_sources
from hardware.joint_state_input import JointStateInput, check_command_order, hardware_joint_names
from hardware.log_throttle import ThrottledLog
from hardware.messages import (Bool, Float64MultiArray, Image, JointState, JointTrajectory, String, array_from_image,
                               float64_multi_array, joint_trajectory)
from hardware.policy_io import FrameStacker
from hardware.safety import SafetyFilter, SafetyStatus
from hardware.safety_config import SafetyConfig
from hardware.transport.base import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA, Node

SAFETY_DEFAULTS = SafetyConfig(control_period_s=0.05)   # only for the defaults of the safety.* parameters
PARAMETERS: dict[str, object] = {
    "bundle": "",                                  # policy bundle folder (robot-rl export); required
    "mode": "policy",                              # policy (policy prior) | planner (MPPI)
    "control_rate_hz": 0.0,                        # 0: the bundle's control rate
    "command_interface": "forward",                # forward | trajectory
    "controller": "forward_position_controller",
    "trajectory_controller": "joint_trajectory_controller",
    "gripper_controller": "gripper_controller",    # empty: leave the gripper alone
    "joint_states_topic": "/joint_states",
    "goal_topic": "/goal",                         # empty: the goal parameter
    "goal": [0.0, 0.0, 0.0],                       # x, y, z (m) when goal_topic is empty
    "object_topic": "/object_pose",                # x, y, z, qw, qx, qy, qz (for tasks with an object)
    "image_topic": "/camera/color/image_raw",      # rgb8, for pixel policies
    "estop_topic": "/estop",
    "estop_reset_topic": "/estop_reset",
    "estop_sources": "",                           # comma-separated source names; "": the plain topics only
    "estop_heartbeat_timeout_s": 0.5,              # a source silent this long counts as pressed
    "hardware_joint_names": "",                    # comma-separated robot names of the bundle's joints; "": same
    "controller_joints_file": "",                  # controllers YAML: check the command order against `joints`
    "log_throttle_s": 5.0,                         # a repeated log line at most this often (with a count)
    "seed": 0,                                     # planner sampling noise
    "diagnostics_period_s": 1.0,
    **{f"safety.{k}": v for k, v in SAFETY_DEFAULTS.to_dict().items() if k != "control_period_s"},
}
COMMAND_INTERFACES = ("forward", "trajectory")
MODES = ("policy", "planner")
LATENCY_WINDOW = 2000   # periods kept for the percentiles
# The policy's command passes (maybe clipped): changes among these are not worth a log line each period.
NORMAL = {SafetyStatus.OK, SafetyStatus.LIMITED, SafetyStatus.WORKSPACE}
SMALL_ARRAY_BYTES = 1024   # /goal and the object pose carry 3 and 7 doubles (~90 bytes serialised)


class PolicyNode:
    def __init__(self, node: Node):
        from hardware.policy_runtime import open_bundle   # onnxruntime loads with the node, not with hardware/

        self.node = node
        p = {name: node.declare_parameter(name, default) for name, default in PARAMETERS.items()}
        self.p = p
        if not p["bundle"]:
            raise ValueError(f"parameter {node.name}.bundle: required (a folder written by `robot-rl export`)")
        if p["mode"] not in MODES:
            raise ValueError(f"parameter {node.name}.mode: expected one of {MODES}, got {p['mode']!r}")
        if p["command_interface"] not in COMMAND_INTERFACES:
            raise ValueError(f"parameter {node.name}.command_interface: expected one of {COMMAND_INTERFACES}, "
                             f"got {p['command_interface']!r}")
        loaded = open_bundle(p["bundle"], p["mode"], p["seed"])
        self.io, self.runtime = loaded.io, loaded.runtime
        self.rate_hz = p["control_rate_hz"] or loaded.control_hz
        if not self.rate_hz > 0:
            raise ValueError(f"parameter {node.name}.control_rate_hz: expected > 0, got {self.rate_hz}")
        self.period_s = 1.0 / self.rate_hz
        config = SafetyConfig.from_dict({"control_period_s": self.period_s,
                                         **{k.removeprefix("safety."): v for k, v in p.items()
                                            if k.startswith("safety.")}}, f"node {node.name} safety.* parameters")
        if tuple(loaded.safety.joint_names) != tuple(self.io.joint_names):
            raise ValueError(f"{p['bundle']}: safety limits joints {list(loaded.safety.joint_names)} differ from the "
                             f"policy's {list(self.io.joint_names)}")
        self.safety = SafetyFilter(loaded.safety, config)
        self.joint_names = list(self.io.joint_names)
        self.hardware_names = list(hardware_joint_names(p["hardware_joint_names"], self.joint_names,
                                                        f"parameter {node.name}.hardware_joint_names"))
        if p["controller_joints_file"]:
            controller = p["controller"] if p["command_interface"] == "forward" else p["trajectory_controller"]
            check_command_order(self.hardware_names, p["controller_joints_file"], controller)
        self.joint_input = JointStateInput(self.hardware_names)
        self.log = ThrottledLog(p["log_throttle_s"])
        sources = parse_sources(p["estop_sources"], f"parameter {node.name}.estop_sources")
        self.estop_sources = EstopSources(sources, p["estop_heartbeat_timeout_s"]) if sources else None
        self.frames = FrameStacker(self.io.pixels_shape[0] // 3) if self.io.needs_pixels else None

        self.q = self.dq = None
        self.gripper_width = None
        self.state_stamp_ns = None
        self.goal = None if p["goal_topic"] else np.asarray(p["goal"], dtype=float)
        if self.goal is not None and (self.goal.shape != (3,) or not np.all(np.isfinite(self.goal))):
            raise ValueError(f"parameter {node.name}.goal: expected 3 finite numbers, got {p['goal']!r}")
        self.object_pose = None
        self.image = None
        self.previous_targets = None   # what the arm was last told (the action is a step from it)
        self.first = True              # planner warm start: a new episode
        self.last_status = None
        self.compute_s: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.age_s: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.ticks = self.missed = self.published = self.policy_errors = self.bad_states = self.missed_reported = 0
        self.last_tick = None
        self.estop_reasons: list[str] = []
        self.awaiting_sources = self.estop_sources is not None
        self.status_since_ns = None    # node clock when the current safety status began

        # The e-stop first: the DDS executor drains readers in the order they were created.
        if self.estop_sources is not None:
            for source in self.estop_sources.names:
                subscribe_latched_or_not(node, Bool, f"{p['estop_topic']}/{source}",
                                         lambda msg, source=source: self.on_estop_source(source, msg))
                node.create_subscription(Bool, f"{p['estop_reset_topic']}/{source}",
                                         lambda msg, source=source: self.on_estop_reset(msg, source), QOS_DEFAULT)
        subscribe_latched_or_not(node, Bool, p["estop_topic"], self.on_estop)
        node.create_subscription(Bool, p["estop_reset_topic"], lambda msg: self.on_estop_reset(msg, None),
                                 QOS_DEFAULT)
        node.create_subscription(JointState, p["joint_states_topic"], self.on_joint_state, QOS_SENSOR_DATA)
        if p["goal_topic"]:
            subscribe_latched_or_not(node, Float64MultiArray, p["goal_topic"], self.on_goal, SMALL_ARRAY_BYTES)
        if self.io.needs_object:
            node.create_subscription(Float64MultiArray, p["object_topic"], self.on_object,
                                     replace(QOS_DEFAULT, max_sample_bytes=SMALL_ARRAY_BYTES))
        if self.io.needs_pixels:
            node.create_subscription(Image, p["image_topic"], self.on_image, QOS_SENSOR_DATA)
        if p["command_interface"] == "forward":
            self.arm_pub = node.create_publisher(Float64MultiArray, f"/{p['controller']}/commands", QOS_DEFAULT)
        else:
            self.arm_pub = node.create_publisher(JointTrajectory, f"/{p['trajectory_controller']}/joint_trajectory",
                                                 QOS_DEFAULT)
        self.gripper_pub = (node.create_publisher(Float64MultiArray, f"/{p['gripper_controller']}/commands",
                                                  QOS_DEFAULT) if p["gripper_controller"] else None)
        self.diag_pub = node.create_publisher(String, "~/diagnostics", QOS_DEFAULT)
        node.create_timer(self.period_s, self.tick)
        node.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)
        node.logger.info(f"bundle {p['bundle']} ({p['mode']}), {self.rate_hz:g} Hz, {p['command_interface']} "
                         f"commands, observation {[name for name, _ in self.io.obs_layout]}"
                         f"{' + pixels ' + str(self.io.pixels_shape) if self.io.needs_pixels else ''}")
        if self.estop_sources is None:
            node.logger.warning(f"e-stop: no estop_sources configured; anyone on the domain can release and reset "
                                f"{p['estop_topic']} (fine on a bench, not on a robot)")
        else:
            node.logger.info(f"e-stop sources {list(self.estop_sources.names)} on {p['estop_topic']}/<source>, "
                             f"heartbeat timeout {self.estop_sources.timeout_s:g} s; resets on "
                             f"{p['estop_reset_topic']}/<source>")

    # ---------------------------------------------------------------- inputs
    def on_joint_state(self, msg: JointState) -> None:
        try:
            q, dq, stamp = self.joint_input.read(msg)
        except ValueError as err:   # e.g. a robot without the bundle's joints: the filter holds (no fresh state)
            self.bad_states += 1
            self.log(self.node.logger.error, "joint_states",
                     f"{self.p['joint_states_topic']} ({self.bad_states} unusable): {err}")
            return
        self.q, self.dq = q, dq
        self.state_stamp_ns = stamp
        fingers = [i for i, name in enumerate(msg.name) if name in self.io.gripper_joints]
        if fingers:
            self.gripper_width = float(sum(msg.position[i] for i in fingers))

    def on_goal(self, msg: Float64MultiArray) -> None:
        goal = np.asarray(msg.data, dtype=float)
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            self.log(self.node.logger.error, "goal",
                     f"{self.p['goal_topic']}: expected 3 finite numbers, got {list(msg.data)[:10]}")
            return
        if self.goal is None or not np.array_equal(goal, self.goal):
            self.new_episode()   # a new task: the planner's warm start and the frames belong to the old one
        self.goal = goal

    def on_object(self, msg: Float64MultiArray) -> None:
        pose = np.asarray(msg.data, dtype=float)
        if pose.shape == (7,) and np.all(np.isfinite(pose)):
            self.object_pose = pose

    def on_image(self, msg: Image) -> None:
        try:
            self.image = array_from_image(msg)
        except ValueError as err:
            self.log(self.node.logger.error, "image", f"{self.p['image_topic']}: {err}")

    def on_estop(self, msg: Bool) -> None:
        """The plain e-stop topic: with sources, anyone may press, and False releases nothing."""
        if self.estop_sources is None:
            was = self.safety.estop_latched
            self.safety.estop(bool(msg.data))
            if msg.data and not was:
                self.node.logger.warning("E-STOP: holding until released and reset")
                self.hold_now()
        elif msg.data:
            self.estop_sources.press_anonymous()
            self.apply_estop()
        else:
            self.log(self.node.logger.info, "estop_false",
                     f"{self.p['estop_topic']}: False ignored; with estop_sources a stop is released by the "
                     f"sources and cleared by a reset from one of them")

    def on_estop_source(self, source: str, msg: Bool) -> None:
        self.estop_sources.heard(source, bool(msg.data), time.monotonic())
        self.apply_estop()

    def apply_estop(self) -> None:
        """With sources: feed the filter whether any source holds (pressed, silent, or an unreset press)."""
        if self.estop_sources is None:
            return
        self.estop_reasons = self.estop_sources.holding(time.monotonic())
        if self.awaiting_sources:   # start-up: hold until every source has been heard, released, once
            self.safety.estop(bool(self.estop_reasons))
            if not self.estop_reasons:
                self.awaiting_sources = False
                self.safety.reset()
                self.node.logger.info(f"e-stop sources {list(self.estop_sources.names)} heard and released: starting")
            return
        was = self.safety.estop_latched
        self.safety.estop(bool(self.estop_reasons))
        if self.safety.estop_latched and not was:
            self.node.logger.warning(f"E-STOP: holding ({'; '.join(self.estop_reasons)})")
            self.hold_now()

    def on_estop_reset(self, msg: Bool, source: str | None) -> None:
        if not msg.data:
            return
        if self.estop_sources is None:
            who = "an unnamed publisher (no estop_sources configured)"
        elif source is None:
            self.safety.counters["reset_refused"] += 1
            self.log(self.node.logger.warning, "reset_unnamed",
                     f"reset on {self.p['estop_reset_topic']} refused: it names no source; the sources "
                     f"{list(self.estop_sources.names)} reset on {self.p['estop_reset_topic']}/<source>")
            return
        else:
            who = source
            accepted, why = self.estop_sources.reset(source, time.monotonic())
            if not accepted:
                self.safety.counters["reset_refused"] += 1
                self.log(self.node.logger.warning, f"reset:{source}", f"reset by {source} refused: {why}")
                return
            self.apply_estop()
        if self.safety.reset():
            self.new_episode()
            self.node.logger.info(f"e-stop/fault reset by {who}: resuming (start ramp)")
        else:
            self.log(self.node.logger.warning, "reset_active", f"reset by {who} refused: the e-stop is still active")

    # ---------------------------------------------------------------- the control loop
    def tick(self) -> None:
        start = time.perf_counter()
        if self.last_tick is not None:   # the timer skips periods it could not keep; count them
            skipped = round((start - self.last_tick) / self.period_s) - 1
            self.missed += max(0, skipped)
        self.last_tick = start
        self.ticks += 1
        self.apply_estop()      # first: a source that fell silent stops the arm even when no message comes
        if not self.control(run_policy=not self.safety.estop_latched):
            return
        end = time.perf_counter()
        self.compute_s.append(end - start)
        if end - start > self.period_s:
            self.missed += 1
        if self.state_stamp_ns is not None:
            self.age_s.append((self.node.now_ns() - self.state_stamp_ns) * 1e-9)

    def control(self, run_policy: bool) -> bool:
        """One pass through the filter (the policy's command when run_policy, else a hold); True if published."""
        command, gripper = None, 0.0
        if self.q is not None and run_policy:
            try:
                command, gripper = self.compute_command()
            except Exception as err:  # noqa: BLE001 - a failing policy must hold the arm, not crash the node
                self.policy_errors += 1
                self.log(self.node.logger.error, "policy", f"policy failed ({self.policy_errors} times): {err!r}")
        now = self.node.now_ns()
        stamp = self.state_stamp_ns if self.state_stamp_ns is not None else 0
        safe = self.safety.filter(command, self.q, self.dq, stamp, now, time.monotonic_ns())
        if safe.status != self.last_status and not (safe.status in NORMAL and self.last_status in NORMAL):
            log = self.node.logger.info if safe.status in NORMAL else self.node.logger.warning
            self.log(log, f"status:{safe.status.value}",
                     f"safety: {safe.status.value}{': ' + safe.detail if safe.detail else ''}")
        if safe.status != self.last_status:
            self.status_since_ns = now
        self.last_status = safe.status
        if safe.positions is None:
            return False
        self.publish_arm(safe.positions)
        self.previous_targets = np.asarray(safe.positions, dtype=float)
        if command is not None and not safe.status.holding and self.gripper_pub is not None:
            width = float(np.clip(gripper, 0.0, self.io.gripper_max_width))
            self.gripper_pub.publish(float64_multi_array([width]))
        self.published += 1
        if command is not None and not safe.status.holding:
            self.first = False
        return True

    def hold_now(self) -> None:
        """An e-stop press: the hold goes out now, not at the next period (limits are per elapsed time)."""
        if self.q is not None:
            self.control(run_policy=False)

    def new_episode(self) -> None:
        self.first = True
        self.io.reset()   # the last-actions observation starts from zeros, as in simulation
        if self.frames is not None:
            self.frames.reset()

    def compute_command(self) -> tuple[np.ndarray | None, float]:
        """Joint targets and finger gap from the policy, or (None, 0) while an input it needs is missing."""
        io = self.io
        if (self.goal is None and io.needs_goal) or (self.object_pose is None and io.needs_object) or \
                (self.image is None and io.needs_pixels):
            return None, 0.0
        previous = self.q if self.previous_targets is None else self.previous_targets
        width = self.gripper_width if self.gripper_width is not None else 0.0
        state = io.state(self.q, self.dq, width, self.goal, self.object_pose) if io.obs_layout else None
        pixels = None
        if io.needs_pixels:
            if self.image.shape != (io.pixels_shape[1], io.pixels_shape[2], 3):
                raise ValueError(f"camera image {self.image.shape} but the policy takes "
                                 f"{io.pixels_shape[1]}x{io.pixels_shape[2]} rgb")
            pixels = self.frames.push(self.image)
        action = self.runtime.act(state, pixels, first=self.first)
        return io.targets(action, previous)

    def publish_arm(self, positions: np.ndarray) -> None:
        if self.p["command_interface"] == "forward":
            self.arm_pub.publish(float64_multi_array(positions))
        else:   # reach the target one period from now, as the policy expects
            self.arm_pub.publish(joint_trajectory(self.hardware_names, positions, self.period_s))

    # ---------------------------------------------------------------- reports
    def diagnostics(self) -> dict:
        def pct(values, q):
            return float(np.percentile(np.asarray(values), q) * 1e3) if values else math.nan

        return {"stamp_ns": self.node.now_ns(), "rate_hz": self.rate_hz, "mode": self.p["mode"], "ticks": self.ticks,
                "published": self.published, "missed_deadlines": self.missed, "policy_errors": self.policy_errors,
                "compute_ms_p50": pct(self.compute_s, 50), "compute_ms_p99": pct(self.compute_s, 99),
                "obs_age_ms_p50": pct(self.age_s, 50), "obs_age_ms_p99": pct(self.age_s, 99),
                "status": self.last_status.value if self.last_status else None,
                "status_since_ns": self.status_since_ns,
                "estop_latched": self.safety.estop_latched, "estop_reasons": self.estop_reasons,
                "safety": dict(self.safety.counters), "limits": dict(self.safety.limit_counters),
                "dropped_samples": self.node.dropped_samples(), "velocity_estimated": self.joint_input.estimated}

    def publish_diagnostics(self) -> None:
        report = self.diagnostics()
        self.diag_pub.publish(String(data=json.dumps(report)))
        if self.missed > self.missed_reported:   # missed deadlines are worth a log line; the rest is on the topic
            self.node.logger.warning(f"missed {self.missed - self.missed_reported} deadline(s) ({self.missed} of "
                                     f"{self.ticks} periods); compute p50/p99 {report['compute_ms_p50']:.2f}/"
                                     f"{report['compute_ms_p99']:.2f} ms at {self.rate_hz:g} Hz")
            self.missed_reported = self.missed
        self.node.logger.debug(json.dumps(report))

    def close(self) -> None:
        report = self.diagnostics()
        self.node.logger.info(f"stopping: {report['published']} commands in {report['ticks']} periods, "
                              f"{report['missed_deadlines']} missed deadlines, compute p50/p99 "
                              f"{report['compute_ms_p50']:.2f}/{report['compute_ms_p99']:.2f} ms, safety "
                              f"{report['safety']}")


def subscribe_latched_or_not(node: Node, msg_type, topic: str, callback, max_sample_bytes: int | None = None) -> None:
    """Hear every publisher of `topic`: a transient-local reader matches only transient-local ("latched")
    writers, and gets their last value on joining; a volatile reader matches every writer (`ros2 topic pub` is
    volatile) but gets no history. The e-stop must never be missed, so both."""
    node.create_subscription(msg_type, topic, callback, replace(QOS_LATCHED, max_sample_bytes=max_sample_bytes))
    node.create_subscription(msg_type, topic, callback, replace(QOS_DEFAULT, max_sample_bytes=max_sample_bytes))


def main(argv=None) -> int:
    from hardware.transport import run_node

    return run_node("policy", PolicyNode, argv, parameters=PARAMETERS, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
