"""Recordings: write_bag/read_bag round trips in MCAP and sqlite3, files readable by rosbags' AnyReader and the
mcap library, atomic writes; and the `recorder` node recording real DDS traffic from publisher nodes, in this
process and as its own process stopped by SIGINT."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cyclonedds.domain import Domain
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.metadata import parse_qos

from hardware import messages as m
from hardware.nodes.recorder_node import Recorder
from hardware.recording import BagWriter, read_bag, write_bag
from hardware.transport.base import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA
from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config, private_domain_id

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_123_456_789


def _sample_messages():
    rng = np.random.default_rng(0)
    out = []
    for i in range(20):
        out.append(("/joint_states", T0 + i * 10_000_001,
                    m.joint_state(["j1", "j2"], rng.normal(size=2), rng.normal(size=2), stamp_ns=T0 + i)))
        if i % 5 == 0:
            out.append(("/camera/color/image_raw", T0 + i * 10_000_001 + 1,
                        m.image_from_array(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), "rgb8", T0 + i, "cam")))
    out.append(("/estop", T0 + 5, m.Bool(True)))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_bag_round_trip_and_rosbags_reads_it(tmp_path, storage):
    sent = _sample_messages()
    path = write_bag(tmp_path / "bag", sent, storage=storage, qos={"/estop": QOS_LATCHED})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]  # no partial folder left beside it
    back = list(read_bag(path))
    expected = sorted(sent, key=lambda item: item[1])
    assert [(t, s) for t, s, _ in back] == [(t, s) for t, s, _ in expected]  # time order, exact ns
    assert all(a[2] == b[2] for a, b in zip(back, expected))
    with AnyReader([path]) as reader:  # rosbags' own deserialiser, from the stored definitions
        decoded = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
        types = {c.topic: c.msgtype for c in reader.connections}
    assert types == {"/joint_states": "sensor_msgs/msg/JointState", "/camera/color/image_raw": "sensor_msgs/msg/Image",
                     "/estop": "std_msgs/msg/Bool"}
    first_js = next(d for d in decoded if d[0] == "/joint_states")[2]
    np.testing.assert_array_equal(first_js.position, sent[0][2].position)
    with Reader(path) as reader:
        estop = next(c for c in reader.connections if c.topic == "/estop")
        qos = estop.ext.offered_qos_profiles[0]
        assert qos.durability == QosDurability.TRANSIENT_LOCAL and qos.reliability == QosReliability.RELIABLE
        assert estop.ext.serialization_format == "cdr"
        assert reader.message_count == len(sent)


def test_mcap_file_is_standard_ros2_mcap(tmp_path):
    sent = _sample_messages()
    path = write_bag(tmp_path / "bag", sent)
    (mcap_file,) = path.glob("*.mcap")
    with open(mcap_file, "rb") as stream:
        reader = make_reader(stream)
        records = list(reader.iter_messages(log_time_order=False))
        summary = reader.get_summary()
    assert summary.statistics.message_count == len(sent)
    for (schema, channel, message), (topic, stamp_ns, msg) in zip(records, sent):
        assert channel.topic == topic and channel.message_encoding == "cdr"
        assert schema.encoding == "ros2msg" and schema.name == m.ros_type_name(type(msg))
        assert message.log_time == stamp_ns
        assert message.data == msg.serialize()
        assert parse_qos(channel.metadata["offered_qos_profiles"])  # ros2 bag needs this to replay
    jointstate_schema = next(s for s in summary.schemas.values() if s.name == "sensor_msgs/msg/JointState")
    assert b"float64[] position" in jointstate_schema.data


def test_bag_writer_is_atomic(tmp_path):
    writer = BagWriter(tmp_path / "bag")
    writer.write("/flag", 1, m.Bool(True))
    assert not (tmp_path / "bag").exists()  # invisible until closed
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with BagWriter(tmp_path / "bag") as bag:
            bag.write("/flag", 1, m.Bool(True))
            raise RuntimeError("crash while recording")
    assert list(tmp_path.iterdir()) == []
    write_bag(tmp_path / "bag", [("/flag", 1, m.Bool(True))])
    with pytest.raises(FileExistsError, match="already exists"):
        BagWriter(tmp_path / "bag")
    with pytest.raises(TypeError, match="records Bool, got String"):
        with BagWriter(tmp_path / "other") as bag:
            bag.write("/flag", 1, m.Bool(True))
            bag.write("/flag", 2, m.String("x"))


def test_read_bag_names_missing_topics(tmp_path):
    path = write_bag(tmp_path / "bag", [("/flag", 1, m.Bool(True))])
    with pytest.raises(KeyError, match=r"no topics \['/joint_states'\]; the recording has \['/flag'\]"):
        list(read_bag(path, topics=["/joint_states"]))


# ---------------------------------------------------------------- the recorder node on real DDS traffic
def test_recorder_records_dds_traffic_in_process(tmp_path):
    domain_id = private_domain_id()
    handle = Domain(domain_id, local_only_config())  # noqa: F841 (keeps the loopback config for this domain)
    talker = DdsNode("talker", domain_id=domain_id)
    recorder_node = DdsNode("recorder", domain_id=domain_id, parameters={
        "topics": ["/joint_states", "/estop", "never_published"], "output": str(tmp_path / "bag"),
        "storage": "mcap"})
    executor = DdsExecutor([recorder_node, talker])
    recorder = Recorder(recorder_node)
    # Publishers appear after the recorder started: it finds them by discovery, with their type and QoS.
    estop = talker.create_publisher(m.Bool, "/estop", QOS_LATCHED)
    estop.publish(m.Bool(True))  # latched before the recorder subscribed: must still be recorded
    states = talker.create_publisher(m.JointState, "/joint_states", QOS_SENSOR_DATA)
    sent = []

    def tick():
        if recorder.pending == ["/never_published"] and len(sent) < 50:
            msg = m.joint_state(["a"], [len(sent) * 0.01], stamp_ns=talker.now_ns())
            sent.append((time.time_ns(), msg))
            states.publish(msg)

    talker.create_timer(0.005, tick)
    executor.spin_until(lambda: recorder.bag.counts.get("/joint_states", 0) >= 45 and len(sent) == 50, 20)
    executor.spin_once(0.1)
    recorder.close()

    back = list(read_bag(tmp_path / "bag"))
    states_back = [(t, msg) for topic, t, msg in back if topic == "/joint_states"]
    assert [msg for topic, _, msg in back if topic == "/estop"] == [m.Bool(True)]
    assert len(states_back) >= 45  # best effort on loopback: at most a few lost
    sent_by_position = {msg.position[0]: ns for ns, msg in sent}
    for stamp_ns, msg in states_back:
        assert msg.position[0] in sent_by_position
        assert 0 <= stamp_ns - sent_by_position[msg.position[0]] < 200_000_000  # receive time, ns
    assert np.all(np.diff([t for t, _ in states_back]) >= 0)
    with Reader(tmp_path / "bag") as reader:
        qos = {c.topic: c.ext.offered_qos_profiles[0] for c in reader.connections}
    assert qos["/joint_states"].reliability == QosReliability.BEST_EFFORT
    assert qos["/estop"].durability == QosDurability.TRANSIENT_LOCAL


def _recorder_process(domain_id, *args):
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "CYCLONEDDS_URI": local_only_config(),
           "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "hardware.nodes.recorder_node", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("storage,stop", [("mcap", "sigint"), ("sqlite3", "max_duration")])
def test_recorder_process_stops_cleanly(tmp_path, storage, stop):
    domain_id = private_domain_id()
    handle = Domain(domain_id, local_only_config())  # noqa: F841
    output = tmp_path / "bag"
    extra = ["-p", "max_duration_s:=3.0"] if stop == "max_duration" else []
    proc = _recorder_process(domain_id, "--ros-args", "-p", "topics:=[/arm/commands]", "-p", f"output:={output}",
                             "-p", f"storage:={storage}", *extra)
    node = DdsNode("commander", domain_id=domain_id)
    publisher = node.create_publisher(m.Float64MultiArray, "/arm/commands", QOS_DEFAULT)
    try:
        deadline = time.monotonic() + 20
        while publisher.matched_subscriptions() == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert publisher.matched_subscriptions() == 1, proc.stderr.read() if proc.poll() is not None else "no match"
        first_ns = time.time_ns()
        for i in range(30):
            publisher.publish(m.float64_multi_array([i, -i]))
            time.sleep(0.005)
        last_ns = time.time_ns()
        time.sleep(0.2)
        assert not output.exists()  # still recording: only the hidden partial folder exists
        if stop == "sigint":
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    back = list(read_bag(output))
    assert [msg.data for _, _, msg in back] == [[float(i), float(-i)] for i in range(30)]  # reliable: all, in order
    assert all(first_ns <= t <= last_ns + 200_000_000 for _, t, _ in back)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
    assert next(output.glob("*.mcap" if storage == "mcap" else "*.db3"))


def test_recorder_refuses_bad_parameters(tmp_path):
    proc = _recorder_process(private_domain_id(), "storage:=zip", f"output:={tmp_path / 'bag'}")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "recorder.storage: expected one of ['mcap', 'sqlite3'], got 'zip'" in err
    assert list(tmp_path.iterdir()) == []
