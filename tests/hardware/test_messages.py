"""Wire compatibility of hardware/messages.py with ROS 2: for every type, the CDR cyclonedds writes is byte for
byte what the rosbags ROS 2 type store writes (the bytes rosbag2 stores and rmw sends), and each side reads the
other's bytes. Plus the numpy conversions."""
import zlib
from dataclasses import fields, is_dataclass

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.base import Nodetype

from hardware import messages as m

STORES = [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY]
NP_DTYPES = {"int32": np.int32, "uint32": np.uint32, "float64": np.float64, "uint8": np.uint8}
ALPHABET = list("abcXYZ_/0129 é") + ["°", "\u4e2d"]  # multi-byte UTF-8 too: CDR string lengths count bytes


def _random_value(store, node, rng):
    kind, detail = node
    if kind == Nodetype.NAME:
        return _random_message(store, detail, rng)
    if kind == Nodetype.BASE:
        name = detail[0]
        if name == "string":
            return "".join(rng.choice(ALPHABET, size=rng.integers(0, 8)))
        if name == "bool":
            return bool(rng.integers(0, 2))
        if name == "float64":
            return float(rng.choice([rng.normal() * 10.0 ** rng.integers(-5, 5), 0.0, -0.0, np.inf, 1e300]))
        info = np.iinfo(NP_DTYPES[name])
        return int(rng.integers(info.min, info.max, endpoint=True))
    sub, size = detail
    length = size if kind == Nodetype.ARRAY else int(rng.integers(0, 7 if sub[0] != Nodetype.BASE else 40))
    values = [_random_value(store, sub, rng) for _ in range(length)]
    if sub[0] == Nodetype.BASE and sub[1][0] in NP_DTYPES:
        return np.array(values, dtype=NP_DTYPES[sub[1][0]])
    return values


def _random_message(store, ros_name, rng):
    cls = store.types[ros_name]
    return cls(**{name: _random_value(store, node, rng) for name, node in store.fielddefs[ros_name][1]})


