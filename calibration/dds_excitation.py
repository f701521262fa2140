"""Play an excitation on a robot over DDS (ROS 2 wire conventions) while the recorder node writes a rosbag2.

The arm is driven as a ros2_control forward position controller expects: std_msgs/Float64MultiArray joint
position targets on `command_topic` at the design's command rate. Order of events:

1. (arm=sim) sim_robot_node starts as its own process with the hidden parameters file, as `robot-rl deploy
   robot=sim` starts it (hardware/deploy.py's process handling is reused here).
2. Wait for /joint_states and for the controller's subscription on the command topic (clear errors naming
   them when they do not come).
3. The recorder node starts as its own process recording /joint_states and the command topic; the excitation
   waits until it has subscribed to the command topic.
4. From the measured pose, a smooth ramp (quintic, at most `ramp_velocity`) to the trajectory's start, a short
   hold, the excitation, a hold at its end.
5. Any doubt (joint states stale, tracking error beyond `max_tracking_error`, a node process gone) stops
   the motion at once: the measured position is commanded once (the forward controller then holds it) and the
   run fails with the reason.
6. The recorder is stopped (SIGINT: it closes the bag atomically), then the simulated arm; the bag is checked
   (both topics present, every command published recorded).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.command_errors import CommandError
from calibration.recording_io import DEFAULT_COMMAND_TOPIC, JOINT_STATES_TOPIC

_FORWARD_TOPIC = re.compile(r"^/([A-Za-z_][A-Za-z0-9_]*)/commands$")
_TRAJECTORY_TOPIC = re.compile(r"^/([A-Za-z_][A-Za-z0-9_]*)/joint_trajectory$")


class ExcitationAborted(CommandError):
    """The motion was stopped for safety (the arm holds where it was when stopped)."""


@dataclass
class DdsRun:
    arm: str = "sim"                          # sim: start sim_robot_node | real: the arm's ros2_control is running
    sim_params: str = ""                      # arm=sim: the simulated arm's hidden parameters file
    command_topic: str = DEFAULT_COMMAND_TOPIC
    domain_id: int = -1                       # -1: ROS_DOMAIN_ID (0 when unset)
    local_only: bool = True                   # loopback only (false: the robot's network)
    state_timeout_s: float = 20.0             # first /joint_states (includes sim start-up)
    stale_after_s: float = 0.5                # joint states older than this during motion: stop
    ramp_velocity: float = 0.3                # rad/s, peak joint speed of the ramp to the start
    hold_s: float = 0.5                       # at rest before and after the excitation
    max_tracking_error: float = 0.3           # rad, |measured - commanded| beyond this: stop
    # On a joint_trajectory topic each command is a one-point trajectory whose header stamp is its scheduled
    # instant + lead_s: the controller starts it then (as joint_trajectory_controller does), so when a command
    # takes effect no longer depends on when a busy computer got round to sending or receiving it.
    lead_s: float = 0.1
    storage: str = "mcap"
    log: object = field(default=print, repr=False)


@dataclass
class DdsResult:
    recording: Path
    commands_published: int
    joint_states_received: int
    start_error: float                        # rad, max |measured - trajectory start| before the ramp
    publish_jitter_ms: dict                   # p50/p99/max of |actual - scheduled| publish time
    sim_overruns: int | None                  # arm=sim: periods the real-time sim could not keep up with


def ramp(q_from: np.ndarray, q_to: np.ndarray, command_hz: float, peak_velocity: float) -> np.ndarray:
    """Quintic (minimum-jerk) path from q_from to q_to, at rest at both ends; its peak speed (1.875 x mean)
    stays below peak_velocity on every joint. (K, n) targets, the last equal to q_to; empty when already there."""
    delta = np.asarray(q_to, float) - np.asarray(q_from, float)
    distance = float(np.max(np.abs(delta)))
    if distance < 1e-4:
        return np.empty((0, len(delta)))
    duration = max(1.875 * distance / peak_velocity, 2.0 / command_hz)
    s = np.arange(1, int(np.ceil(duration * command_hz)) + 1) / (duration * command_hz)
    s = np.clip(s, 0.0, 1.0)
    shape = 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5
    return q_from + shape[:, None] * delta


def _node_env(domain_id: int, local_only: bool) -> tuple[dict, str | None]:
    """Environment of the node processes (as hardware/deploy.py gives its nodes) and the DDS config."""
    from hardware.transport.dds import local_only_config

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "ROBOT_RL_TRANSPORT": "dds", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    config = None
    if local_only:
        env["CYCLONEDDS_URI"] = config = local_only_config()
    return env, config


def _sim_command(run: DdsRun, robot_name: str, state_hz: float, command_hz: float, configs: Path) -> list[str]:
    forward = _FORWARD_TOPIC.match(run.command_topic)
    controller = (forward or _TRAJECTORY_TOPIC.match(run.command_topic)).group(1)
    which = "forward_controller" if forward else "trajectory_controller"
    argv = [sys.executable, "-m", "hardware.nodes.sim_robot_node", "--ros-args", "--params-file",
            str(configs / "sim_robot.yaml"), "-p", f"robot:={robot_name}", "-p", f"rate_hz:={float(state_hz)}",
            "-p", f"{which}:={controller}", "-p", f"params_control_hz:={float(command_hz)}",
            # Catch up however late a busy computer runs the sim (in bursts) instead of freezing its physics:
            # dropped periods would be time the recording says passed and the arm did not move through.
            "-p", f"max_catch_up:={int(round(1.0 * state_hz))}"]
    if run.sim_params:
        argv += ["-p", f"params_file:={Path(run.sim_params).resolve()}"]
    return argv


def _recorder_command(run: DdsRun, output: Path, configs: Path) -> list[str]:
    return [sys.executable, "-m", "hardware.nodes.recorder_node", "--ros-args", "--params-file",
            str(configs / "recorder.yaml"), "-p", f"topics:=[{JOINT_STATES_TOPIC}, {run.command_topic}]",
            "-p", f"output:={output}", "-p", f"storage:={run.storage}"]


def check(run: DdsRun, output: Path) -> None:
    if run.arm not in ("sim", "real"):
        raise CommandError(f"dds_arm={run.arm!r}: expected 'sim' (start sim_robot_node) or 'real'")
    if run.arm == "sim" and not (_FORWARD_TOPIC.match(run.command_topic)
                                 or _TRAJECTORY_TOPIC.match(run.command_topic)):
        raise CommandError(f"command_topic={run.command_topic!r}: sim_robot_node listens on "
                           "/<forward_controller>/commands and /<trajectory_controller>/joint_trajectory")
    if not run.lead_s >= 0:
        raise CommandError(f"lead_s={run.lead_s}: expected >= 0")
    if run.sim_params and not Path(run.sim_params).is_file():
        raise CommandError(f"real_params={run.sim_params!r}: file not found")
    if run.sim_params and run.arm != "sim":
        raise CommandError("real_params= is the simulated arm's file; with dds_arm=real the arm is the robot")
    if output.exists():
        raise CommandError(f"recording={output}: already exists (a recording is never overwritten)")
    for name in ("state_timeout_s", "stale_after_s", "ramp_velocity", "max_tracking_error"):
        if not getattr(run, name) > 0:
            raise CommandError(f"{name}={getattr(run, name)}: expected > 0")


def run_excitation(run: DdsRun, robot, commands: np.ndarray, command_hz: float, state_hz: float,
                   output: str | Path) -> DdsResult:
    """Play (K, n_arm) joint targets at command_hz on the arm over DDS, recorded into `output` (a rosbag2)."""
    from hardware import messages as m
    from hardware.deploy import CONFIG_DIR_CANDIDATES, stop_processes
    from hardware.transport.base import QOS_DEFAULT
    from hardware.transport.dds import DdsExecutor, DdsNode, default_domain_id

    output = Path(output)
    check(run, output)
    commands = np.asarray(commands, float)
    if commands.ndim != 2 or commands.shape[1] != robot.n_arm or not np.all(np.isfinite(commands)):
        raise CommandError(f"commands: expected finite ({len(commands)}, {robot.n_arm}) joint targets")
    outside = np.flatnonzero(np.any((commands < robot.lower) | (commands > robot.upper), axis=0))
    if outside.size:
        raise CommandError(f"commands leave the joint limits of {[robot.arm_joints[i] for i in outside]}")
    configs = next((p for p in CONFIG_DIR_CANDIDATES if (p / "recorder.yaml").is_file()), None)
    if configs is None:
        raise CommandError(f"no recorder.yaml in {[str(p) for p in CONFIG_DIR_CANDIDATES]}")
    domain_id = default_domain_id() if run.domain_id < 0 else run.domain_id
    env, dds_config = _node_env(domain_id, run.local_only)
    log = run.log

    node = DdsNode("sysid_excite", domain_id=domain_id, config=dds_config)
    latest: dict = {}
    received = [0]

    def on_state(msg) -> None:
        try:
            q, _, _ = m.joint_state_arrays(msg, robot.arm_joints)
        except ValueError as err:
            latest["bad"] = str(err)
            return
        latest["q"], latest["t"] = q, time.monotonic()
        received[0] += 1

    def on_task(msg) -> None:
        latest["overruns"] = json.loads(msg.data).get("overruns")

    node.create_subscription(m.JointState, JOINT_STATES_TOPIC, on_state, QOS_DEFAULT)
    if run.arm == "sim":
        node.create_subscription(m.String, "/sim_robot/task_state", on_task, QOS_DEFAULT)
    stamped = bool(_TRAJECTORY_TOPIC.match(run.command_topic))
    publisher = node.create_publisher(m.JointTrajectory if stamped else m.Float64MultiArray, run.command_topic,
                                      QOS_DEFAULT)

    def command(target: np.ndarray, start_ns: int = 0):
        if stamped:
            return m.joint_trajectory(robot.arm_joints, target, 0.0, stamp_ns=start_ns)
        return m.float64_multi_array(target)
    executor = DdsExecutor([node])
    processes: dict[str, subprocess.Popen] = {}
    published, jitter = 0, []
    recorder_stopped = False

    def dead() -> list[str]:
        return [name for name, proc in processes.items() if proc.poll() is not None]

    def spin_until(predicate, timeout_s: float) -> bool:
        return executor.spin_until(lambda: predicate() or bool(dead()), timeout_s) and not dead()

    try:
        if run.arm == "sim":
            argv = _sim_command(run, robot.name, state_hz, command_hz, configs)
            log(f"starting sim_robot: {' '.join(argv[2:])}")
            processes["sim_robot"] = subprocess.Popen(argv, env=env, start_new_session=True)
        if not spin_until(lambda: "q" in latest, run.state_timeout_s):
            why = f"; node(s) {dead()} exited" if dead() else ""
            detail = f" (messages without the arm's joints: {latest['bad']})" if "bad" in latest else ""
            raise CommandError(f"no {JOINT_STATES_TOPIC} with joints {list(robot.arm_joints)} within "
                               f"{run.state_timeout_s} s on ROS domain {domain_id}{detail}{why}")
        if not spin_until(lambda: publisher.matched_subscriptions() > 0, 5.0):
            raise CommandError(f"nobody subscribes to {run.command_topic} (is the forward position controller "
                               "active and is command_topic its topic?)")
        controllers = publisher.matched_subscriptions()
        log(f"starting recorder: {run.command_topic} and {JOINT_STATES_TOPIC} to {output}")
        processes["recorder"] = subprocess.Popen(_recorder_command(run, output, configs), env=env,
                                                 start_new_session=True)
        if not spin_until(lambda: publisher.matched_subscriptions() > controllers, 30.0):
            raise CommandError(f"the recorder did not subscribe to {run.command_topic} within 30 s "
                               f"(exited: {dead()})")
        spin_until(lambda: False, 0.3)      # its /joint_states subscription is made in the same discovery pass

        q_measured = latest["q"].copy()
        start_error = float(np.max(np.abs(q_measured - commands[0])))
        hold = np.repeat(commands[:1], int(round(run.hold_s * command_hz)), axis=0)
        end = np.repeat(commands[-1:], int(round(run.hold_s * command_hz)), axis=0)
        schedule = np.concatenate([ramp(q_measured, commands[0], command_hz, run.ramp_velocity), hold, commands,
                                   end])
        log(f"start pose {start_error:.3f} rad from the trajectory's start: {len(schedule) / command_hz:.1f} s "
            f"of commands at {command_hz:g} Hz (ramp, hold, excitation, hold)")
        period = 1.0 / command_hz
        t0 = time.monotonic() + period
        t0_ns = node.now_ns() + int(round((period + run.lead_s) * 1e9))    # command k's start on the node clock
        for k, target in enumerate(schedule):
            deadline = t0 + k * period
            while (left := deadline - time.monotonic()) > 0:
                executor.spin_once(left)
            reason = _doubt(latest, target if k == 0 else schedule[k - 1], run, dead())
            if reason:
                if "q" in latest and "sim_robot" not in dead():
                    publisher.publish(command(latest["q"]))   # stop where the arm is, at once (stamp 0)
                raise ExcitationAborted(f"excitation stopped after {k} of {len(schedule)} commands: {reason}")
            jitter.append(abs(time.monotonic() - deadline) * 1e3)
            publisher.publish(command(target, t0_ns + int(round(k * period * 1e9))))
            published += 1
        executor.spin_until(lambda: False, 2 * period + run.lead_s)   # the last commands reach the arm and recorder
        codes = stop_processes({"recorder": processes.pop("recorder")}, log)
        recorder_stopped = True
        if codes["recorder"] not in (0, -2):
            raise CommandError(f"the recorder exited with code {codes['recorder']}; {output} may be incomplete")
    except BaseException:
        if not recorder_stopped and "recorder" in processes:
            stop_processes({"recorder": processes.pop("recorder")}, log)
            _set_aside(output, log)
        raise
    finally:
        overruns = latest.get("overruns")
        stop_processes(processes, log)
        node.destroy()
    _check_bag(output, run.command_topic, published)
    j = np.asarray(jitter)
    return DdsResult(output, published, received[0], start_error,
                     {"p50": float(np.percentile(j, 50)), "p99": float(np.percentile(j, 99)), "max": float(j.max())},
                     overruns)


def _set_aside(output: Path, log) -> None:
    """A failed run's bag is kept for diagnosis, but never under the name a fit would take for a good one."""
    if output.exists():
        aside = output.with_name(output.name + "_aborted")
        if not aside.exists():
            os.replace(output, aside)
            log(f"the partial recording is in {aside}")


