"""ROS 2 message types as cyclonedds IDL structs, byte-compatible with ROS 2 on the wire and in rosbag2.

Each class mirrors its ROS 2 ``.msg`` definition field by field (same names, order and types) and carries the
DDS type name that ROS 2's rmw layers use (``pkg::msg::dds_::Name_``). All are keyless and FINAL: FINAL keeps
cyclonedds on plain XCDR1 CDR, which is what ROS 2 sends and what ``ros2 bag`` stores (APPENDABLE would switch
to XCDR2 with a delimiter header). ``msg.serialize()`` returns the 4-byte encapsulation header + CDR body,
exactly the bytes a rosbag2 file stores for that message (tests/hardware/test_messages.py proves this against
the ``rosbags`` type store for every type).

Also here: conversions between these messages and numpy arrays (time stamps, joint states, images, arrays).
"""
# No `from __future__ import annotations`: cyclonedds resolves the field annotations at runtime.

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Sequence

import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final
from cyclonedds.idl.types import array, float64, int32, sequence, uint8, uint32

NS_PER_S = 1_000_000_000


# ---------------------------------------------------------------- builtin_interfaces
@dataclass
@final
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
@final
class Duration(IdlStruct, typename="builtin_interfaces::msg::dds_::Duration_"):
    sec: int32 = 0
    nanosec: uint32 = 0


# ---------------------------------------------------------------- std_msgs
@dataclass
@final
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
@final
class Bool(IdlStruct, typename="std_msgs::msg::dds_::Bool_"):
    data: bool = False


@dataclass
@final
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


@dataclass
@final
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str = ""
    size: uint32 = 0
    stride: uint32 = 0


@dataclass
@final
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: uint32 = 0


@dataclass
@final
class Float64MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: sequence[float64] = field(default_factory=list)


# ---------------------------------------------------------------- sensor_msgs
@dataclass
@final
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header = field(default_factory=Header)
    name: sequence[str] = field(default_factory=list)
    position: sequence[float64] = field(default_factory=list)
    velocity: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)


@dataclass
@final
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = b""  # bytes in Python (see _serialize_as_bytes)


@dataclass
@final
class RegionOfInterest(IdlStruct, typename="sensor_msgs::msg::dds_::RegionOfInterest_"):
    x_offset: uint32 = 0
    y_offset: uint32 = 0
    height: uint32 = 0
    width: uint32 = 0
    do_rectify: bool = False