def _plain(value):
    """rosbags message / our dataclass -> nested dicts and lists, comparable across both."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if not f.name.startswith("__")}
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@pytest.fixture(scope="module", params=STORES, ids=lambda s: s.name)
def store(request):
    return get_typestore(request.param)


@pytest.mark.parametrize("msg_type", m.MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_field_names_and_order_match_the_ros2_definition(store, msg_type):
    ros_name = m.ros_type_name(msg_type)
    assert [f.name for f in fields(msg_type)] == [name for name, _ in store.fielddefs[ros_name][1]]
    assert msg_type.__idl_typename__ == "{}::msg::dds_::{}_".format(*ros_name.split("/msg/"))


@pytest.mark.parametrize("msg_type", m.MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_random_messages_have_identical_cdr_both_ways(store, msg_type):
    ros_name = m.ros_type_name(msg_type)
    rng = np.random.default_rng(zlib.crc32(ros_name.encode()))
    for _ in range(40):
        theirs = _random_message(store, ros_name, rng)
        their_bytes = bytes(store.serialize_cdr(theirs, ros_name))
        ours = msg_type.deserialize(their_bytes)  # rosbags -> cyclonedds
        assert _plain(ours) == _plain(theirs)
        assert ours.serialize() == their_bytes  # cyclonedds -> the same bytes, header included
        assert _plain(store.deserialize_cdr(ours.serialize(), ros_name)) == _plain(theirs)


@pytest.mark.parametrize("msg_type", m.MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_default_messages_match_ros2_defaults(store, msg_type):
    ros_name = m.ros_type_name(msg_type)
    ours = msg_type()
    assert _plain(store.deserialize_cdr(ours.serialize(), ros_name)) == _plain(ours)
    assert ours.serialize()[:4] == b"\x00\x01\x00\x00"  # CDR little-endian encapsulation, plain XCDR1


def test_string_padding_for_every_length_up_to_alignment():
    store = get_typestore(Stores.ROS2_HUMBLE)
    for length in range(0, 12):
        msg = m.JointState(header=m.Header(frame_id="f" * length), name=["x" * length, "y"], position=[1.0, 2.0])
        ref = store.types["sensor_msgs/msg/JointState"](
            header=store.types["std_msgs/msg/Header"](stamp=store.types["builtin_interfaces/msg/Time"](0, 0),
                                                      frame_id="f" * length),
            name=["x" * length, "y"], position=np.array([1.0, 2.0]), velocity=np.array([]), effort=np.array([]))
        assert msg.serialize() == bytes(store.serialize_cdr(ref, "sensor_msgs/msg/JointState")), length


def test_big_endian_cdr_from_rosbags_is_read():
    store = get_typestore(Stores.ROS2_HUMBLE)
    theirs = _random_message(store, "sensor_msgs/msg/CameraInfo", np.random.default_rng(3))
    big = bytes(store.serialize_cdr(theirs, "sensor_msgs/msg/CameraInfo", little_endian=False))
    assert _plain(m.CameraInfo.deserialize(big)) == _plain(theirs)


def test_image_round_trip_and_wire_bytes():
    store = get_typestore(Stores.ROS2_HUMBLE)
    rng = np.random.default_rng(0)
    cases = [("rgb8", rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)),
             ("bgra8", rng.integers(0, 256, (3, 2, 4), dtype=np.uint8)),
             ("mono8", rng.integers(0, 256, (4, 3), dtype=np.uint8)),
             ("16UC1", rng.integers(0, 65536, (6, 5), dtype=np.uint16)),
             ("32FC1", rng.normal(size=(2, 9)).astype(np.float32))]
    for encoding, pixels in cases:
        msg = m.image_from_array(pixels, encoding, stamp_ns=1_700_000_000_123_456_789, frame_id="camera")
        back = m.array_from_image(m.Image.deserialize(msg.serialize()))
        np.testing.assert_array_equal(back, pixels)
        assert back.dtype == pixels.dtype
        theirs = store.deserialize_cdr(msg.serialize(), "sensor_msgs/msg/Image")
        assert theirs.step == msg.step and bytes(theirs.data) == msg.data
        assert theirs.header.stamp.sec == 1_700_000_000 and theirs.header.stamp.nanosec == 123_456_789


def test_image_with_row_padding_and_big_endian_is_decoded():
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    rows = [pixels[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(3)]  # 2 padding bytes per row
    msg = m.Image(height=3, width=4, encoding="16UC1", is_bigendian=1, step=10, data=b"".join(rows))
    np.testing.assert_array_equal(m.array_from_image(msg), pixels)


def test_image_errors_name_the_problem():
    with pytest.raises(ValueError, match="rgb8.*HxWx3 uint8"):
        m.image_from_array(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="encoding 'yuv422'"):
        m.image_from_array(np.zeros((2, 2), np.uint8), "yuv422")
    with pytest.raises(ValueError, match="too small"):
        m.array_from_image(m.Image(height=2, width=2, encoding="mono8", step=2, data=b"\0\0\0"))


def test_a_vga_image_serialises_fast():
    import time

    msg = m.image_from_array(np.zeros((480, 640, 3), np.uint8), "rgb8")
    start = time.perf_counter()
    data = msg.serialize()
    m.Image.deserialize(data)
    assert time.perf_counter() - start < 0.05  # element-wise packing took ~85 ms for the serialise alone


def test_joint_state_conversions_reorder_by_name():
    msg = m.joint_state(["b", "a", "c"], [2.0, 1.0, 3.0], velocity=[20, 10, 30], stamp_ns=5_000_000_007)
    position, velocity, effort = m.joint_state_arrays(msg, ["a", "b"])
    np.testing.assert_array_equal(position, [1.0, 2.0])
    np.testing.assert_array_equal(velocity, [10.0, 20.0])
    assert effort is None
    assert m.ns_from_time(msg.header.stamp) == 5_000_000_007
    with pytest.raises(ValueError, match=r"lacks joints \['d'\]"):
        m.joint_state_arrays(msg, ["a", "d"])
    with pytest.raises(ValueError, match="velocity: 1 values for 2"):
        m.joint_state(["a", "b"], [0, 0], velocity=[1])


def test_commands_and_trajectories():
    cmd = m.float64_multi_array(np.array([0.5, -1.0]))
    assert cmd.data == [0.5, -1.0] and cmd.layout.dim == []
    traj = m.joint_trajectory(["a", "b"], [0.1, 0.2], time_from_start_s=0.02)
    assert traj.points[0].time_from_start == m.Duration(0, 20_000_000)
    assert m.ns_from_time(m.duration_from_s(2.5)) == 2_500_000_000
    with pytest.raises(ValueError, match="1-D"):
        m.float64_multi_array(np.zeros((2, 2)))


def test_type_names_resolve_in_every_spelling():
    for spelling in ("sensor_msgs/msg/JointState", "sensor_msgs/JointState", "sensor_msgs::msg::dds_::JointState_"):
        assert m.message_type(spelling) is m.JointState
    with pytest.raises(KeyError, match="unknown message type"):
        m.message_type("geometry_msgs/msg/Pose")
