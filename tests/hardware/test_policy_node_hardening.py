"""policy_node (its own process, real DDS on loopback) against what an outside review did to it: hostile joint
states (a name that is not UTF-8, NaN, disagreeing lengths) and a flood of 1.6 MB /goal messages from an
independent participant (another process), the e-stop pressed during the flood; a stranger
publishing /estop false and /estop_reset true; a position-only arm (NaN velocities) that names its joints
fr3_joint1..7; a controller whose joint order differs from the commands'."""
import subprocess
import sys
import threading
import time

import numpy as np

from hardware import messages as m

from .deploy_helpers import ROOT, dds_env, start_policy_node, stop
from .test_policy_node import BRAKE, DDS_SLACK, PERIOD, cell, steps_of, tiny_bundle  # noqa: F401 (fixtures)

VMAX = np.array([2.175] * 4 + [2.61] * 3)
FR3 = [f"fr3_joint{i}" for i in range(1, 8)]

FLOOD = """
import os, sys, time
from cyclonedds._clayer import ddspy_write
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic
from hardware import messages as m
from hardware.transport.base import QOS_DEFAULT
from hardware.transport.dds import dds_qos
participant = DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))
writer = DataWriter(participant, Topic(participant, "rt/goal", m.Float64MultiArray), qos=dds_qos(QOS_DEFAULT))
data = m.Float64MultiArray(data=[0.0] * 200_000).serialize()      # 1.6 MB, serialised once
deadline = time.monotonic() + 30
while not writer.get_matched_subscriptions() and time.monotonic() < deadline:
    time.sleep(0.01)
start, sent = time.monotonic(), 0
while time.monotonic() < start + float(sys.argv[1]):
    ddspy_write(writer._ref, data)
    sent += 1
    time.sleep(max(0.0, start + sent / float(sys.argv[2]) - time.monotonic()))
print(sent, flush=True)
"""


def start_flood(domain, seconds: float, per_s: float) -> subprocess.Popen:
    """An independent participant (another process) writing 1.6 MB /goal samples at `per_s`."""
    return subprocess.Popen([sys.executable, "-c", FLOOD, str(seconds), str(per_s)], env=dds_env(domain), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def within_limits(commands) -> bool:
    return all(np.all(np.abs(b - a) <= VMAX * PERIOD + 1e-9) for a, b in zip(commands, commands[1:]))


def test_estop_is_handled_during_a_flood_of_oversized_goals(cell, domain, tiny_bundle):
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: len(c.commands) > 20 and c.diagnostics, what="commands")
        # 5 samples/s (8 MB/s): each one stalled the old node ~3 s (decoded, then formatted into a log line).
        # Faster floods load this shared 2-core machine as a whole (the flooder's sends, the DDS receive threads),
        # which then starves every process, the node among them; a bare node keeps its timer at 80/s.
        flood = start_flood(domain, 4.0, 5.0)
        c.wait(lambda: c.diagnostics[-1].get("dropped_samples", {}).get("/goal"), timeout=20, what="the flood")
        flooding, before = time.monotonic(), dict(c.diagnostics[-1])
        time.sleep(1.0)
        pressed_ns = time.time_ns()
        c.estop.publish(m.Bool(data=True))
        pressed = time.monotonic()
        time.sleep(PERIOD + BRAKE + 1.0)
        during = dict(c.diagnostics[-1])
        sent = flood.communicate(timeout=30)[0]
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    got = c.commands_between(flooding, pressed + PERIOD + BRAKE + 1.0)
    times = [t for t, _ in c.commands if flooding <= t < pressed + PERIOD + BRAKE + 1.0]
    ticks, missed = during["ticks"] - before["ticks"], during["missed_deadlines"] - before["missed_deadlines"]
    facts = {"max_gap_s": float(max(np.diff(times))), "sent": sent, "ticks": ticks, "missed": missed}
    assert max(np.diff(times)) < 0.3, f"commands kept coming (the old node stalled ~3 s per sample): {facts}"
    # The old node missed every period of the flood; this machine (2 cores, load ~13 from other jobs) alone
    # makes it miss 10-40 % of them at 20 Hz, so the bound is loose.
    assert missed <= max(3, 0.5 * (ticks + missed)), f"no missed-deadline storm: {facts}"
    assert within_limits(got), "no command outside the velocity limit"
    fast = max(steps_of(c.commands_between(pressed - 0.3, pressed)))
    assert max(steps_of(c.commands_between(pressed + PERIOD + DDS_SLACK)), default=0) <= fast + 1e-9, "brakes"
    held = c.commands_between(pressed + PERIOD + BRAKE + DDS_SLACK)
    assert len(held) >= 10 and max(steps_of(held)) < 1e-9, "the e-stop holds the arm within a period + braking"
    assert during["estop_latched"] and during["dropped_samples"]["/goal"]["oversized"] >= 5, (during, sent)
    assert during["status"] == "hold_estop"
    handled_s = (during["status_since_ns"] - pressed_ns) * 1e-9   # press -> the filter holding (same host clock)
    print(f"e-stop applied {handled_s * 1e3:.1f} ms after the press, {facts}")
    assert 0 < handled_s <= PERIOD + DDS_SLACK, f"e-stop applied {handled_s * 1e3:.1f} ms after the press"


