"""rosbag2 recordings (MCAP or sqlite3, as `ros2 bag record` writes them) <-> joint time series for sysid.

Read: `/joint_states` (sensor_msgs/JointState) and the arm's command topic, either
`/<controller>/commands` (std_msgs/Float64MultiArray, joint position targets in the controller's joint order)
or `/<controller>/joint_trajectory` (trajectory_msgs/JointTrajectory). Written with the same types, so a
recording made here reads exactly like one made on a robot.

Time stamps are nanoseconds. Joint states use their header stamp (the measurement time) when it is set,
otherwise the bag's receive time; commands use the receive time (Float64MultiArray has no header), or
header stamp + time_from_start for trajectory points with a set header stamp.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

JOINT_STATES_TOPIC = "/joint_states"
DEFAULT_COMMAND_TOPIC = "/forward_position_controller/commands"   # ros2_control forward_command_controller
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
MULTIARRAY_TYPE = "std_msgs/msg/Float64MultiArray"
TRAJECTORY_TYPE = "trajectory_msgs/msg/JointTrajectory"
COMMAND_TYPES = (MULTIARRAY_TYPE, TRAJECTORY_TYPE)
MIN_STATE_SAMPLES = 20


class RecordingError(ValueError):
    """A recording that cannot be used: names the file, the topic or field, and what was expected."""


@dataclass(frozen=True)
class JointRecording:
    joint_names: tuple[str, ...]
    state_stamps: np.ndarray            # (N,) int64 ns, strictly increasing
    position: np.ndarray                # (N, J) rad
    velocity: np.ndarray | None         # (N, J) rad/s, None when the recording has none
    command_stamps: np.ndarray          # (M,) int64 ns, strictly increasing
    command: np.ndarray                 # (M, J) joint position targets, rad
    command_topic: str = DEFAULT_COMMAND_TOPIC
    extra_positions: dict[str, np.ndarray] | None = None   # other joints in /joint_states (e.g. fingers), (N,)

    @property
    def duration_s(self) -> float:
        return float(self.state_stamps[-1] - self.state_stamps[0]) * 1e-9


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def read_recording(path: str | Path, joint_names: tuple[str, ...] | list[str], command_topic: str | None = None,
                   min_duration_s: float = 1.0) -> JointRecording:
    """Read joint states and position commands for `joint_names` from a rosbag2 folder (or its .mcap/.db3)."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    path = Path(path)
    bag = path.parent if path.is_file() and path.suffix in (".mcap", ".db3") else path
    if not bag.exists():
        raise RecordingError(f"{path}: recording not found (expected a rosbag2 folder)")
    joint_names = tuple(joint_names)
    try:
        reader = AnyReader([bag], default_typestore=_typestore())
        reader.open()
    except (AnyReaderError, OSError, Exception) as err:   # rosbags raises several types for unreadable bags
        raise RecordingError(f"{bag}: not a readable rosbag2 recording ({err})") from None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        if JOINT_STATES_TOPIC not in topics:
            raise RecordingError(f"{bag}: topic {JOINT_STATES_TOPIC!r} missing; recorded topics: {sorted(topics)}")
        if topics[JOINT_STATES_TOPIC] != JOINT_STATE_TYPE:
            raise RecordingError(f"{bag}: topic {JOINT_STATES_TOPIC!r} has type {topics[JOINT_STATES_TOPIC]}, "
                                 f"expected {JOINT_STATE_TYPE}")
        if command_topic is None:
            candidates = sorted(t for t, ty in topics.items() if ty in COMMAND_TYPES)
            if len(candidates) != 1:
                raise RecordingError(f"{bag}: expected exactly one command topic of type {list(COMMAND_TYPES)} "
                                     f"(pass command_topic=...), found {candidates}; recorded topics: {sorted(topics)}")
            command_topic = candidates[0]
        elif command_topic not in topics:
            raise RecordingError(f"{bag}: command topic {command_topic!r} missing; recorded topics: {sorted(topics)}")
        elif topics[command_topic] not in COMMAND_TYPES:
            raise RecordingError(f"{bag}: command topic {command_topic!r} has type {topics[command_topic]}, "
                                 f"expected one of {list(COMMAND_TYPES)}")
        states = _read_joint_states(reader, bag, joint_names)
        commands = _read_commands(reader, bag, command_topic, topics[command_topic], joint_names)
    finally:
        reader.close()
    stamps, position, velocity, extra = states
    cmd_stamps, command = commands
    recording = JointRecording(joint_names, stamps, position, velocity, cmd_stamps, command, command_topic, extra)
    if len(stamps) < MIN_STATE_SAMPLES or recording.duration_s < min_duration_s:
        raise RecordingError(f"{bag}: recording too short: {len(stamps)} joint states over {recording.duration_s:.3f} s "
                             f"on {JOINT_STATES_TOPIC}; expected at least {MIN_STATE_SAMPLES} samples and "
                             f"{min_duration_s} s")
    if len(cmd_stamps) < 2:
        raise RecordingError(f"{bag}: topic {command_topic!r} has {len(cmd_stamps)} command(s); expected at least 2")
    return recording


