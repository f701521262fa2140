"""The DDS transport's participant as ROS 2 configures one (rcl's discovery variables -> rmw_cyclonedds's Cyclone
XML; enclave/typehash USER_DATA; SROS2 refused where this Cyclone DDS cannot secure), against real Cyclone DDS
processes on loopback (CYCLONEDDS_URI keeps every test on the lo interface; rmw's fragment goes before it)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant
from cyclonedds.core import Policy

from hardware import messages as m
from hardware.transport.base import QOS_SENSOR_DATA
from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config
from hardware.transport.dds_participant import (TYPE_HASHES, Discovery, discovery_config, discovery_from_env,
                                                domain_config, endpoint_user_data, type_hash)
from tests.hardware.test_transport import PUBLISHER_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
# Seen in `ros2 topic info -v` on Jazzy (e.g. joint_state_broadcaster's /joint_states, the demo talker's /chatter)
JAZZY_HASHES = {m.String: "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
                m.JointState: "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"}


def test_discovery_variables_read_as_rcl_reads_them():
    assert discovery_from_env({}) == Discovery("SUBNET")
    assert discovery_from_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": ""}) == Discovery("SUBNET")
    assert discovery_from_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}) == Discovery("OFF")
    assert discovery_from_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": "bogus"}) == Discovery("LOCALHOST")
    assert discovery_from_env({"ROS_STATIC_PEERS": "192.168.0.7;robot.local;"}) == \
        Discovery("SUBNET", ("192.168.0.7", "robot.local"))
    # deprecated ROS_LOCALHOST_ONLY=1 still wins and drops the static peers
    assert discovery_from_env({"ROS_LOCALHOST_ONLY": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET",
                               "ROS_STATIC_PEERS": "10.0.0.2"}) == Discovery("LOCALHOST")
    assert discovery_from_env({"ROS_LOCALHOST_ONLY": "0"}) == Discovery("SUBNET")


def test_discovery_config_is_the_fragment_rmw_cyclonedds_writes():
    assert discovery_config(Discovery("SUBNET")) == "" and discovery_config(Discovery("SYSTEM_DEFAULT", ("x",))) == ""
    auto = "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
    no_multicast = "<General><AllowMulticast>false</AllowMulticast></General>"
    assert discovery_config(Discovery("LOCALHOST")) == (
        f'<CycloneDDS><Domain>{no_multicast}{auto}<Peers><Peer address="localhost"/></Peers>'
        "</Discovery></Domain></CycloneDDS>")
    assert discovery_config(Discovery("SUBNET", ("10.0.0.2",))) == (
        f'<CycloneDDS><Domain>{auto}<Peers><Peer address="10.0.0.2"/></Peers></Discovery></Domain></CycloneDDS>')
    assert discovery_config(Discovery("OFF", ("10.0.0.2",)), pid=42) == (
        f"<CycloneDDS><Domain>{no_multicast}<Discovery><ParticipantIndex>none</ParticipantIndex>"
        "<Tag>ros_discovery_off_42</Tag></Discovery></Domain></CycloneDDS>")
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "CYCLONEDDS_URI": "file:///etc/cyclone.xml"}
    assert domain_config(env) == discovery_config(Discovery("LOCALHOST")) + ",file:///etc/cyclone.xml"
    assert domain_config({}) is None   # SUBNET: Cyclone's defaults plus CYCLONEDDS_URI, as rmw leaves them


def test_type_hashes_are_jazzys():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for msg_type in m.MESSAGE_TYPES:
        assert type_hash(msg_type) == TYPE_HASHES[m.ros_type_name(msg_type)] == \
            store.hash_rihs01(m.ros_type_name(msg_type)), msg_type
    for msg_type, expected in JAZZY_HASHES.items():
        assert type_hash(msg_type) == expected
        assert endpoint_user_data(msg_type) == f"typehash={expected};".encode()


def _talker(domain, tmp_path, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER_SCRIPT, "--ros-args", "-e", "/robot/talker",
                             "-p", "rate_hz:=50.0"],
                            env={**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
                                 "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def _user_data(qos) -> bytes:
    return next((p.data for p in qos if isinstance(p, Policy.Userdata)), b"")


def test_localhost_range_is_found_with_enclave_and_typehash_and_off_is_not(domain, tmp_path):
    listener = DdsNode("listener", domain_id=domain)
    got = []
    listener.create_subscription(m.JointState, "/joint_states", got.append, QOS_SENSOR_DATA)
    executor = DdsExecutor([listener])
    hidden = _talker(domain, tmp_path, ROS_AUTOMATIC_DISCOVERY_RANGE="OFF")
    try:
        executor.spin_until(lambda: False, timeout_s=4.0)
        assert got == [] and hidden.poll() is None   # OFF: the talker runs and nobody hears it
    finally:
        hidden.terminate()
        hidden.communicate(timeout=20)
    talker = _talker(domain, tmp_path, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    try:
        assert executor.spin_until(lambda: len(got) >= 5, timeout_s=30), talker.stderr.read() if talker.poll() else ""
        participants = BuiltinDataReader(listener.context.participant, BuiltinTopicDcpsParticipant).read(N=100)
        assert b"enclave=/robot/talker;" in [_user_data(p.qos) for p in participants]
        writers = [s for s in listener.context.publications() if s.topic_name == "rt/joint_states"]
        assert writers and all(_user_data(w.qos) == f"typehash={JAZZY_HASHES[m.JointState]};".encode()
                               for w in writers)
        # and the talker process's node is on the graph topic, with that writer (what `ros2 node list` shows)
        nodes = {(n.node_namespace, n.node_name): n for info in _graph_samples(domain)
                 for n in info.node_entities_info_seq}
        assert {bytes(g.data) for g in nodes[("/", "talker")].writer_gid_seq} >= {w.key.bytes for w in writers}
    finally:
        talker.terminate()
        talker.communicate(timeout=20)
    listener.destroy()


def _graph_samples(domain, timeout_s: float = 10.0) -> list:
    """ParticipantEntitiesInfo samples on ros_discovery_info, read by a fresh participant as a ROS 2 tool's."""
    from cyclonedds.core import Qos
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from hardware.transport.dds_graph import DISCOVERY_TOPIC, ParticipantEntitiesInfo

    tool = DomainParticipant(domain)
    reader = DataReader(tool, Topic(tool, DISCOVERY_TOPIC, ParticipantEntitiesInfo),
                        qos=Qos(Policy.Reliability.Reliable(duration(milliseconds=100)),
                                Policy.Durability.TransientLocal, Policy.History.KeepLast(1)))
    deadline, samples = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        samples += reader.take(N=100)
        if any(n.node_name == "talker" for s in samples for n in s.node_entities_info_seq):
            break
        time.sleep(0.05)
    return samples


