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
NaN, no or stale joint states, limits, the e-stop. The e-stop (`estop_topic`, std_msgs/Bool) latches until a
True on `estop_reset_topic` while the e-stop is released. The gripper is commanded only while the filter
passes the policy's command (OK/LIMITED/WORKSPACE), so a hold also freezes the gripper.

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

from hardware.messages import (Bool, Float64MultiArray, Image, JointState, JointTrajectory, String, array_from_image,
                               float64_multi_array, joint_state_arrays, joint_trajectory, ns_from_time)
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
    "seed": 0,                                     # planner sampling noise
    "diagnostics_period_s": 1.0,
    **{f"safety.{k}": v for k, v in SAFETY_DEFAULTS.to_dict().items() if k != "control_period_s"},
}
COMMAND_INTERFACES = ("forward", "trajectory")
MODES = ("policy", "planner")
LATENCY_WINDOW = 2000   # periods kept for the percentiles
# The policy's command passes (maybe clipped): changes among these are not worth a log line each period.
NORMAL = {SafetyStatus.OK, SafetyStatus.LIMITED, SafetyStatus.WORKSPACE}


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

        node.create_subscription(JointState, p["joint_states_topic"], self.on_joint_state, QOS_SENSOR_DATA)
        if p["goal_topic"]:
            subscribe_latched_or_not(node, Float64MultiArray, p["goal_topic"], self.on_goal)
        if self.io.needs_object:
            node.create_subscription(Float64MultiArray, p["object_topic"], self.on_object, QOS_DEFAULT)
        if self.io.needs_pixels:
            node.create_subscription(Image, p["image_topic"], self.on_image, QOS_SENSOR_DATA)
        subscribe_latched_or_not(node, Bool, p["estop_topic"], self.on_estop)
        node.create_subscription(Bool, p["estop_reset_topic"], self.on_estop_reset, QOS_DEFAULT)
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

    # ---------------------------------------------------------------- inputs
    def on_joint_state(self, msg: JointState) -> None:
        try:
            q, dq, _ = joint_state_arrays(msg, self.joint_names)
        except ValueError as err:   # e.g. a robot without the bundle's joints: the filter holds (no fresh state)
            self.bad_states += 1
            if self.bad_states == 1 or self.bad_states % 1000 == 0:
                self.node.logger.error(f"{self.p['joint_states_topic']} ({self.bad_states} unusable): {err}")
            return
        self.q, self.dq = q, dq
        self.state_stamp_ns = ns_from_time(msg.header.stamp)
        fingers = [i for i, name in enumerate(msg.name) if name in self.io.gripper_joints]
        if fingers:
            self.gripper_width = float(sum(msg.position[i] for i in fingers))

    def on_goal(self, msg: Float64MultiArray) -> None:
        goal = np.asarray(msg.data, dtype=float)
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            self.node.logger.error(f"{self.p['goal_topic']}: expected 3 finite numbers, got {list(msg.data)}")
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
            self.node.logger.error(f"{self.p['image_topic']}: {err}")

    def on_estop(self, msg: Bool) -> None:
        was = self.safety.estop_latched
        self.safety.estop(bool(msg.data))
        if msg.data and not was:
            self.node.logger.warning("E-STOP: holding until released and reset")

    def on_estop_reset(self, msg: Bool) -> None:
        if not msg.data:
            return
        if self.safety.reset():
            self.new_episode()
            self.node.logger.info("e-stop/fault reset: resuming (start ramp)")
        else:
            self.node.logger.warning("reset refused: the e-stop is still active")

    # ---------------------------------------------------------------- the control loop
    def tick(self) -> None:
        start = time.perf_counter()
        if self.last_tick is not None:   # the timer skips periods it could not keep; count them
            skipped = round((start - self.last_tick) / self.period_s) - 1
            self.missed += max(0, skipped)
        self.last_tick = start
        self.ticks += 1
        command = None
        if self.q is not None:
            try:
                command, gripper = self.compute_command()
            except Exception as err:  # noqa: BLE001 - a failing policy must hold the arm, not crash the node
                self.policy_errors += 1
                if self.policy_errors == 1 or self.policy_errors % 100 == 0:
                    self.node.logger.error(f"policy failed ({self.policy_errors} times): {err!r}")
        now = self.node.now_ns()
        stamp = self.state_stamp_ns if self.state_stamp_ns is not None else 0
        safe = self.safety.filter(command, self.q, self.dq, stamp, now)
        if safe.status != self.last_status and not (safe.status in NORMAL and self.last_status in NORMAL):
            log = self.node.logger.info if safe.status in NORMAL else self.node.logger.warning
            log(f"safety: {safe.status.value}{': ' + safe.detail if safe.detail else ''}")
        self.last_status = safe.status
        if safe.positions is None:
            return
        self.publish_arm(safe.positions)
        self.previous_targets = np.asarray(safe.positions, dtype=float)
        if command is not None and not safe.status.holding and self.gripper_pub is not None:
            width = float(np.clip(gripper, 0.0, self.io.gripper_max_width))
            self.gripper_pub.publish(float64_multi_array([width]))
        self.published += 1
        if command is not None and not safe.status.holding:
            self.first = False
        end = time.perf_counter()
        self.compute_s.append(end - start)
        if end - start > self.period_s:
            self.missed += 1
        if self.state_stamp_ns is not None:
            self.age_s.append((self.node.now_ns() - self.state_stamp_ns) * 1e-9)

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
            self.arm_pub.publish(joint_trajectory(self.joint_names, positions, self.period_s))

    # ---------------------------------------------------------------- reports
    def diagnostics(self) -> dict:
        def pct(values, q):
            return float(np.percentile(np.asarray(values), q) * 1e3) if values else math.nan

        return {"stamp_ns": self.node.now_ns(), "rate_hz": self.rate_hz, "mode": self.p["mode"], "ticks": self.ticks,
                "published": self.published, "missed_deadlines": self.missed, "policy_errors": self.policy_errors,
                "compute_ms_p50": pct(self.compute_s, 50), "compute_ms_p99": pct(self.compute_s, 99),
                "obs_age_ms_p50": pct(self.age_s, 50), "obs_age_ms_p99": pct(self.age_s, 99),
                "status": self.last_status.value if self.last_status else None,
                "estop_latched": self.safety.estop_latched, "safety": dict(self.safety.counters),
                "limits": dict(self.safety.limit_counters)}

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


def subscribe_latched_or_not(node: Node, msg_type, topic: str, callback) -> None:
    """Hear every publisher of `topic`: a transient-local reader matches only transient-local ("latched")
    writers, and gets their last value on joining; a volatile reader matches every writer (`ros2 topic pub` is
    volatile) but gets no history. The e-stop must never be missed, so both."""
    node.create_subscription(msg_type, topic, callback, QOS_LATCHED)
    node.create_subscription(msg_type, topic, callback, QOS_DEFAULT)


def main(argv=None) -> int:
    from hardware.transport import run_node

    return run_node("policy", PolicyNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
