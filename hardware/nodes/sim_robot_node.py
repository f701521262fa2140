"""sim_robot_node: the simulated arm of sim/ (MuJoCo or PyBullet) behaving on the wire like a ros2_control robot,
so the whole stack (policy_node, safety filter, recorder) runs end to end without hardware.

Like a ros2_control robot with joint_state_broadcaster and position controllers, it

  publishes   /joint_states                          sensor_msgs/JointState (arm + finger joints, every period)
  accepts     /<forward_controller>/commands         std_msgs/Float64MultiArray (arm joint position targets)
              /<trajectory_controller>/joint_trajectory  trajectory_msgs/JointTrajectory (interpolated linearly;
                                                     a header stamp in the future starts it then, as JTC does)
              /<gripper_controller>/commands         std_msgs/Float64MultiArray (one value: finger gap, m)

and, for tasks (things a real cell gets from perception or an operator):

  publishes   /goal                                  std_msgs/Float64MultiArray (x, y, z; latched)
              /object_pose                           std_msgs/Float64MultiArray (x, y, z, qw, qx, qy, qz)
              ~/task_state                           std_msgs/String (JSON: ee_pos, goal, distance, success,
                                                     dense_reward, sparse_reward (the task's, of the present
                                                     state), episode (episodes started), ...)
              ~/ready                                std_msgs/Bool True, latched: at start and once each ~/reset
                                                     is done (what a real cell's reset script or operator says)
              /camera/color/image_raw                sensor_msgs/Image rgb8, when publish_images (pixel policies)
  accepts     ~/reset                                std_msgs/Float64MultiArray: [] next episode (sampled goal and
                                                     object), [x, y, z] that goal; the arm stays where it is

Physics runs in real time: each tick steps as many periods of 1/rate_hz as wall time asks for (at most
`max_catch_up` at once; beyond that the simulation drops time and counts an overrun). Time stamps mean what a
ros2_control robot's do: simulated period k is the node-clock instant `start + k / rate_hz`; a /joint_states
message is stamped with the period at which its state was measured (not when it happened to be published), and
a command received at instant t takes effect at the first period at or after t + latency, however late the
executor runs the tick that steps it (system identification relies on both, calibration/fit.py). As a forward command
controller does, the arm keeps the last target when commands stop (policy node killed or holding): a robot
must never go limp or move on its own when its commander dies. After `command_timeout_s` without a command
the node says so once in the log and in ~/task_state ("command_stale").

The "real" robot's hidden physics: `params_file` (sim/params.py format, e.g. what calibration/ identified or a
deliberately different arm). Its `action_latency` (control steps at `params_control_hz`) and `obs_noise` (rad)
add to this node's own `command_latency_s` and `joint_state_noise` (independent sources: latencies add, noise
standard deviations add in quadrature).

hardware/ imports sim/ only here (ARCHITECTURE.md).
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from typing import Sequence

import numpy as np

from hardware.messages import (Bool, Float64MultiArray, Image, JointTrajectory, String, float64_multi_array,
                               image_from_array, joint_state, JointState, ns_from_time)
from hardware.transport.base import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA, Node

# Same topic as camera_node's colour image, so a pixel policy cannot tell the simulated camera from a RealSense.
COLOR_IMAGE = "/camera/color/image_raw"
GOAL_TOPIC = "/goal"
OBJECT_TOPIC = "/object_pose"

PARAMETERS: dict[str, object] = {
    "robot": "panda",                     # sim/robots/<name>.yaml or a path
    "backend": "mujoco",                  # mujoco | pybullet
    "task": "reach",                      # sim/tasks: decides start posture, goal and object placement
    "params_file": "",                    # robot parameters (sim/params.py format); empty: nominal model
    "params_control_hz": 20.0,            # the control rate the params file's action_latency is counted in
    "seed": 0,                            # first episode's seed; each ~/reset uses the next
    "rate_hz": 250.0,                     # physics period and /joint_states rate
    "physics_dt": 0.002,                  # s per physics step, as in training (the period is a whole multiple)
    "max_catch_up": 10,                   # periods stepped at most per tick before time is dropped
    "forward_controller": "forward_position_controller",
    "trajectory_controller": "joint_trajectory_controller",
    "gripper_controller": "gripper_controller",
    "command_latency_s": 0.0,             # commands reach the actuators this long after they arrive
    "joint_state_noise": 0.0,             # rad, std of Gaussian noise on published arm positions
    "command_timeout_s": 0.5,             # no command for this long: log and report "command_stale"
    "task_rate_hz": 10.0,                 # ~/task_state and /object_pose rate
    "publish_images": False,
    "image_width": 64,
    "image_height": 64,
    "image_rate_hz": 10.0,
    "camera": "front",
    "frame_id": "base_link",
}


class SimRobot:
    def __init__(self, node: Node):
        from sim.env import ArmEnv  # MuJoCo/PyBullet load only when the simulated robot runs

        self.node = node
        p = {name: node.declare_parameter(name, default) for name, default in PARAMETERS.items()}
        self.p = p
        if not p["rate_hz"] > 0 or not p["physics_dt"] > 0:
            raise ValueError(f"{node.name}: rate_hz ({p['rate_hz']}) and physics_dt ({p['physics_dt']}) must be > 0")
        for name in ("command_latency_s", "joint_state_noise", "command_timeout_s"):
            if not p[name] >= 0:
                raise ValueError(f"parameter {node.name}.{name}: expected >= 0, got {p[name]}")
        self.env = ArmEnv(task=p["task"], backend=p["backend"], robot=p["robot"],
                          params=p["params_file"] or None, control_hz=p["rate_hz"], physics_dt=p["physics_dt"],
                          render_size=(p["image_width"], p["image_height"]), camera=p["camera"])
        self.physics = self.env.physics
        self.robot = self.env.robot
        self.dt = 1.0 / p["rate_hz"]
        # env.action_latency holds the params file's value (control steps at params_control_hz), obs_noise its noise.
        self.latency_s = p["command_latency_s"] + self.env.action_latency / p["params_control_hz"]
        self.noise = math.hypot(p["joint_state_noise"], self.env.obs_noise)
        self.rng = np.random.default_rng(p["seed"])
        self.joint_names = list(self.robot.arm_joints) + list(self.robot.gripper_joints)

        self.pending: deque[tuple[int, str, object]] = deque()   # (apply at node-clock ns, kind, payload)
        self.dt_ns = int(round(self.dt * 1e9))
        self.segments: list[tuple[float, np.ndarray, float, np.ndarray]] = []   # trajectory (t0, q0, t1, q1)
        self.sim_time = 0.0
        self.steps = 0
        self.overruns = 0
        self.commands_received = 0
        self.last_command_wall = None
        self.stale_reported = False
        self.publish_joint_states = True   # fault injection for tests: False stalls /joint_states
        self.publish_camera = True         # and False stalls the camera
        self.episode_seed = p["seed"]
        self.episode = 0                   # episodes started
        self.start_episode()

        sensor = QOS_DEFAULT   # joint_state_broadcaster publishes reliable; best-effort readers match too
        self.state_pub = node.create_publisher(JointState, "/joint_states", sensor)
        self.goal_pub = node.create_publisher(Float64MultiArray, GOAL_TOPIC, QOS_LATCHED)
        self.object_pub = node.create_publisher(Float64MultiArray, OBJECT_TOPIC, QOS_DEFAULT)
        self.task_pub = node.create_publisher(String, "~/task_state", QOS_DEFAULT)
        self.ready_pub = node.create_publisher(Bool, "~/ready", QOS_LATCHED)
        self.image_pub = (node.create_publisher(Image, COLOR_IMAGE, QOS_SENSOR_DATA) if p["publish_images"]
                          else None)
        node.create_subscription(Float64MultiArray, f"/{p['forward_controller']}/commands", self.on_forward,
                                 QOS_DEFAULT)
        node.create_subscription(JointTrajectory, f"/{p['trajectory_controller']}/joint_trajectory",
                                 self.on_trajectory, QOS_DEFAULT)
        node.create_subscription(Float64MultiArray, f"/{p['gripper_controller']}/commands", self.on_gripper,
                                 QOS_DEFAULT)
        node.create_subscription(Float64MultiArray, "~/reset", self.on_reset, QOS_DEFAULT)
        self.publish_goal()
        self.ready_pub.publish(Bool(data=True))
        # Simulated time 0 is this instant on both clocks: monotonic for stepping, the node clock for stamps.
        self.wall_start = time.monotonic()
        self.clock_start_ns = node.now_ns()
        node.create_timer(self.dt, self.tick)
        node.create_timer(1.0 / p["task_rate_hz"], self.publish_task)
        if self.image_pub is not None:
            node.create_timer(1.0 / p["image_rate_hz"], self.publish_image)
        node.logger.info(f"simulated {self.robot.name} on {p['backend']} ({p['task']}), {p['rate_hz']:g} Hz, "
                         f"command latency {self.latency_s * 1e3:.1f} ms, joint noise {self.noise:g} rad")

    # ---------------------------------------------------------------- episodes
    def start_episode(self) -> None:
        """The first episode: the task's start posture (env.reset), goal and object."""
        self.env.reset(seed=self.episode_seed)
        self.episode_seed += 1
        self.episode += 1
        self.arm_target = self.physics.arm_qpos()
        self.gripper_target = float(self.physics.gripper_width())
        self.last_width = self.gripper_target

    def next_episode(self, goal: Sequence[float] | None = None) -> None:
        """A new goal and object placement; the arm stays where it is (holding its present position, as an
        operator resetting a real cell would not teleport the arm), with velocities zeroed by the reset."""
        rng = np.random.default_rng(self.episode_seed)
        self.episode_seed += 1
        self.episode += 1
        object_pose = self.env.task.sample_object(rng)
        sampled = self.env.task.sample_goal(rng, object_pose)
        q, width = self.physics.arm_qpos(), float(self.physics.gripper_width())
        self.physics.reset(q, width, object_pose)
        self.env.goal = sampled if goal is None else np.asarray(goal, dtype=float)
        self.physics.set_goal_marker(self.env.goal)
        self.arm_target, self.gripper_target = q, width
        self.pending.clear()
        self.segments = []

    def on_reset(self, msg: Float64MultiArray) -> None:
        if len(msg.data) not in (0, 3) or not all(math.isfinite(v) for v in msg.data):
            self.node.logger.error(f"~/reset: expected [] or a finite goal [x, y, z], got {list(msg.data)}")
            return
        self.next_episode(list(msg.data) or None)
        self.publish_goal()   # before ready: a robot environment reads the new goal once the scene is ready
        self.ready_pub.publish(Bool(data=True))
        self.node.logger.info(f"new episode, goal {np.round(self.env.goal, 3).tolist()}")

    def publish_goal(self) -> None:
        self.goal_pub.publish(float64_multi_array(self.env.goal))

    # ---------------------------------------------------------------- commands (checked like a controller does)
    def _arrived(self, kind: str, payload, start_ns: int = 0) -> None:
        """Queue a command for the first period at or after max(arrival, start_ns) + latency; start_ns is a
        trajectory's header stamp (0: start on arrival, as JTC reads a zero stamp)."""
        now = time.monotonic()
        self.commands_received += 1
        self.last_command_wall = now
        self.stale_reported = False
        # The instant of arrival on the node clock (the sim may not have stepped up to it yet). Kept as a clock
        # instant, not a simulated time, so a command stays due when it was even if the sim drops periods.
        arrival_ns = self.clock_start_ns + int(max(now - self.wall_start, self.sim_time) * 1e9)
        when = max(arrival_ns, start_ns) + int(round(self.latency_s * 1e9))
        if kind == "trajectory":   # JTC's replacement: a new trajectory discards what was to start after it
            self.pending = deque(e for e in self.pending if not (e[1] == "trajectory" and e[0] >= when))
        index = len(self.pending)
        while index and self.pending[index - 1][0] > when:   # keep the queue in time order
            index -= 1
        self.pending.insert(index, (when, kind, payload))

    def on_forward(self, msg: Float64MultiArray) -> None:
        q = np.asarray(msg.data, dtype=float)
        if q.shape != (self.robot.n_arm,) or not np.all(np.isfinite(q)):
            self.node.logger.error(f"{self.p['forward_controller']}/commands: expected {self.robot.n_arm} finite "
                                   f"values, got {list(msg.data)}: ignored")
            return
        self._arrived("arm", q)

    def on_trajectory(self, msg: JointTrajectory) -> None:
        arm = list(self.robot.arm_joints)
        if sorted(msg.joint_names) != sorted(arm) or not msg.points:
            self.node.logger.error(f"joint_trajectory: expected points for joints {arm}, got {list(msg.joint_names)} "
                                   f"with {len(msg.points)} points: ignored")
            return
        order = [list(msg.joint_names).index(n) for n in arm]
        points = []
        for point in msg.points:
            q = np.asarray(point.positions, dtype=float)
            if q.shape != (len(arm),) or not np.all(np.isfinite(q)):
                self.node.logger.error("joint_trajectory: a point's positions are missing or not finite: ignored")
                return
            points.append((ns_from_time(point.time_from_start) * 1e-9, q[order]))
        self._arrived("trajectory", points, ns_from_time(msg.header.stamp))

    def on_gripper(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != 1 or not math.isfinite(msg.data[0]):
            self.node.logger.error(f"{self.p['gripper_controller']}/commands: expected one finger gap (m), got "
                                   f"{list(msg.data)}: ignored")
            return
        self._arrived("gripper", float(np.clip(msg.data[0], 0.0, self.robot.gripper_max_width)))

    def _apply_due(self) -> None:
        period_ns = self.clock_start_ns + self.steps * self.dt_ns      # the instant of the period starting now
        while self.pending and self.pending[0][0] <= period_ns:
            _, kind, payload = self.pending.popleft()
            if kind == "arm":
                self.arm_target, self.segments = payload, []
            elif kind == "gripper":
                self.gripper_target = payload
            else:   # a new trajectory replaces the old one, starting from the present target (as JTC does)
                start, q0, self.segments = self.sim_time, self.arm_target, []
                for t_from_start, q in payload:
                    t1 = self.sim_time + max(t_from_start, 0.0)
                    self.segments.append((start, q0, t1, q))
                    start, q0 = t1, q
        if self.segments:
            t = self.sim_time
            while self.segments and t >= self.segments[0][2]:
                self.arm_target = self.segments.pop(0)[3]
            if self.segments:
                t0, q0, t1, q1 = self.segments[0]
                self.arm_target = q0 + (q1 - q0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    # ---------------------------------------------------------------- real-time loop
    def tick(self) -> None:
        due = int((time.monotonic() - self.wall_start) / self.dt) - self.steps
        if due > self.p["max_catch_up"]:
            self.overruns += 1
            dropped = due - self.p["max_catch_up"]
            self.wall_start += dropped * self.dt      # keep real time: drop what cannot be caught up
            self.clock_start_ns += dropped * self.dt_ns
            self.node.logger.warning(f"physics behind real time: dropped {dropped} periods ({self.overruns} overruns)")
            due = self.p["max_catch_up"]
        for _ in range(due):
            self._apply_due()
            self.physics.command(self.arm_target, self.gripper_target)
            self.physics.step()
            self.steps += 1
            self.sim_time = self.steps * self.dt
            if self.publish_joint_states:   # every period, as joint_state_broadcaster does on every update
                self.publish_state()
        if (self.last_command_wall is not None and not self.stale_reported and self.p["command_timeout_s"] > 0
                and time.monotonic() - self.last_command_wall > self.p["command_timeout_s"]):
            self.stale_reported = True
            self.node.logger.warning(f"no command for {self.p['command_timeout_s']} s: holding the last target")

    def publish_state(self) -> None:
        q = self.physics.arm_qpos()
        if self.noise > 0:
            q = q + self.rng.normal(0.0, self.noise, q.shape)
        width = self.physics.gripper_width()
        finger_speed = (width - self.last_width) / self.dt / len(self.robot.gripper_joints)
        self.last_width = width
        n_fingers = len(self.robot.gripper_joints)
        position = np.concatenate([q, np.full(n_fingers, width / n_fingers)])
        velocity = np.concatenate([self.physics.arm_qvel(), np.full(n_fingers, finger_speed)])
        measured_ns = self.clock_start_ns + self.steps * self.dt_ns   # the period this state belongs to
        self.state_pub.publish(joint_state(self.joint_names, position, velocity, stamp_ns=measured_ns,
                                           frame_id=self.p["frame_id"]))

    def task_state(self) -> dict:
        state = self.env.task_state()
        stale = (self.last_command_wall is not None and self.p["command_timeout_s"] > 0
                 and time.monotonic() - self.last_command_wall > self.p["command_timeout_s"])
        return {"stamp_ns": self.node.now_ns(), "sim_time_s": self.sim_time, "ee_pos": state.ee_pos.tolist(),
                "goal": state.goal.tolist(), "distance": self.env.task.distance(state),
                "success": bool(self.env.task.success(state)), "dense_reward": float(self.env.task.dense_reward(state)),
                "sparse_reward": float(self.env.task.sparse_reward(state)), "episode": self.episode, "object_pose": self.physics.object_pose().tolist(),
                "arm_qpos": self.physics.arm_qpos().tolist(), "arm_target": np.asarray(self.arm_target).tolist(),
                "commands_received": self.commands_received, "command_stale": bool(stale),
                "overruns": self.overruns}

    def publish_task(self) -> None:
        self.object_pub.publish(float64_multi_array(self.physics.object_pose()))
        self.task_pub.publish(String(data=json.dumps(self.task_state())))

    def publish_image(self) -> None:
        if not self.publish_camera:
            return
        pixels = self.physics.render(self.p["image_width"], self.p["image_height"], self.p["camera"])
        self.image_pub.publish(image_from_array(np.ascontiguousarray(pixels), "rgb8", self.node.now_ns(),
                                                "camera_color_optical_frame"))

    def close(self) -> None:
        self.env.close()


def main(argv=None) -> int:
    from hardware.transport import run_node

    return run_node("sim_robot", SimRobot, argv, parameters=PARAMETERS, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
