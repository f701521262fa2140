"""policy_node as its own process over real DDS on loopback, driving sim_robot_node (in this process, so the test
reads the simulated arm's true state and can stall its joint states): commands flow at the bundle's rate through
the safety filter; killing the policy node or stalling /joint_states makes the arm hold within one control period
plus the observation timeout (then at most v_max / a_max of braking); the e-stop latches until reset; the
trajectory interface works; bad parameters are refused. The bundle is a real one: a briefly trained panda-reach
agent exported with `robot-rl export` (its skill does not matter here, only that it commands motion)."""
import json
import signal
import time

import numpy as np
import pytest

from hardware import messages as m
from hardware.nodes.sim_robot_node import SimRobot
from hardware.transport.base import QOS_LATCHED
from hardware.transport.dds import DdsExecutor, DdsNode, spin_in_thread

from .deploy_helpers import start_policy_node, stop, train_and_export

RATE_HZ = 20.0
PERIOD = 1.0 / RATE_HZ
TIMEOUT = 0.1          # launch/config/policy.yaml safety.observation_timeout_s
BRAKE = 2.175 / 7.5    # longest braking from full speed: v_max / a_max of the Panda's joint 2, 0.29 s
DDS_SLACK = 0.1        # process scheduling and delivery on a shared 2-core machine


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    return train_and_export(tmp_path_factory.getbasetemp(), steps=120, seed_steps=100)


class Cell:
    """The simulated arm plus a test node recording the commands that reach it and the policy's diagnostics."""

    def __init__(self, domain, goal=(0.5, 0.15, 0.35), **sim_params):
        self.node = DdsNode("sim_robot", domain_id=domain, parameters={"command_timeout_s": 0.0, **sim_params})
        self.sim = SimRobot(self.node)
        self.test = DdsNode("tester", domain_id=domain)
        self.commands, self.diagnostics, self.trajectories = [], [], []
        self.test.create_subscription(m.Float64MultiArray, "/forward_position_controller/commands",
                                      lambda msg: self.commands.append((time.monotonic(), np.array(msg.data))))
        self.test.create_subscription(m.JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                      lambda msg: self.trajectories.append((time.monotonic(), msg)))
        self.test.create_subscription(m.String, "/policy/diagnostics",
                                      lambda msg: self.diagnostics.append(json.loads(msg.data)))
        self.estop = self.test.create_publisher(m.Bool, "/estop")   # volatile, as `ros2 topic pub` sends
        self.latched_estop = self.test.create_publisher(m.Bool, "/estop", QOS_LATCHED)   # an e-stop button node
        self.reset = self.test.create_publisher(m.Bool, "/estop_reset")
        self.goal = self.test.create_publisher(m.Float64MultiArray, "/sim_robot/reset")
        self.executor = DdsExecutor([self.node, self.test])
        self.thread = spin_in_thread(self.executor)
        self.wait(lambda: self.goal.matched_subscriptions() > 0)
        self.goal.publish(m.float64_multi_array(list(goal)))

    def wait(self, predicate, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.005)

    def commands_between(self, t0, t1=float("inf")):
        return [q for t, q in self.commands if t0 <= t < t1]

    def close(self):
        self.executor.shutdown()
        self.thread.join(5)
        self.sim.close()


@pytest.fixture
def cell(domain):
    made = []

    def make(**kw):
        made.append(Cell(domain, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def steps_of(commands):
    return [float(np.max(np.abs(b - a))) for a, b in zip(commands, commands[1:])]


def test_commands_at_the_control_rate_within_the_limits(cell, domain, tiny_bundle):
    c = cell()
    proc = start_policy_node(domain, tiny_bundle)
    try:
        c.wait(lambda: len(c.commands) > 5, what="commands")
        t0 = time.monotonic()
        time.sleep(2.0)
        got = c.commands_between(t0)
        c.wait(lambda: c.diagnostics, what="diagnostics")
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    rate = len(got) / 2.0
    assert 0.8 * RATE_HZ <= rate <= 1.1 * RATE_HZ, rate
    vmax = np.array([2.175] * 4 + [2.61] * 3)
    assert all(np.all(np.abs(b - a) <= vmax * PERIOD + 1e-9) for a, b in zip(got, got[1:]))
    d = c.diagnostics[-1]
    assert d["rate_hz"] == RATE_HZ and d["published"] > 0 and d["compute_ms_p99"] < 1000 * PERIOD
    assert "stopping:" in out and "missed deadlines" in out


def test_killing_the_policy_node_leaves_the_arm_holding(cell, domain, tiny_bundle):
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: len(c.commands) > 30, what="commands")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)
    killed = time.monotonic()
    last = c.commands[-1][1]
    steps = c.sim.steps
    time.sleep(PERIOD + BRAKE + 0.5)
    assert c.thread.is_alive() and c.sim.steps > steps + 100, "the arm's node keeps running when its commander dies"
    assert not c.commands_between(killed + DDS_SLACK)          # nothing more arrives
    np.testing.assert_allclose(c.sim.arm_target, last)          # the arm keeps the last target
    np.testing.assert_allclose(c.sim.physics.arm_qpos(), last, atol=2e-3)
    assert np.max(np.abs(c.sim.physics.arm_qvel())) < 0.02      # and is at rest there