@dataclass
@final
class CameraInfo(IdlStruct, typename="sensor_msgs::msg::dds_::CameraInfo_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    distortion_model: str = ""
    d: sequence[float64] = field(default_factory=list)
    k: array[float64, 9] = field(default_factory=lambda: [0.0] * 9)
    r: array[float64, 9] = field(default_factory=lambda: [0.0] * 9)
    p: array[float64, 12] = field(default_factory=lambda: [0.0] * 12)
    binning_x: uint32 = 0
    binning_y: uint32 = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


# ---------------------------------------------------------------- trajectory_msgs
@dataclass
@final
class JointTrajectoryPoint(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectoryPoint_"):
    positions: sequence[float64] = field(default_factory=list)
    velocities: sequence[float64] = field(default_factory=list)
    accelerations: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
@final
class JointTrajectory(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectory_"):
    header: Header = field(default_factory=Header)
    joint_names: sequence[str] = field(default_factory=list)
    points: sequence[JointTrajectoryPoint] = field(default_factory=list)


def _serialize_as_bytes(msg_type: type[IdlStruct], member: str) -> None:
    """Make cyclonedds (de)serialise a sequence<uint8> member as one `bytes` copy instead of element by element.

    cyclonedds packs sequence<uint8> with struct.pack over a Python list: ~85 ms for one 640x480 RGB image. Its
    BytesMachine writes the identical wire form (uint32 length + raw bytes) in ~1 ms, but a `bytes` annotation
    has no XTypes type object, so topics could not be created. We keep the sequence<uint8> annotation (type
    object and discovery unchanged) and swap only the serialiser; test_messages checks the bytes against rosbags.
    """
    from cyclonedds.idl._machinery import BytesMachine  # private, hence the byte-for-byte tests

    idl = msg_type.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        machine.members_machines[member] = BytesMachine()


_serialize_as_bytes(Image, "data")


def _decode_strings_with_replace(msg_type: type[IdlStruct]) -> None:
    """Decode every string member of `msg_type` with errors="replace", as rclpy does, so one sample whose text is
    not valid UTF-8 arrives with U+FFFD in place of the bad bytes instead of raising UnicodeDecodeError in the
    reader (a remote crash: 52 bytes of JointState killed any DDS-transport node). Encoding is unchanged."""
    from cyclonedds.idl._machinery import ArrayMachine, SequenceMachine, StringMachine  # private, hence the tests

    class ReplacingStringMachine(StringMachine):
        def deserialize(self, buffer, *args, **kwargs):
            buffer.align(4)
            numbytes = buffer.read("I", 4)
            if numbytes == 0:        # CDR strings carry their NUL, so 0 is malformed; rmw reads it as ""
                return ""
            text = buffer.read_bytes(numbytes - 1)
            buffer.read("b", 1)
            return bytes(text).decode("utf-8", errors="replace")

    def swap(machine):
        if type(machine) is StringMachine:
            return ReplacingStringMachine(machine.bound)
        if isinstance(machine, (SequenceMachine, ArrayMachine)):
            machine.submachine = swap(machine.submachine)
        return machine

    idl = msg_type.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        for member, sub in machine.members_machines.items():
            machine.members_machines[member] = swap(sub)

MESSAGE_TYPES: tuple[type[IdlStruct], ...] = (
    Time, Duration, Header, Bool, String, MultiArrayDimension, MultiArrayLayout, Float64MultiArray,
    JointState, Image, RegionOfInterest, CameraInfo, JointTrajectoryPoint, JointTrajectory)
for _type in MESSAGE_TYPES:
    _decode_strings_with_replace(_type)

# The largest serialised sample (encapsulation header + CDR, bytes) a reader accepts by default, per type; larger
# ones are dropped and counted before they are deserialised (a 1.6 MB /goal stalled a node's loop). Generous for
# what these topics carry (JointState: ~100 joints with long names is ~6 KiB; Image: 4K rgb16 is 50 MB); a
# subscription can bound tighter with QoS.max_sample_bytes (policy_node: /goal, /estop). Nested-only types
# (Time, Header, ...) are never topics here and get the fallback.
MAX_SAMPLE_BYTES: dict[type[IdlStruct], int] = {
    Bool: 64, String: 64 * 1024, Float64MultiArray: 64 * 1024, JointState: 64 * 1024,
    Image: 64 * 1024 * 1024, CameraInfo: 64 * 1024, JointTrajectory: 1024 * 1024,
}
DEFAULT_MAX_SAMPLE_BYTES = 64 * 1024


def max_sample_bytes(msg_type: type[IdlStruct]) -> int:
    return MAX_SAMPLE_BYTES.get(msg_type, DEFAULT_MAX_SAMPLE_BYTES)


def ros_type_name(msg_type: type[IdlStruct]) -> str:
    """'sensor_msgs::msg::dds_::JointState_' -> 'sensor_msgs/msg/JointState' (rosbag2 / rosidl name)."""
    dds_name = msg_type.__idl_typename__
    package, _msg, _dds, name = dds_name.split("::")
    return f"{package}/msg/{name.removesuffix('_')}"


def dds_type_name(msg_type: type[IdlStruct]) -> str:
    return msg_type.__idl_typename__


_BY_ROS_NAME = {ros_type_name(t): t for t in MESSAGE_TYPES}


def message_type(name: str) -> type[IdlStruct]:
    """Our class for a ROS type name ('sensor_msgs/msg/JointState', 'sensor_msgs/JointState' or the DDS name)."""
    if "::" in name:
        package, _msg, _dds, base = name.split("::")
        name = f"{package}/msg/{base.removesuffix('_')}"
    elif name.count("/") == 1:
        package, base = name.split("/")
        name = f"{package}/msg/{base}"
    try:
        return _BY_ROS_NAME[name]
    except KeyError:
        raise KeyError(f"unknown message type {name!r}; expected one of {sorted(_BY_ROS_NAME)}") from None


def message_to_dict(msg) -> dict:
    """Plain nested dict/list/scalar view of a message (bytes stay bytes)."""
    out = {}
    for f in fields(msg):
        value = getattr(msg, f.name)
        if is_dataclass(value):
            value = message_to_dict(value)
        elif isinstance(value, list):
            value = [message_to_dict(v) if is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


# ---------------------------------------------------------------- time stamps
def time_from_ns(stamp_ns: int) -> Time:
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def ns_from_time(stamp: Time | Duration) -> int:
    return stamp.sec * NS_PER_S + stamp.nanosec


def duration_from_s(seconds: float) -> Duration:
    sec, nanosec = divmod(int(round(seconds * NS_PER_S)), NS_PER_S)
    return Duration(sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str = "") -> Header:
    return Header(stamp=time_from_ns(stamp_ns), frame_id=frame_id)


# ---------------------------------------------------------------- joint states and commands
def _floats(values, what: str) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array, got shape {arr.shape}")
    return arr.tolist()


def joint_state(names: Sequence[str], position, velocity=None, effort=None, stamp_ns: int = 0,
                frame_id: str = "") -> JointState:
    """JointState from arrays; velocity/effort may be omitted (empty, as ROS 2 allows)."""
    msg = JointState(header=header(stamp_ns, frame_id), name=list(names), position=_floats(position, "position"),
                     velocity=[] if velocity is None else _floats(velocity, "velocity"),
                     effort=[] if effort is None else _floats(effort, "effort"))
    for what in ("position", "velocity", "effort"):
        n = len(getattr(msg, what))
        if n not in (0, len(msg.name)) or (what == "position" and n != len(msg.name)):
            raise ValueError(f"JointState.{what}: {n} values for {len(msg.name)} joint names")
    return msg


def joint_state_arrays(msg: JointState, names: Sequence[str] | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(position, velocity, effort) as float64 arrays, reordered to `names` when given (None = missing field).

    ROS 2 publishers may list joints in any order and may include extra joints, so consumers ask by name.
    """
    arrays = []
    for what in ("position", "velocity", "effort"):
        values = np.asarray(getattr(msg, what), dtype=np.float64)
        if values.size and values.size != len(msg.name):
            raise ValueError(f"JointState.{what}: {values.size} values for {len(msg.name)} joint names")
        arrays.append(values if values.size else None)
    if names is not None:
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"JointState lacks joints {missing}; it has {list(msg.name)}")
        order = np.array([index[n] for n in names], dtype=np.intp)
        arrays = [a[order] if a is not None else None for a in arrays]
    if arrays[0] is None:
        raise ValueError("JointState.position is empty")
    return arrays[0], arrays[1], arrays[2]


def float64_multi_array(values) -> Float64MultiArray:
    """1-D command vector as forward_command_controller expects it (empty layout, as ROS 2 tools send)."""
    return Float64MultiArray(data=_floats(values, "Float64MultiArray.data"))


def joint_trajectory(names: Sequence[str], positions, time_from_start_s: float, velocities=None,
                     stamp_ns: int = 0) -> JointTrajectory:
    """Single-point JointTrajectory (stamp 0 = start now, as joint_trajectory_controller interprets it)."""
    point = JointTrajectoryPoint(positions=_floats(positions, "positions"),
                                 velocities=[] if velocities is None else _floats(velocities, "velocities"),
                                 time_from_start=duration_from_s(time_from_start_s))
    if len(point.positions) != len(names):
        raise ValueError(f"JointTrajectory: {len(point.positions)} positions for {len(names)} joint names")
    return JointTrajectory(header=header(stamp_ns), joint_names=list(names), points=[point])


# ---------------------------------------------------------------- images
# encoding -> (numpy dtype, channels); the names of ROS 2 sensor_msgs/image_encodings.hpp.
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "rgb16": (np.dtype(np.uint16), 3), "bgr16": (np.dtype(np.uint16), 3),
    "mono8": (np.dtype(np.uint8), 1), "mono16": (np.dtype(np.uint16), 1),
    "8UC1": (np.dtype(np.uint8), 1), "8UC3": (np.dtype(np.uint8), 3), "8UC4": (np.dtype(np.uint8), 4),
    "16UC1": (np.dtype(np.uint16), 1), "16SC1": (np.dtype(np.int16), 1),
    "32FC1": (np.dtype(np.float32), 1), "32SC1": (np.dtype(np.int32), 1), "64FC1": (np.dtype(np.float64), 1),
}


def image_from_array(pixels: np.ndarray, encoding: str, stamp_ns: int = 0, frame_id: str = "") -> Image:
    """Image from an HxW or HxWxC array; checks dtype and channel count against the encoding."""
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"image encoding {encoding!r} not supported; expected one of {sorted(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] != channels or pixels.dtype != dtype:
        raise ValueError(f"image {encoding}: expected HxWx{channels} {dtype}, got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    little = pixels.astype(dtype.newbyteorder("<"), copy=False)
    return Image(header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
                 is_bigendian=0, step=width * channels * dtype.itemsize,
                 data=np.ascontiguousarray(little).tobytes())


def array_from_image(msg: Image) -> np.ndarray:
    """HxWxC array (HxW for one channel) from an Image, honouring step padding and byte order."""
    if msg.encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} not supported; expected one of {sorted(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes or len(msg.data) < msg.step * msg.height:
        raise ValueError(f"Image {msg.width}x{msg.height} {msg.encoding}: step {msg.step} / data {len(msg.data)} "
                         f"bytes too small (row needs {row_bytes} bytes)")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)
    pixels = rows[:, :row_bytes].copy().view(dtype).reshape(msg.height, msg.width, channels)
    pixels = pixels.astype(dtype.newbyteorder("="), copy=False)
    return pixels[:, :, 0] if channels == 1 else pixels