def _doubt(latest: dict, commanded: np.ndarray, run: DdsRun, dead: list[str]) -> str:
    """Why the motion must stop now, or '' when all is well."""
    if dead:
        return f"node process(es) {dead} exited"
    age = time.monotonic() - latest["t"]
    if age > run.stale_after_s:
        return f"{JOINT_STATES_TOPIC} stale ({age:.2f} s since the last message)"
    error = float(np.max(np.abs(latest["q"] - commanded)))
    if error > run.max_tracking_error:
        return f"tracking error {error:.3f} rad exceeds max_tracking_error={run.max_tracking_error} rad"
    return ""


def _check_bag(output: Path, command_topic: str, published: int) -> None:
    """The bag holds both topics and every command published (reliable QoS on loopback loses none)."""
    from hardware.recording import read_bag

    if not (output / "metadata.yaml").is_file():
        raise CommandError(f"{output}: the recorder left no rosbag2 recording")
    counts: dict[str, int] = {}
    for topic, _, _ in read_bag(output):
        counts[topic] = counts.get(topic, 0) + 1
    if counts.get(JOINT_STATES_TOPIC, 0) == 0 or counts.get(command_topic, 0) == 0:
        raise CommandError(f"{output}: expected {JOINT_STATES_TOPIC} and {command_topic}, recorded {counts}")
    if counts[command_topic] < published:
        raise CommandError(f"{output}: {counts[command_topic]} of {published} commands on {command_topic} "
                           "recorded (the recorder missed some)")
