"""sim_robot_node over real DDS on loopback: joint states at the rate, the arm follows forward and trajectory
commands in real time, holds its last target when commands stop, ignores malformed commands, delays commands by
the configured latency (also from a robot parameters file), resets goals, and runs as its own process."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hardware import messages as m
from hardware.nodes.sim_robot_node import SimRobot
from hardware.transport.base import QOS_LATCHED, QOS_SENSOR_DATA
from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config, spin_in_thread

ROOT = Path(__file__).resolve().parents[2]
ARM = [f"panda_joint{i}" for i in range(1, 8)]


class Harness:
    """The sim node and a test node (publishers, recorded subscriptions) spun on one executor thread."""

    def __init__(self, domain, **params):
        self.node = DdsNode("sim_robot", domain_id=domain, parameters=params)
        self.sim = SimRobot(self.node)
        self.test = DdsNode("tester", domain_id=domain)
        self.states, self.tasks, self.goals = [], [], []
        self.test.create_subscription(m.JointState, "/joint_states", self._state, QOS_SENSOR_DATA)
        self.test.create_subscription(m.String, "/sim_robot/task_state", lambda s: self.tasks.append(json.loads(s.data)))
        self.forward = self.test.create_publisher(m.Float64MultiArray, "/forward_position_controller/commands")
        self.trajectory = self.test.create_publisher(m.JointTrajectory, "/joint_trajectory_controller/joint_trajectory")
        self.gripper = self.test.create_publisher(m.Float64MultiArray, "/gripper_controller/commands")
        self.reset = self.test.create_publisher(m.Float64MultiArray, "/sim_robot/reset")
        self.executor = DdsExecutor([self.node, self.test])
        self.thread = spin_in_thread(self.executor)
        self.wait(lambda: len(self.states) > 3 and all(p.matched_subscriptions() for p in self.test.publishers))

    def _state(self, msg):
        self.states.append((time.monotonic(), msg))

    def wait(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.005)

    def q(self):
        return m.joint_state_arrays(self.states[-1][1], ARM)[0]

    def close(self):
        self.executor.shutdown()
        self.thread.join(5)
        self.sim.close()


@pytest.fixture
def harness(domain):
    made = []

    def make(**params):
        made.append(Harness(domain, **params))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_joint_states_at_the_rate_and_forward_commands_tracked(harness):
    h = harness(rate_hz=250.0)
    n0, t0 = len(h.states), time.monotonic()
    time.sleep(1.0)
    rate = (len(h.states) - n0) / (time.monotonic() - t0)
    assert 200 < rate < 270, rate
    msg = h.states[-1][1]
    assert list(msg.name) == ARM + ["panda_finger_joint1", "panda_finger_joint2"]
    assert len(msg.velocity) == len(msg.name) and abs(m.ns_from_time(msg.header.stamp) - time.time_ns()) < 0.1e9
    start = h.q()
    target = start + np.array([0.15, -0.1, 0.1, 0.1, 0.0, 0.1, -0.1])
    h.forward.publish(m.float64_multi_array(target))
    h.wait(lambda: np.max(np.abs(h.q() - target)) < 2e-3, timeout=3.0)
    assert h.sim.overruns == 0


def test_holds_last_target_when_commands_stop_and_ignores_malformed_commands(harness):
    h = harness(command_timeout_s=0.2)
    target = h.q() + 0.05
    h.forward.publish(m.float64_multi_array(target))
    h.wait(lambda: np.max(np.abs(h.q() - target)) < 1e-3, timeout=3.0)
    for bad in ([1.0, 2.0], [float("nan")] * 7):
        h.forward.publish(m.float64_multi_array(bad))
    time.sleep(0.6)   # no more commands: a forward command controller keeps the last one
    np.testing.assert_allclose(h.q(), target, atol=1e-3)
    assert h.sim.commands_received == 1
    h.wait(lambda: h.tasks and h.tasks[-1]["command_stale"])


def test_trajectory_is_interpolated_in_real_time(harness):
    h = harness()
    start = h.q()
    goal = start + np.array([0.3, 0, 0, 0, 0, 0, 0])
    order = ARM[::-1]   # joint_trajectory_controller matches joints by name, in any order
    h.trajectory.publish(m.joint_trajectory(order, goal[::-1], time_from_start_s=1.0))
    t_sent = time.monotonic()
    h.wait(lambda: time.monotonic() - t_sent > 0.5)
    middle = h.q()[0] - start[0]
    assert 0.08 < middle < 0.22, middle        # about half way (0.15) half way through
    h.wait(lambda: abs(h.q()[0] - goal[0]) < 2e-3, timeout=3.0)
    assert time.monotonic() - t_sent > 0.95


def test_command_latency_from_parameter_and_params_file(harness, tmp_path):
    params = tmp_path / "robot_params.yaml"
    params.write_text(yaml.safe_dump({"format": "robot_rl.robot_params", "version": 1, "robot": "panda",
                                      "parameters": {"action_latency": {"value": 2}}}))
    h = harness(command_latency_s=0.1, params_file=str(params), params_control_hz=20.0)
    assert h.sim.latency_s == pytest.approx(0.2)   # 0.1 s + 2 steps at 20 Hz
    start = h.q()
    h.forward.publish(m.float64_multi_array(start + 0.1))
    t_sent = time.monotonic()
    h.wait(lambda: abs(h.q()[0] - start[0]) > 0.01, timeout=3.0)
    moved_after = h.states[-1][0] - t_sent
    assert 0.18 < moved_after < 0.35, moved_after


def test_reset_sets_goal_latched_and_keeps_the_arm(harness, domain):
    h = harness()
    before = h.q()
    h.reset.publish(m.float64_multi_array([0.5, 0.1, 0.3]))
    h.wait(lambda: h.tasks and h.tasks[-1]["goal"] == [0.5, 0.1, 0.3])
    np.testing.assert_allclose(h.q(), before, atol=2e-3)
    late = DdsNode("late", domain_id=domain)   # a late joiner still gets the goal (latched)
    goals = []
    late.create_subscription(m.Float64MultiArray, "/goal", goals.append, QOS_LATCHED)
    executor = DdsExecutor([late])
    assert executor.spin_until(lambda: bool(goals), timeout_s=5)
    assert list(goals[-1].data) == [0.5, 0.1, 0.3]
    h.reset.publish(m.float64_multi_array([]))   # sampled from the reach task's goal region
    h.wait(lambda: h.tasks[-1]["goal"] != [0.5, 0.1, 0.3])
    assert 0.3 <= h.tasks[-1]["goal"][0] <= 0.55


def test_gripper_command_clamped_to_the_hand(harness):
    h = harness()
    h.gripper.publish(m.float64_multi_array([0.5]))   # wider than the hand opens
    h.wait(lambda: h.sim.gripper_target == pytest.approx(0.08))
    h.gripper.publish(m.float64_multi_array([0.02]))
    h.wait(lambda: abs(sum(h.states[-1][1].position[7:]) - 0.02) < 2e-3, timeout=5)


def test_process_publishes_and_stops_cleanly(domain):
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
           "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    listener = DdsNode("listener", domain_id=domain)
    states = []
    listener.create_subscription(m.JointState, "/joint_states", states.append, QOS_SENSOR_DATA)
    executor = DdsExecutor([listener])
    proc = subprocess.Popen([sys.executable, "-m", "hardware.nodes.sim_robot_node", "--ros-args", "--params-file",
                             str(ROOT / "launch/config/sim_robot.yaml"), "-p", "backend:=pybullet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert executor.spin_until(lambda: len(states) > 20, timeout_s=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "pybullet" in err + out


def test_unknown_parameter_is_refused(domain):
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
           "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "hardware.nodes.sim_robot_node", "rate_hzz:=10.0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "rate_hzz" in proc.stderr


def test_camera_images_for_pixel_policies(harness, domain):
    h = harness(publish_images=True, image_width=32, image_height=24, image_rate_hz=20.0)
    images = []
    h.test.create_subscription(m.Image, "/camera/color/image_raw", images.append, QOS_SENSOR_DATA)
    h.wait(lambda: len(images) >= 3, timeout=20)
    pixels = m.array_from_image(images[-1])
    assert pixels.shape == (24, 32, 3) and images[-1].encoding == "rgb8"
    assert pixels.std() > 5   # a rendered scene, not a blank frame


def test_joint_states_are_stamped_with_the_period_they_were_measured_in(harness):
    """Stamps sit on the simulated period grid (start + k / rate_hz), one message per period, however the
    executor bunches the ticks: the instant each state was measured, as a ros2_control robot stamps it."""
    h = harness(rate_hz=250.0)
    time.sleep(0.6)
    stamps = np.array([m.ns_from_time(msg.header.stamp) for _, msg in h.states])
    steps = (stamps - h.sim.clock_start_ns) / 4_000_000
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    gaps = np.diff(np.round(steps))
    assert np.all(gaps >= 1)                  # in order, none twice (a best-effort reader may miss some in a burst)
    assert np.median(gaps) == 1               # one message per period


def test_a_stamped_trajectory_takes_effect_on_the_first_period_at_its_stamp(harness):
    """A one-point trajectory stamped 0.3 s ahead is applied at the first period at or after stamp + latency,
    not on arrival; a later stamp-0 trajectory (a stop) discards it, as joint_trajectory_controller replaces a
    trajectory that has not started."""
    h = harness(rate_hz=250.0, command_latency_s=0.04)
    target = h.q() + np.array([0, 0, 0, 0.3, 0, 0, 0])
    start_ns = h.node.now_ns() + 300_000_000
    h.trajectory.publish(m.joint_trajectory(ARM, target, 0.0, stamp_ns=start_ns))
    h.wait(lambda: abs(h.q()[3] - target[3]) < 0.15, timeout=5.0)
    states = [(m.ns_from_time(msg.header.stamp), m.joint_state_arrays(msg, ARM)[0][3]) for _, msg in h.states]
    applied = start_ns + 40_000_000
    start_q = target[3] - 0.3
    assert all(abs(q - start_q) < 2e-3 for stamp, q in states if stamp <= applied)   # not before its stamp
    if h.sim.overruns == 0:    # then moving from the period after (a sim that dropped time steps it later)
        late = [(stamp - applied) / 1e6 for stamp, q in states
                if stamp >= applied + 16_000_000 and abs(q - start_q) < 2e-3]
        assert not late, late
    h.wait(lambda: abs(h.q()[3] - target[3]) < 0.01, timeout=5.0)
    held = target
    h.trajectory.publish(m.joint_trajectory(ARM, held + 0.2, 0.0, stamp_ns=h.node.now_ns() + 500_000_000))
    time.sleep(0.1)
    h.trajectory.publish(m.joint_trajectory(ARM, held, 0.0))              # stop: replaces the pending one
    time.sleep(0.8)
    assert np.max(np.abs(h.q() - held)) < 0.02


def test_ready_is_latched_and_task_state_carries_rewards_and_episode(harness, domain):
    h = harness(task_rate_hz=50.0)
    late = DdsNode("ready_listener", domain_id=domain)   # a late joiner hears the start's ready (latched)
    ready = []
    late.create_subscription(m.Bool, "/sim_robot/ready", lambda msg: ready.append(msg.data), QOS_LATCHED)
    executor = DdsExecutor([late])
    assert executor.spin_until(lambda: ready == [True], timeout_s=5)
    h.wait(lambda: h.tasks)
    state = h.tasks[-1]
    assert state["episode"] == 1 and state["sparse_reward"] == float(state["success"]) == 0.0
    assert state["dense_reward"] == pytest.approx(-state["distance"])   # reach: minus the distance to the goal
    ee = state["ee_pos"]
    h.reset.publish(m.float64_multi_array(ee))   # the goal at the tool point: success
    assert executor.spin_until(lambda: ready == [True, True], timeout_s=5)
    h.wait(lambda: h.tasks[-1]["episode"] == 2)
    state = h.tasks[-1]
    assert state["success"] and state["sparse_reward"] == 1.0 and -0.01 < state["dense_reward"] <= 0.0
    h.reset.publish(m.float64_multi_array([float("nan")] * 3))   # refused: no new episode, no ready
    time.sleep(0.2)
    executor.spin_once(0.05)
    assert ready == [True, True] and h.tasks[-1]["episode"] == 2
