"""The node interface over real DDS on loopback: traffic between nodes in one process and across processes, a
reader built only from cyclonedds + rosbags decoding what project nodes publish, QoS semantics as in ROS 2,
timers, parameters and the ROS-style command line."""
import os
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pytest
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as idl
from cyclonedds.idl.annotations import final
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.base import Nodetype

from hardware import messages as m
from hardware.transport.base import (QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA, parse_node_args, resolve_topic)
from hardware.transport.dds import (DdsExecutor, DdsNode, dds_topic_name, local_only_config,
                                    spin_in_thread)

ROOT = Path(__file__).resolve().parents[2]


def _wait(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.002)
    return predicate()


# ---------------------------------------------------------------- a reader from cyclonedds + rosbags only
_IDL_BASE = {"int32": idl.int32, "uint32": idl.uint32, "float64": idl.float64, "uint8": idl.uint8,
             "bool": bool, "string": str}


def _idl_from_rosbags(store, ros_name, cache):
    """A cyclonedds struct built from the rosbags ROS 2 definition (no project code): same fields, ROS DDS name."""
    if ros_name in cache:
        return cache[ros_name]

    def annotation(node):
        kind, detail = node
        if kind == Nodetype.BASE:
            return _IDL_BASE[detail[0]]
        if kind == Nodetype.NAME:
            return _idl_from_rosbags(store, detail, cache)
        sub, size = detail
        return idl.array[annotation(sub), size] if kind == Nodetype.ARRAY else idl.sequence[annotation(sub)]

    package, _, name = ros_name.split("/")

    def body(namespace):
        namespace["__annotations__"] = {fname: annotation(node) for fname, node in store.fielddefs[ros_name][1]}
        namespace["__module__"] = __name__

    cls = dataclass(final(types.new_class(f"Raw{name}", (IdlStruct,),
                                          {"typename": f"{package}::msg::dds_::{name}_"}, body)))
    cache[ros_name] = cls
    return cls


def test_reader_from_cyclonedds_and_rosbags_only_decodes_project_messages(domain):
    store = get_typestore(Stores.ROS2_JAZZY)
    raw_type = _idl_from_rosbags(store, "sensor_msgs/msg/JointState", {})
    participant = DomainParticipant(domain)
    reader = DataReader(participant, Topic(participant, "rt/robot/joint_states", raw_type),
                        qos=Qos(Policy.Reliability.Reliable(max_blocking_time=10**8), Policy.History.KeepLast(50)))

    node = DdsNode("arm", namespace="/robot", domain_id=domain)
    publisher = node.create_publisher(m.JointState, "joint_states", QOS_DEFAULT)
    assert _wait(lambda: publisher.matched_subscriptions() == 1)
    sent = [m.joint_state(["j1", "j2"], [0.1 * i, -0.2], velocity=[i, 0.5], stamp_ns=1_700_000_000_000_000_000 + i)
            for i in range(10)]
    for msg in sent:
        publisher.publish(msg)
    received = []
    assert _wait(lambda: received.extend(reader.take(N=50)) or len(received) == 10)
    for msg, raw in zip(sent, received):
        decoded = store.deserialize_cdr(raw.serialize(), "sensor_msgs/msg/JointState")
        assert list(decoded.name) == ["j1", "j2"]
        np.testing.assert_array_equal(decoded.position, msg.position)
        np.testing.assert_array_equal(decoded.velocity, msg.velocity)
        assert decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec == m.ns_from_time(msg.header.stamp)
    node.destroy()


# ---------------------------------------------------------------- nodes in one process
def test_two_nodes_in_one_executor_exchange_messages_on_one_thread(domain):
    talker, listener = DdsNode("talker", domain_id=domain), DdsNode("listener", domain_id=domain)
    got, threads = [], set()

    def on_msg(msg):
        threads.add(threading.get_ident())
        got.append(msg)

    listener.create_subscription(m.Float64MultiArray, "/arm/commands", on_msg, QOS_DEFAULT)
    publisher = talker.create_publisher(m.Float64MultiArray, "/arm/commands", QOS_DEFAULT)
    count = [0]

    def tick():
        threads.add(threading.get_ident())
        count[0] += 1
        publisher.publish(m.float64_multi_array([count[0], 2.0]))

    talker.create_timer(0.005, tick)
    executor = DdsExecutor([talker, listener])
    assert executor.spin_until(lambda: len(got) >= 20, timeout_s=10)
    assert [msg.data[0] for msg in got[:20]] == list(range(1, 21))  # reliable, in order, none lost
    assert threads == {threading.get_ident()}  # callbacks ran on the spinning thread only


def test_latched_topic_reaches_a_late_subscriber(domain):
    estop = DdsNode("estop", domain_id=domain)
    publisher = estop.create_publisher(m.Bool, "/estop", QOS_LATCHED)
    publisher.publish(m.Bool(True))
    late = DdsNode("late", domain_id=domain)
    got = []
    late.create_subscription(m.Bool, "/estop", got.append, QOS_LATCHED)
    assert DdsExecutor([late]).spin_until(lambda: got, timeout_s=5)
    assert got == [m.Bool(True)]