def test_stalled_joint_states_make_the_arm_hold(cell, domain, tiny_bundle):
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: len(c.commands) > 30, what="commands")
        c.sim.publish_joint_states = False
        stalled = time.monotonic()
        time.sleep(PERIOD + TIMEOUT + BRAKE + 1.0)
        c.wait(lambda: c.diagnostics[-1]["status"] == "hold_stale_observation", timeout=2, what="hold status")
        holding = c.commands_between(stalled + PERIOD + TIMEOUT + BRAKE + DDS_SLACK)
        q_hold = c.sim.physics.arm_qpos()
        braking = c.commands_between(stalled + PERIOD + TIMEOUT + DDS_SLACK)
        c.sim.publish_joint_states = True      # fresh joint states again: the policy resumes by itself
        resumed = time.monotonic()
        time.sleep(1.0)
    finally:
        out = stop(proc)
    assert len(holding) >= 10, "the policy node must keep sending the hold"
    assert max(steps_of(holding)) < 1e-9, "held commands must not move"
    assert all(b <= a + 1e-9 for a, b in zip(steps_of(braking), steps_of(braking)[1:])), "braking only slows"
    np.testing.assert_allclose(q_hold, holding[-1], atol=3e-3)
    assert max(steps_of(c.commands_between(resumed + 0.5)), default=0) > 0, out


def test_estop_latches_until_reset(cell, domain, tiny_bundle):
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: len(c.commands) > 20, what="commands")
        c.estop.publish(m.Bool(data=True))
        pressed = time.monotonic()
        time.sleep(PERIOD + BRAKE + 0.5)
        c.estop.publish(m.Bool(data=False))     # released, but latched: still holding
        released = time.monotonic()
        time.sleep(1.0)
        c.wait(lambda: c.diagnostics[-1]["estop_latched"], timeout=2, what="latched e-stop")
        c.goal.publish(m.float64_multi_array([0.35, -0.2, 0.15]))   # somewhere to go after the reset
        time.sleep(0.3)
        c.reset.publish(m.Bool(data=True))
        reset = time.monotonic()
        time.sleep(1.5)
    finally:
        out = stop(proc)
    held = c.commands_between(pressed + PERIOD + BRAKE + DDS_SLACK, reset)
    assert len(held) >= 20 and max(steps_of(held)) < 1e-9, "e-stop: the arm holds, also after release"
    assert c.commands_between(released, reset), "the hold is still being sent while latched"
    after = c.commands_between(reset + DDS_SLACK)
    assert max(steps_of(after)) > 1e-4, f"after the reset the policy moves the arm again\n{out}"
    assert "E-STOP" in out and "reset" in out


def test_estop_latched_before_the_policy_starts_keeps_the_arm_still(cell, domain, tiny_bundle):
    c = cell()
    c.latched_estop.publish(m.Bool(data=True))
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: len(c.diagnostics) > 10, what="diagnostics")
    finally:
        out = stop(proc)
    assert c.diagnostics[-1]["status"] == "hold_estop" and c.diagnostics[-1]["estop_latched"], out
    assert len(c.commands) > 5 and max(steps_of([q for _, q in c.commands])) < 1e-9


def test_missed_deadlines_are_counted_and_logged(cell, domain, tiny_bundle):
    """The MPPI planner (several ms a call) cannot keep a 1 kHz loop: the node says so."""
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "mode:=planner", "control_rate_hz:=1000.0")
    try:
        c.wait(lambda: c.diagnostics and c.diagnostics[-1]["published"] > 50, what="planner commands")
    finally:
        out = stop(proc)
    d = c.diagnostics[-1]
    assert d["missed_deadlines"] > 0.3 * d["ticks"] and d["compute_ms_p50"] > 1.0, d
    assert "missed" in out and "deadline(s)" in out


def test_trajectory_interface(cell, domain, tiny_bundle):
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "command_interface:=trajectory")
    try:
        c.wait(lambda: len(c.trajectories) > 10, what="trajectories")
        c.wait(lambda: c.sim.commands_received > 10, what="trajectories reaching the arm")
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert not c.commands
    msg = c.trajectories[-1][1]
    assert list(msg.joint_names) == [f"panda_joint{i}" for i in range(1, 8)] and len(msg.points) == 1
    assert m.ns_from_time(msg.points[0].time_from_start) == int(PERIOD * 1e9)


@pytest.mark.parametrize("bad, message", [("mode:=dream", "mode"), ("command_interface:=torque", "command_interface"),
                                          ("controll_rate_hz:=50.0", "controll_rate_hz")])
def test_bad_parameters_are_refused(domain, tiny_bundle, bad, message):
    proc = start_policy_node(domain, tiny_bundle, bad)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and message in out, out


@pytest.mark.slow
def test_pixel_policy_sees_the_camera(cell, domain, tmp_path_factory):
    """A pixels-only policy (3 stacked 64x64 frames) runs on the simulated camera's images; until the first image
    arrives it holds the arm."""
    bundle = train_and_export(tmp_path_factory.getbasetemp(), 120, 40, "obs=pixels", "frame_stack=3")
    c = cell(publish_images=True, image_rate_hz=20.0)
    c.sim.publish_camera = False     # camera not up yet
    proc = start_policy_node(domain, bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: len(c.diagnostics) > 3, what="diagnostics")
        assert c.diagnostics[-1]["status"] == "hold_policy_error"   # no image: nothing to act on, hold
        c.sim.publish_camera = True
        c.wait(lambda: c.diagnostics[-1]["status"] in ("ok", "limited"), what="acting on images")
        time.sleep(1.0)
    finally:
        out = stop(proc)
    assert c.diagnostics[-1]["policy_errors"] == 0, out
    assert "pixels (9, 64, 64)" in out
    assert max(steps_of([q for _, q in c.commands[-15:]])) > 0