class Heartbeat:
    """An e-stop source: publishes its state on /estop/<name> every 0.1 s until stopped (falls silent)."""

    def __init__(self, node, name):
        self.pub = node.create_publisher(m.Bool, f"/estop/{name}")
        self.pressed, self.running = False, True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.pub.publish(m.Bool(data=self.pressed))
            time.sleep(0.1)

    def stop(self):
        self.running = False
        self.thread.join(2)


def test_a_stranger_cannot_release_the_estop_and_a_silent_source_stops_the_arm(cell, domain, tiny_bundle):
    c = cell()
    operator = Heartbeat(c.test, "operator")
    operator_reset = c.test.create_publisher(m.Bool, "/estop_reset/operator")
    stranger_reset = c.test.create_publisher(m.Bool, "/estop_reset/stranger")
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0", "estop_sources:=operator",
                             "estop_heartbeat_timeout_s:=0.5")
    try:
        c.wait(lambda: c.diagnostics and c.diagnostics[-1]["status"] in ("ok", "limited"), what="running")
        operator.pressed = True
        pressed = time.monotonic()
        time.sleep(PERIOD + BRAKE + 0.3)
        c.estop.publish(m.Bool(data=False))               # the stranger of the review ...
        c.reset.publish(m.Bool(data=True))
        stranger_reset.publish(m.Bool(data=True))          # ... and one who guesses a per-source topic
        operator.pressed = False                           # released, but no reset from a listed source yet
        time.sleep(0.5)
        c.reset.publish(m.Bool(data=True))
        c.goal.publish(m.float64_multi_array([0.35, -0.2, 0.15]))   # somewhere to go after the reset
        time.sleep(0.5)
        stranger_end = time.monotonic()
        operator_reset.publish(m.Bool(data=True))
        reset = time.monotonic()
        time.sleep(1.5)
        operator.stop()                                    # the operator's node dies: silent = pressed
        silent = time.monotonic()
        time.sleep(0.5 + PERIOD + BRAKE + 0.8)
        last = dict(c.diagnostics[-1])
    finally:
        operator.stop()
        out = stop(proc)
    held = c.commands_between(pressed + PERIOD + BRAKE + DDS_SLACK, stranger_end)
    assert len(held) >= 15 and max(steps_of(held)) < 1e-9, f"the stranger did not release the stop\n{out}"
    assert max(steps_of(c.commands_between(reset + DDS_SLACK, silent))) > 1e-4, f"the operator's reset did\n{out}"
    after_silence = c.commands_between(silent + 0.5 + PERIOD + BRAKE + DDS_SLACK)
    assert len(after_silence) >= 5 and max(steps_of(after_silence)) < 1e-9, "a silent source holds the arm"
    assert last["estop_latched"] and any("silent" in r for r in last["estop_reasons"]), last
    assert "refused: it names no source" in out and "reset by operator" in out, out
    assert "anyone on the domain" not in out