@pytest.mark.parametrize("strategy", ["Enforce", "Permissive"])
def test_sros2_on_a_cyclone_without_security(domain, tmp_path, strategy):
    """The PyPI cyclonedds has no DDS Security: Enforce is refused with the reason, Permissive runs unsecured
    and says so (what rcl does in Permissive mode when it cannot secure a node)."""
    from hardware.transport.dds_participant import cyclone_security_plugins

    if cyclone_security_plugins():
        pytest.skip("this Cyclone DDS has security built in")
    proc = _talker(domain, tmp_path, ROS_SECURITY_ENABLE="true", ROS_SECURITY_STRATEGY=strategy,
                   ROS_SECURITY_KEYSTORE=str(tmp_path / "keystore"))
    if strategy == "Enforce":
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "refusing to run unsecured" in err and "has no DDS Security built in" in err and "Traceback" not in err
        return
    time.sleep(3)
    proc.terminate()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "running UNSECURED" in err, err


def test_nodes_are_announced_on_the_ros_graph_topic(domain):
    """What `ros2 node list` reads: ParticipantEntitiesInfo on ros_discovery_info, read here by a plain
    cyclonedds reader as rmw's graph cache reads it, and decoded by rosbags as rmw_dds_common's message."""
    from cyclonedds.core import Qos
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration
    from rosbags.typesys import Stores, get_typestore

    from hardware.transport.dds_graph import (DISCOVERY_TOPIC, PARTICIPANT_ENTITIES_INFO_HASH,
                                              ParticipantEntitiesInfo)

    store = get_typestore(Stores.ROS2_JAZZY)
    assert store.hash_rihs01("rmw_dds_common/msg/ParticipantEntitiesInfo") == PARTICIPANT_ENTITIES_INFO_HASH
    node = DdsNode("talker", namespace="/arm", domain_id=domain)
    publisher = node.create_publisher(m.JointState, "joint_states")
    subscription = node.create_subscription(m.Bool, "/estop", lambda msg: None)
    tool = DomainParticipant(domain)   # another participant of this process, like a ROS 2 tool's
    reader = DataReader(tool, Topic(tool, DISCOVERY_TOPIC, ParticipantEntitiesInfo),
                        qos=Qos(Policy.Reliability.Reliable(duration(milliseconds=100)),
                                Policy.Durability.TransientLocal, Policy.History.KeepLast(1)))
    deadline, infos = time.monotonic() + 10, []
    while time.monotonic() < deadline and not infos:
        infos = [s for s in reader.take(N=10) if bytes(s.gid.data) == node.context.participant.guid.bytes]
        time.sleep(0.05)
    (entry,) = infos[-1].node_entities_info_seq
    assert (entry.node_namespace, entry.node_name) == ("/arm", "talker")
    assert [bytes(g.data) for g in entry.writer_gid_seq] == [publisher.guid.bytes]
    assert [bytes(g.data) for g in entry.reader_gid_seq] == [subscription.reader.guid.bytes]
    decoded = store.deserialize_cdr(infos[-1].serialize(), "rmw_dds_common/msg/ParticipantEntitiesInfo")
    assert decoded.node_entities_info_seq[0].node_name == "talker"
    assert bytes(decoded.gid.data) == node.context.participant.guid.bytes
    node.destroy()