def test_qos_compatibility_follows_ros2(domain):
    node = DdsNode("qos", domain_id=domain)
    best_effort_pub = node.create_publisher(m.String, "/sensor", QOS_SENSOR_DATA)
    reliable_sub = node.create_subscription(m.String, "/sensor", lambda msg: None, QOS_DEFAULT)
    reliable_pub = node.create_publisher(m.String, "/state", QOS_DEFAULT)
    best_effort_sub = node.create_subscription(m.String, "/state", lambda msg: None, QOS_SENSOR_DATA)
    assert _wait(lambda: reliable_pub.matched_subscriptions() == 1)
    assert best_effort_sub.matched_publishers() == 1  # a reliable writer serves a best-effort reader
    time.sleep(0.2)
    assert best_effort_pub.matched_subscriptions() == 0  # ...but never the other way round
    assert reliable_sub.matched_publishers() == 0


def test_topic_types_are_checked(domain):
    node = DdsNode("types", domain_id=domain)
    publisher = node.create_publisher(m.Bool, "/flag")
    with pytest.raises(TypeError, match="carries Bool, got String"):
        publisher.publish(m.String("x"))
    with pytest.raises(TypeError, match="already has type std_msgs::msg::dds_::Bool_"):
        node.create_subscription(m.String, "/flag", print)


def test_timer_fires_at_the_requested_rate(domain):
    node = DdsNode("clock", domain_id=domain)
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(time.monotonic_ns()))
    executor = DdsExecutor([node])
    executor.spin_until(lambda: len(ticks) >= 51, timeout_s=5)
    periods = np.diff(ticks) / 1e9
    assert abs(periods.mean() - 0.01) < 0.0005  # phase-locked: mean period exact even when single ticks jitter
    assert np.median(np.abs(periods - 0.01)) < 0.003


def test_timer_skips_missed_periods_instead_of_bursting(domain):
    node = DdsNode("slow", domain_id=domain)
    ticks = []

    def slow_tick():
        ticks.append(time.monotonic())
        if len(ticks) == 2:
            time.sleep(0.055)  # overrun: 5 periods missed

    node.create_timer(0.01, slow_tick)
    DdsExecutor([node]).spin_until(lambda: len(ticks) >= 8, timeout_s=5)
    assert ticks[2] - ticks[1] > 0.05
    # Catching up would fire the 5 missed periods back to back; phase-keeping fires once now, then on the grid.
    assert sum(ticks[2] <= t < ticks[2] + 0.004 for t in ticks) <= 2


def test_shutdown_from_another_thread_stops_spin(domain):
    node = DdsNode("idle", domain_id=domain)
    executor = DdsExecutor([node])
    thread = spin_in_thread(executor)
    time.sleep(0.05)
    start = time.monotonic()
    executor.shutdown()
    thread.join(timeout=2)
    assert not thread.is_alive() and time.monotonic() - start < 0.5


# ---------------------------------------------------------------- separate processes
PUBLISHER_SCRIPT = """
from hardware import messages as m
from hardware.transport import run_node
from hardware.transport.base import QOS_SENSOR_DATA

class Talker:
    def __init__(self, node):
        self.node = node
        self.publisher = node.create_publisher(m.JointState, "joint_states", QOS_SENSOR_DATA)
        self.count = 0
        node.create_timer(1.0 / node.declare_parameter("rate_hz", 10.0), self.tick)
        self.names = node.declare_parameter("joints", ["a"])

    def tick(self):
        self.count += 1
        self.publisher.publish(m.joint_state(self.names, [self.count] * len(self.names), stamp_ns=self.node.now_ns()))

    def close(self):
        print("closed after", self.count, flush=True)

raise SystemExit(run_node("talker", Talker))
"""