def _read_joint_states(reader, bag: Path, joint_names: tuple[str, ...]):
    connections = [c for c in reader.connections if c.topic == JOINT_STATES_TOPIC]
    stamps, positions, velocities, extras = [], [], [], {}
    has_velocity = True
    for index, (connection, bag_stamp, raw) in enumerate(reader.messages(connections=connections)):
        msg = reader.deserialize(raw, connection.msgtype)
        names = list(msg.name)
        missing = [n for n in joint_names if n not in names]
        if missing:
            raise RecordingError(f"{bag}: {JOINT_STATES_TOPIC} message {index} lacks joint(s) {missing}; "
                                 f"it names {names}, expected {list(joint_names)}")
        if len(msg.position) != len(names):
            raise RecordingError(f"{bag}: {JOINT_STATES_TOPIC} message {index} has {len(msg.position)} positions "
                                 f"for {len(names)} names")
        order = [names.index(n) for n in joint_names]
        pos = np.asarray(msg.position, float)[order]
        if not np.all(np.isfinite(pos)):
            raise RecordingError(f"{bag}: {JOINT_STATES_TOPIC} message {index} (t={bag_stamp} ns) has non-finite "
                                 f"position(s) {pos.tolist()}")
        stamp = _stamp_ns(msg.header)
        stamps.append(stamp if stamp > 0 else bag_stamp)
        positions.append(pos)
        if len(msg.velocity) == len(names):
            vel = np.asarray(msg.velocity, float)[order]
            if not np.all(np.isfinite(vel)):
                raise RecordingError(f"{bag}: {JOINT_STATES_TOPIC} message {index} (t={bag_stamp} ns) has non-finite "
                                     f"velocity(ies) {vel.tolist()}")
            velocities.append(vel)
        else:
            has_velocity = False
        for i, name in enumerate(names):
            if name not in joint_names:
                extras.setdefault(name, []).append(float(msg.position[i]))
    if not stamps:
        raise RecordingError(f"{bag}: topic {JOINT_STATES_TOPIC!r} has no messages")
    stamps_arr, keep = _sorted_unique(np.asarray(stamps, np.int64))
    position = np.asarray(positions)[keep]
    velocity = np.asarray(velocities)[keep] if has_velocity else None
    extra = {n: np.asarray(v)[keep] for n, v in extras.items() if len(v) == len(stamps)}
    return stamps_arr, position, velocity, extra


