"""rosbag2 recordings (MCAP or sqlite3) as `ros2 bag record` writes them, through the `rosbags` library.

The CDR stored per message is `msg.serialize()` of our cyclonedds types, byte-identical to what rmw delivers and
`ros2 bag` stores (tests/hardware/test_messages.py). Bags are written into a hidden partial folder beside the
target and renamed into place only when closed cleanly, so a half-written recording never carries the real name.

    write_bag("run1", [("/joint_states", t_ns, joint_state(...)), ...])        # whole recording at once
    with BagWriter("run2") as bag: bag.write("/joint_states", t_ns, msg)     # incrementally
    for topic, t_ns, msg in read_bag("run1", topics=["/joint_states"]): ...
"""
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from rosbags.interfaces import Qos as BagQos
from rosbags.interfaces import QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from hardware.messages import message_type, ros_type_name
from hardware.transport.base import QOS_DEFAULT, Durability, QoS, Reliability

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# metadata.yaml version 8 (Iron/Jazzy rosbag2; QoS profiles as a YAML string, readable by newer ros2 bag too).
BAG_VERSION = 8
_UNSET_TIME = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)  # "infinite", as rosbag2 writes unset durations


def bag_qos(qos: QoS) -> BagQos:
    """rosbag2's offered_qos_profiles entry for one of our QoS profiles (ros2 bag play re-offers it)."""
    return BagQos(
        history=QosHistory.KEEP_LAST, depth=qos.depth,
        reliability=QosReliability.RELIABLE if qos.reliability is Reliability.RELIABLE else QosReliability.BEST_EFFORT,
        durability=(QosDurability.TRANSIENT_LOCAL if qos.durability is Durability.TRANSIENT_LOCAL
                    else QosDurability.VOLATILE),
        deadline=_UNSET_TIME, lifespan=_UNSET_TIME, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_UNSET_TIME, avoid_ros_namespace_conventions=False)


class BagWriter:
    """One rosbag2 recording being written; visible under `path` only after close()."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"bag storage {storage!r}: expected one of {sorted(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: recording already exists; choose another output path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # <parent>/.<name>.partial-<pid>/<name>: the storage file inside gets its final name (<name>.mcap)
        self._staging = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        if self._staging.exists():
            shutil.rmtree(self._staging)
        self._staging.mkdir()
        self.partial = self._staging / self.path.name
        self._typestore = get_typestore(Stores.ROS2_JAZZY)  # message definitions for the MCAP schemas
        self._writer = Writer(self.partial, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msg_type: type, qos: QoS = QOS_DEFAULT) -> None:
        if topic in self._connections:
            if self._connections[topic][1] is not msg_type:
                raise TypeError(f"topic {topic} already recorded as {ros_type_name(self._connections[topic][1])}")
            return
        connection = self._writer.add_connection(topic, ros_type_name(msg_type), typestore=self._typestore,
                                                 serialization_format="cdr", offered_qos_profiles=[bag_qos(qos)])
        self._connections[topic] = (connection, msg_type)
        self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, msg) -> None:
        """Record `msg` on `topic` at `stamp_ns` (the topic is added on first use with the default QoS)."""
        if topic not in self._connections:
            self.add_topic(topic, type(msg))
        connection, msg_type = self._connections[topic]
        if not isinstance(msg, msg_type):
            raise TypeError(f"topic {topic} records {msg_type.__name__}, got {type(msg).__name__}")
        self._writer.write(connection, int(stamp_ns), msg.serialize())
        self.counts[topic] += 1

    def close(self) -> Path:
        """Finish the bag (metadata.yaml) and move it to its final path."""
        self._writer.close()
        os.replace(self.partial, self.path)
        self._staging.rmdir()
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        try:
            self._writer.close()
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_bag(path: str | os.PathLike, messages: Iterable[tuple[str, int, object]], storage: str = "mcap",
              qos: dict[str, QoS] | None = None) -> Path:
    """Write (topic, stamp_ns, message) triples to a new rosbag2 recording at `path`, atomically."""
    with BagWriter(path, storage) as bag:
        for topic, stamp_ns, msg in messages:
            if topic not in bag.counts:
                bag.add_topic(topic, type(msg), (qos or {}).get(topic, QOS_DEFAULT))
            bag.write(topic, stamp_ns, msg)
    return Path(path)


def read_bag(path: str | os.PathLike, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, object]]:
    """(topic, stamp_ns, message) in time order from a rosbag2 recording (MCAP or sqlite3), as our message types.

    `topics` selects topics; asking for a topic that is missing or has a type we do not know is an error.
    """
    path = Path(path)
    with Reader(path) as reader:
        available = {c.topic: c for c in reader.connections}
        wanted = list(available) if topics is None else list(topics)
        missing = [t for t in wanted if t not in available]
        if missing:
            raise KeyError(f"{path}: no topics {missing}; the recording has {sorted(available)}")
        types = {}
        for topic in wanted:
            try:
                types[topic] = message_type(available[topic].msgtype)
            except KeyError as error:
                if topics is not None:
                    raise KeyError(f"{path}: topic {topic}: {error.args[0]}") from None
        connections = [c for c in reader.connections if c.topic in types]
        for connection, stamp_ns, data in reader.messages(connections=connections):
            yield connection.topic, stamp_ns, types[connection.topic].deserialize(bytes(data))