def test_position_only_arm_with_other_joint_names(cell, domain, tiny_bundle):
    """An FR3-like arm: joints fr3_joint1..7, NaN velocities (no velocity interface), as a bridge republishes
    the simulated arm's joint states."""
    c = cell()
    bridged = c.test.create_publisher(m.JointState, "/fr3/joint_states")
    names = {f"panda_joint{i}": f"fr3_joint{i}" for i in range(1, 8)}

    def bridge(msg):
        msg.name = [names.get(n, n) for n in msg.name]
        msg.velocity = [float("nan")] * len(msg.name)
        bridged.publish(msg)

    c.test.create_subscription(m.JointState, "/joint_states", bridge)
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0", "joint_states_topic:=/fr3/joint_states",
                             f"hardware_joint_names:={','.join(FR3)}")
    try:
        c.wait(lambda: c.diagnostics and c.diagnostics[-1]["status"] in ("ok", "limited"), timeout=30,
               what="the policy running on NaN velocities")
        time.sleep(1.0)
        last = dict(c.diagnostics[-1])
    finally:
        out = stop(proc)
    assert last["velocity_estimated"] > 10 and "hold_invalid_state" not in last["safety"], last
    assert max(steps_of([q for _, q in c.commands[-15:]])) > 0, out


def test_a_controller_with_another_joint_order_is_refused(domain, tiny_bundle, tmp_path):
    yaml = tmp_path / "controllers.yaml"
    yaml.write_text("forward_position_controller:\n  ros__parameters:\n    joints: [" +
                    ", ".join(reversed([f"panda_joint{i}" for i in range(1, 8)])) + "]\n")
    proc = start_policy_node(domain, tiny_bundle, f"controller_joints_file:={yaml}")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "but the commands go out in the order" in out and str(yaml) in out, out


HOSTILE = """
import os, time
from cyclonedds._clayer import ddspy_write
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic
from hardware import messages as m
from hardware.transport.base import QOS_DEFAULT, QOS_SENSOR_DATA
from hardware.transport.dds import dds_qos
participant = DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))
def writer(topic, msg_type, qos):
    w = DataWriter(participant, Topic(participant, "rt" + topic, msg_type), qos=dds_qos(qos))
    while not w.get_matched_subscriptions():
        time.sleep(0.01)
    return w
states = writer("/joint_states", m.JointState, QOS_SENSOR_DATA)
bad = bytearray(m.joint_state(["a"], [0.25]).serialize())
bad[bad.index(b"a\\x00")] = 0xFF                                   # the 52-byte sample of the review
names = [f"panda_joint{i}" for i in range(1, 8)]
bad_names = bytearray(m.joint_state(names, [0.0] * 7, stamp_ns=time.time_ns()).serialize())
bad_names[bad_names.index(b"panda_joint3")] = 0xFE                  # a real joint's name, not UTF-8
for _ in range(20):
    ddspy_write(states._ref, bytes(bad))
    ddspy_write(states._ref, bytes(bad_names))
    states.write(m.JointState(name=names, position=[float("nan")] * 7))   # well-formed garbage
    states.write(m.JointState(name=names, position=[0.0] * 3))           # lengths that disagree
    time.sleep(0.02)
goal = writer("/goal", m.Float64MultiArray, QOS_DEFAULT)
goal.write(m.Float64MultiArray(data=[float("inf")] * 3))
goal.write(m.Float64MultiArray(data=[1.0] * 100))                   # 800 bytes: under the bound, wrong length
print("sent", flush=True)
"""


def test_hostile_joint_states_and_goals_do_not_crash_the_node(cell, domain, tiny_bundle):
    """The review's 52-byte JointState (a joint name that is not UTF-8) killed any DDS node; here it, a real
    joint's name garbled, NaN positions and disagreeing lengths come from another process's participant."""
    c = cell()
    proc = start_policy_node(domain, tiny_bundle, "safety.ramp_time_s:=0.0")
    try:
        c.wait(lambda: c.diagnostics and c.diagnostics[-1]["status"] in ("ok", "limited"), what="running")
        hostile = subprocess.run([sys.executable, "-c", HOSTILE], env=dds_env(domain), cwd=ROOT, timeout=60,
                                 capture_output=True, text=True)
        assert "sent" in hostile.stdout, hostile.stdout + hostile.stderr
        sent = time.monotonic()
        time.sleep(1.0)
        c.wait(lambda: c.diagnostics[-1]["status"] in ("ok", "limited"), timeout=5, what="running again")
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out                               # alive until asked to stop
    assert len(c.commands_between(sent)) >= 10 and within_limits([q for _, q in c.commands]), out
    assert "JointState" in out and "unusable" in out
    assert out.count("unusable") <= 3, "bad messages are logged throttled, not one line each"