def _read_commands(reader, bag: Path, topic: str, msgtype: str, joint_names: tuple[str, ...]):
    connections = [c for c in reader.connections if c.topic == topic]
    stamps, commands = [], []
    for index, (connection, bag_stamp, raw) in enumerate(reader.messages(connections=connections)):
        msg = reader.deserialize(raw, connection.msgtype)
        if msgtype == MULTIARRAY_TYPE:
            values = np.asarray(msg.data, float)
            if values.shape != (len(joint_names),):
                raise RecordingError(f"{bag}: {topic} message {index} has {values.size} values, expected "
                                     f"{len(joint_names)} (one per joint {list(joint_names)})")
            points = [(bag_stamp, values)]
        else:
            names = list(msg.joint_names)
            missing = [n for n in joint_names if n not in names]
            if missing:
                raise RecordingError(f"{bag}: {topic} message {index} lacks joint(s) {missing}; it names {names}, "
                                     f"expected {list(joint_names)}")
            order = [names.index(n) for n in joint_names]
            base = _stamp_ns(msg.header) or bag_stamp
            points = []
            for p_index, point in enumerate(msg.points):
                if len(point.positions) != len(names):
                    raise RecordingError(f"{bag}: {topic} message {index} point {p_index} has "
                                         f"{len(point.positions)} positions for {len(names)} joint names")
                offset = int(point.time_from_start.sec) * 1_000_000_000 + int(point.time_from_start.nanosec)
                points.append((base + offset, np.asarray(point.positions, float)[order]))
        for stamp, values in points:
            if not np.all(np.isfinite(values)):
                raise RecordingError(f"{bag}: {topic} message {index} (t={stamp} ns) has non-finite value(s) "
                                     f"{values.tolist()}")
            stamps.append(stamp)
            commands.append(values)
    if not stamps:
        raise RecordingError(f"{bag}: topic {topic!r} has no messages")
    stamps_arr, keep = _sorted_unique(np.asarray(stamps, np.int64))
    return stamps_arr, np.asarray(commands)[keep]


def _sorted_unique(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by stamp; of messages with the same stamp keep the last one received."""
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    last = np.append(sorted_stamps[1:] != sorted_stamps[:-1], True)
    return sorted_stamps[last], order[last]


def write_recording(path: str | Path, recording: JointRecording, storage: str = "mcap",
                    command_type: str = MULTIARRAY_TYPE) -> Path:
    """Write `recording` as a rosbag2 folder at `path` (created atomically: temp folder, then rename)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage={storage!r}: expected one of {sorted(plugins)}")
    if command_type not in COMMAND_TYPES:
        raise ValueError(f"command_type={command_type!r}: expected one of {list(COMMAND_TYPES)}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: recording already exists; rosbag2 folders are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    store = _typestore()
    types = store.types
    tmp_parent = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_parent / path.name
    try:
        with Writer(tmp, version=9, storage_plugin=plugins[storage]) as writer:
            state_conn = writer.add_connection(JOINT_STATES_TOPIC, JOINT_STATE_TYPE, typestore=store)
            cmd_conn = writer.add_connection(recording.command_topic, command_type, typestore=store)
            names = list(recording.joint_names) + list((recording.extra_positions or {}).keys())
            extra = list((recording.extra_positions or {}).values())
            messages = []
            for i, stamp in enumerate(recording.state_stamps):
                position = np.concatenate([recording.position[i], [e[i] for e in extra]])
                velocity = (np.concatenate([recording.velocity[i], np.zeros(len(extra))])
                            if recording.velocity is not None else np.zeros(0))
                msg = types[JOINT_STATE_TYPE](header=_header(types, int(stamp)), name=names, position=position,
                                              velocity=velocity, effort=np.zeros(0))
                messages.append((int(stamp), state_conn, store.serialize_cdr(msg, JOINT_STATE_TYPE)))
            for stamp, values in zip(recording.command_stamps, recording.command):
                msg = _command_message(types, command_type, recording.joint_names, values)
                messages.append((int(stamp), cmd_conn, store.serialize_cdr(msg, command_type)))
            for stamp, conn, data in sorted(messages, key=lambda m: m[0]):
                writer.write(conn, stamp, data)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)
    return path


def _header(types, stamp_ns: int):
    time = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=time, frame_id="")


def _command_message(types, command_type: str, joint_names: tuple[str, ...], values: np.ndarray):
    if command_type == MULTIARRAY_TYPE:
        layout = types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        return types[MULTIARRAY_TYPE](layout=layout, data=np.asarray(values, float))
    zero = types["builtin_interfaces/msg/Duration"](sec=0, nanosec=0)
    point = types["trajectory_msgs/msg/JointTrajectoryPoint"](
        positions=np.asarray(values, float), velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
        time_from_start=zero)
    # Header stamp 0: "start now", so the reader uses the receive time, as for Float64MultiArray.
    return types[TRAJECTORY_TYPE](header=_header(types, 0), joint_names=list(joint_names), points=[point])
