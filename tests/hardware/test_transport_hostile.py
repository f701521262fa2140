"""A hostile participant on the domain: its own cyclonedds DomainParticipant (not the transport's) writes raw
bytes under ROS 2 topic and type names to a live DdsNode. Nothing it sends may raise out of the executor or stall
it: bad UTF-8 arrives replaced (as rclpy decodes), truncated / absurd / oversized samples are dropped and counted,
and good samples keep flowing."""
import struct
import time
from dataclasses import dataclass

import pytest
from cyclonedds._clayer import ddspy_write
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final
from cyclonedds.idl.types import float64, sequence
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic

from hardware import messages as m
from hardware.transport.base import QOS_DEFAULT, QoS
from hardware.messages import max_sample_bytes
from hardware.transport.dds import DdsExecutor, DdsNode, dds_qos, decode_sample, spin_in_thread

HEADER = b"\x00\x01\x00\x00"   # XCDR1 little endian, as ROS 2 sends


def _wait(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


class Hostile:
    """Writers on a participant of its own; `raw` sends bytes as they are, no serialiser involved."""

    def __init__(self, domain):
        self.participant = DomainParticipant(domain)
        self.writers = {}

    def writer(self, topic, msg_type, qos=QOS_DEFAULT):
        key = (topic, msg_type)
        if key not in self.writers:
            self.writers[key] = DataWriter(self.participant, Topic(self.participant, f"rt{topic}", msg_type),
                                           qos=dds_qos(qos))
        return self.writers[key]

    def raw(self, topic, msg_type, data: bytes):
        assert ddspy_write(self.writer(topic, msg_type)._ref, data) == 0


@pytest.fixture
def live(domain):
    node = DdsNode("victim", domain_id=domain)
    got = {"/joint_states": [], "/goal": [], "/estop": []}
    node.create_subscription(m.JointState, "/joint_states", got["/joint_states"].append)
    node.create_subscription(m.Float64MultiArray, "/goal", got["/goal"].append, QoS(max_sample_bytes=256))
    node.create_subscription(m.Bool, "/estop", got["/estop"].append)
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(time.monotonic()))
    executor = DdsExecutor([node])
    thread = spin_in_thread(executor)
    hostile = Hostile(domain)
    for topic, msg_type in (("/joint_states", m.JointState), ("/goal", m.Float64MultiArray), ("/estop", m.Bool)):
        writer = hostile.writer(topic, msg_type)
        assert _wait(lambda: len(writer.get_matched_subscriptions()) > 0), f"no match on {topic}"
    yield node, got, ticks, hostile, thread
    executor.shutdown()
    thread.join(5)


def test_invalid_utf8_joint_name_arrives_replaced(live):
    node, got, _, hostile, thread = live
    good = bytearray(m.joint_state(["a"], [0.25]).serialize())
    assert len(good) == 52
    good[good.index(b"a\x00")] = 0xFF     # the 52-byte sample that killed DDS-transport nodes
    hostile.raw("/joint_states", m.JointState, bytes(good))
    assert _wait(lambda: got["/joint_states"]), "the sample should arrive, decoded with replacement"
    msg = got["/joint_states"][0]
    assert msg.name == ["\ufffd"] and msg.position == [0.25]
    assert thread.is_alive()


def _malformed_joint_states() -> list[bytes]:
    js = m.joint_state(["j1", "j2"], [0.1, 0.2], [0.0, 0.0]).serialize()
    absurd_names = HEADER + bytes(8) + struct.pack("<I", 1) + bytes(4) + struct.pack("<I", 0xFFFFFFFF)
    absurd_positions = js[:40] + struct.pack("<I", 0xFFFFFFF0) + js[44:]   # the position count
    absurd_string = js[:24] + struct.pack("<I", 0xFFFFFF00) + js[28:]      # the first name's length
    return [js[:30], js[:-3], absurd_names, absurd_positions, absurd_string, b"\x00\x01", b""]