def _env(domain_id):
    return {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "CYCLONEDDS_URI": local_only_config(),
            "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}


def test_node_in_another_process_with_ros_args_and_clean_sigterm(domain, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("/left/talker2:\n  ros__parameters:\n    rate_hz: 50.0\n    joints: [x, y, z]\n")
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER_SCRIPT, "--ros-args", "-r", "__node:=talker2",
                             "-r", "__ns:=/left", "--params-file", str(params), "-p", "rate_hz:=100.0"],
                            env=_env(domain), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        node = DdsNode("listener", domain_id=domain)
        got = []
        node.create_subscription(m.JointState, "/left/joint_states", got.append, QOS_SENSOR_DATA)
        executor = DdsExecutor([node])
        assert executor.spin_until(lambda: len(got) >= 30, timeout_s=30), proc.stderr.read() if proc.poll() else ""
        start = time.monotonic()
        executor.spin_until(lambda: len(got) >= 80, timeout_s=5)
        rate = (len(got) - 30) / (time.monotonic() - start)
        assert got[-1].name == ["x", "y", "z"]
        assert 60 < rate < 130  # -p rate_hz:=100 beat the params file's 50
        assert abs(m.ns_from_time(got[-1].header.stamp) - time.time_ns()) < 0.5e9
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "closed after" in out  # close() ran on SIGTERM


def test_unknown_parameter_is_refused(domain):
    out = subprocess.run([sys.executable, "-c", PUBLISHER_SCRIPT, "rate_hzz:=5"], env=_env(domain),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "unknown parameters ['rate_hzz']" in out.stderr


# ---------------------------------------------------------------- names, parameters, command line
def test_topic_names_resolve_like_rcl():
    assert resolve_topic("/joint_states", "n", "/ns") == "/joint_states"
    assert resolve_topic("joint_states", "n", "/ns") == "/ns/joint_states"
    assert resolve_topic("~/commands", "forward_position_controller", "/") == "/forward_position_controller/commands"
    assert resolve_topic("~/commands", "ctl", "/arm/") == "/arm/ctl/commands"
    assert dds_topic_name("/arm/ctl/commands") == "rt/arm/ctl/commands"
    for bad in ("", "/", "a//b", "1abc", "/a/", "a-b"):
        with pytest.raises(ValueError, match="invalid ROS 2 topic name"):
            resolve_topic(bad, "n")


def test_parameters_are_typed_like_rclpy(domain):
    """rclpy (node.py _apply_descriptor) refuses an override whose type is not the default's, an integer for a
    double included; so does the DDS transport, with the same error class on both (a ValueError and TypeError)."""
    node = DdsNode("p", parameters={"rate": 20.0, "mode": "trajectory", "flag": 1, "gains": [1.0, 2.0], "count": 20,
                                    "ints": [1, 2]}, domain_id=domain)
    assert node.declare_parameter("rate", 50.0) == 20.0 and isinstance(node.get_parameter("rate"), float)
    assert node.declare_parameter("mode", "forward") == "trajectory"
    assert node.declare_parameter("gains", [0.5]) == [1.0, 2.0]
    assert node.declare_parameter("untouched", 3) == 3
    with pytest.raises(TypeError, match="parameter p.flag: expected BOOL like its default True, got INTEGER 1"):
        node.declare_parameter("flag", True)
    with pytest.raises(ValueError, match=r"p.count: expected DOUBLE .* got INTEGER 20 \(write it with a decimal"):
        node.declare_parameter("count", 50.0)
    with pytest.raises(TypeError, match="p.ints: expected DOUBLE_ARRAY like its default"):
        node.declare_parameter("ints", [0.5])
    with pytest.raises(KeyError, match="p.nope was not declared"):
        node.get_parameter("nope")
    with pytest.raises(ValueError, match="declared twice"):
        node.declare_parameter("rate", 1.0)


def test_command_line_parsing(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    a: 1\n    b: 2\nnode:\n  ros__parameters:\n"
                      "    b: 3\n    nested: {x: 1.5}\n")
    options = parse_node_args(["--ros-args", "--params-file", str(params), "-p", "a:=[1, 2]", "--log-level",
                               "debug", "--", "c:=hello"], "node")
    assert options.parameters == {"a": [1, 2], "b": 3, "nested.x": 1.5, "c": "hello"}
    assert options.log_level == "DEBUG"
    with pytest.raises(ValueError, match="unexpected argument '--bogus'"):
        parse_node_args(["--bogus"], "node")
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: {params: 1}\n")
    with pytest.raises(ValueError, match="bad.yaml: section 'node' must hold a 'ros__parameters' mapping"):
        parse_node_args(["--params-file", str(bad)], "node")


def test_generic_dds_tool_learns_the_type_from_the_wire(domain):
    """What a ROS-agnostic DDS tool does: find the writer by discovery, fetch its XTypes type object from the
    other process, and decode with it. Type and field names are ROS 2's; rosbags reads the bytes."""
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
    from cyclonedds.dynamic import get_types_for_typeid

    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER_SCRIPT, "rate_hz:=50.0", "joints:=[p, q]"],
                            env=_env(domain), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        participant = DomainParticipant(domain)
        publications = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        found = []
        assert _wait(lambda: found.extend(p for p in publications.take(N=100) if p.topic_name == "rt/joint_states")
                     or found, timeout_s=30)
        assert found[0].type_name == "sensor_msgs::msg::dds_::JointState_"
        dynamic_type, nested = get_types_for_typeid(participant, found[0].type_id, 10**10)
        assert [f.name for f in fields(dynamic_type)] == [
            "header", "name", "position", "velocity", "effort"]
        reader = DataReader(participant, Topic(participant, "rt/joint_states", dynamic_type),
                            qos=Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(10)))
        samples = []
        assert _wait(lambda: samples.extend(reader.take(N=10)) or samples, timeout_s=10)
        decoded = get_typestore(Stores.ROS2_HUMBLE).deserialize_cdr(samples[-1].serialize(),
                                                                    "sensor_msgs/msg/JointState")
        assert list(decoded.name) == ["p", "q"] and decoded.position[0] == decoded.position[1] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
