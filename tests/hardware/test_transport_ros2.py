"""The rclpy adapter without ROS 2: its generic field-by-field conversion, exercised with the rosbags ROS 2
classes standing in for the rosidl ones (same field names; numpy arrays where rclpy has numpy/array.array),
and the transport choice. Ros2Node itself needs rclpy and is only checked to fail clearly here."""
import array
from dataclasses import fields, is_dataclass

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from hardware import messages as m
from hardware.transport import choose_transport, create_node
from hardware.transport.base import NodeOptions
from hardware.transport.ros2 import from_ros, to_ros
from tests.hardware.test_messages import _plain, _random_message

STORE = get_typestore(Stores.ROS2_JAZZY)


def _plain_rosidl(value):
    """_plain, plus array.array (what to_ros hands rosidl for uint8[] fields)."""
    if isinstance(value, array.array):
        return value.tolist()
    if is_dataclass(value):
        return {f.name: _plain_rosidl(getattr(value, f.name)) for f in fields(value) if not f.name.startswith("__")}
    if isinstance(value, list):
        return [_plain_rosidl(v) for v in value]
    return _plain(value)


def rosbags_class(msg_type):
    return STORE.types[m.ros_type_name(msg_type)]


@pytest.mark.parametrize("msg_type", m.MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_from_ros_then_our_cdr_equals_theirs(msg_type):
    ros_name = m.ros_type_name(msg_type)
    rng = np.random.default_rng(7)
    for _ in range(10):
        theirs = _random_message(STORE, ros_name, rng)
        ours = from_ros(theirs, msg_type)
        assert type(ours) is msg_type
        assert ours.serialize() == bytes(STORE.serialize_cdr(theirs, ros_name))


@pytest.mark.parametrize("msg_type", m.MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_to_ros_keeps_every_field(msg_type):
    rng = np.random.default_rng(8)
    ours = msg_type.deserialize(bytes(STORE.serialize_cdr(_random_message(STORE, m.ros_type_name(msg_type), rng),
                                                          m.ros_type_name(msg_type))))
    theirs = to_ros(ours, rosbags_class)
    assert type(theirs) is rosbags_class(msg_type)
    assert _plain_rosidl(theirs) == _plain(ours)
    assert from_ros(theirs, msg_type) == ours


def test_transport_choice_without_ros2(monkeypatch):
    monkeypatch.delenv("ROBOT_RL_TRANSPORT", raising=False)
    assert choose_transport() == "dds"  # no rclpy on this machine
    monkeypatch.setenv("ROBOT_RL_TRANSPORT", "zenoh")
    with pytest.raises(ValueError, match="transport 'zenoh': expected one of"):
        choose_transport()
    with pytest.raises(ImportError, match="rclpy"):
        create_node(NodeOptions("n"), transport="ros2")


class RosidlImageStandIn:
    """What rosidl_generator_py generates for a uint8[] field (sensor_msgs/Image.data), standing in for the rclpy
    class (not installable here): an array.array('B') is stored as it is; anything else is checked element by
    element in Python before it is copied, which is what made a 640x480 image take ~0.5 s."""

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        if isinstance(value, array.array):
            assert value.typecode == "B"
            self._data = value
            return
        assert all(isinstance(v, int) for v in value) and all(0 <= v < 256 for v in value)
        self._data = array.array("B", value)


def test_image_goes_to_rosidl_as_array_of_bytes():
    import time

    image = m.image_from_array(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), "rgb8", 1, "c")
    classes = lambda t: RosidlImageStandIn if t is m.Image else rosbags_class(t)   # noqa: E731
    start = time.perf_counter()
    theirs = to_ros(image, classes)
    fast = time.perf_counter() - start
    assert isinstance(theirs.data, array.array) and theirs.data.tobytes() == image.data
    start = time.perf_counter()
    RosidlImageStandIn(data=image.data)   # what handing it bytes costs
    slow = time.perf_counter() - start
    assert fast < 0.05 and slow > 5 * fast, (fast, slow)
    assert from_ros(theirs, m.Image) == image