def test_cyclone_refuses_to_send_malformed_cdr(live):
    """Why the network tests below cannot carry truncated CDR: Cyclone checks samples against the type when
    writing (and reading); what a stack without that check sends goes through decode_sample (next test)."""
    _, got, _, hostile, _ = live
    for data in _malformed_joint_states():
        assert ddspy_write(hostile.writer("/joint_states", m.JointState)._ref, data) != 0
    assert not got["/joint_states"]


@pytest.mark.parametrize("index", range(len(_malformed_joint_states())))
def test_malformed_samples_are_dropped_not_raised(index):
    data = _malformed_joint_states()[index]
    start = time.perf_counter()
    msg, reason, detail = decode_sample(m.JointState, data, max_sample_bytes(m.JointState))
    assert msg is None and reason == "malformed" and "JointState" in detail
    assert time.perf_counter() - start < 0.05, "an absurd length must not make decoding slow"


def test_samples_over_the_bound_are_dropped_without_decoding():
    data = m.float64_multi_array([1.0, 2.0, 3.0]).serialize()
    assert decode_sample(m.Float64MultiArray, data, len(data))[0].data == [1.0, 2.0, 3.0]
    assert decode_sample(m.Float64MultiArray, data, len(data) - 1)[1] == "oversized"
    assert decode_sample(m.Float64MultiArray, b"\xff" * 100, 50)[1] == "oversized"   # not looked at


def test_a_bad_sample_on_one_topic_does_not_touch_the_others(live):
    node, got, _, hostile, thread = live
    hostile.writer("/estop", m.Bool).write(m.Bool(data=True))
    hostile.raw("/goal", m.Float64MultiArray, m.Float64MultiArray(data=[0.0] * 100).serialize())   # > 256 bytes
    hostile.writer("/joint_states", m.JointState).write(m.joint_state(["ok"], [1.0]))
    assert _wait(lambda: got["/estop"] and got["/joint_states"] and node.dropped_samples().get("/goal"))
    assert node.dropped_samples() == {"/goal": {"oversized": 1}}
    assert got["/estop"][0].data is True and not got["/goal"] and thread.is_alive()


def test_oversized_samples_are_dropped_before_deserialising(live):
    node, got, ticks, hostile, thread = live
    goal = hostile.writer("/goal", m.Float64MultiArray)
    big = m.Float64MultiArray(data=[0.0] * 200_000)          # 1.6 MB, as in the review
    start = time.monotonic()
    for _ in range(20):
        goal.write(big)
    goal.write(m.float64_multi_array([0.4, 0.1, 0.3]))
    assert _wait(lambda: got["/goal"]), node.dropped_samples()
    assert got["/goal"][-1].data == [0.4, 0.1, 0.3] and len(got["/goal"]) == 1
    assert node.dropped_samples()["/goal"]["oversized"] >= 1
    during = [t for t in ticks if t >= start]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert gaps and max(gaps) < 0.2, f"the timer kept its 10 ms period within 200 ms: max gap {max(gaps):.3f} s"
    assert thread.is_alive()


@dataclass
@final
class NotAJointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    """Same DDS type name, different fields: a confused or hostile publisher."""
    values: sequence[float64]


def test_a_different_type_behind_the_name_cannot_crash_the_reader(live):
    node, got, _, hostile, thread = live
    writer = DataWriter(hostile.participant, Topic(hostile.participant, "rt/joint_states", NotAJointState),
                        qos=dds_qos(QOS_DEFAULT))
    time.sleep(0.3)   # matched or not (type assignability decides): either way nothing may break
    for _ in range(5):
        writer.write(NotAJointState(values=[1e300, -1.0, 7.0]))
    hostile.writer("/joint_states", m.JointState).write(m.joint_state(["ok"], [1.0]))
    assert _wait(lambda: any(msg.name == ["ok"] for msg in got["/joint_states"]))
    assert all(msg.name == ["ok"] for msg in got["/joint_states"])
    assert thread.is_alive()
