"""How ROS 2 tools learn which nodes a DDS process holds: the graph topic of rmw_dds_common.

DDS discovery knows participants and endpoints, not nodes. Every rmw (rmw_cyclonedds_cpp rmw_node.cpp, Jazzy)
publishes one ``rmw_dds_common/msg/ParticipantEntitiesInfo`` per participant on the DDS topic
``ros_discovery_info`` (reliable, transient local, keep last 1): the participant's GID and, per node, its
namespace, name and the GIDs of its readers and writers (a GID is the 16-byte DDS GUID). `ros2 node list` and
`ros2 node info` read it; without it the DDS transport's nodes are missing there. The announcer republishes it
whenever a node of this process adds an endpoint or goes away.
"""

import threading
import uuid
from dataclasses import dataclass, field

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic

DISCOVERY_TOPIC = "ros_discovery_info"
# RIHS01 of rmw_dds_common/msg/ParticipantEntitiesInfo (Jazzy definitions, computed by rosbags; test checks)
PARTICIPANT_ENTITIES_INFO_HASH = "RIHS01_e725f4a506958c79f95dd693b965722c57b19cd18e7eff984f49561b93dc985d"


@dataclass
class Gid(IdlStruct, typename="rmw_dds_common::msg::dds_::Gid_"):
    data: types.array[types.uint8, 16] = field(default_factory=lambda: [0] * 16)


@dataclass
class NodeEntitiesInfo(IdlStruct, typename="rmw_dds_common::msg::dds_::NodeEntitiesInfo_"):
    node_namespace: types.bounded_str[256] = ""
    node_name: types.bounded_str[256] = ""
    reader_gid_seq: types.sequence[Gid] = field(default_factory=list)
    writer_gid_seq: types.sequence[Gid] = field(default_factory=list)


@dataclass
class ParticipantEntitiesInfo(IdlStruct, typename="rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_"):
    gid: Gid = field(default_factory=Gid)
    node_entities_info_seq: types.sequence[NodeEntitiesInfo] = field(default_factory=list)


def gid(guid: uuid.UUID) -> Gid:
    return Gid(data=list(guid.bytes))


def ros_namespace(namespace: str) -> str:
    """'/' or '/a/b', as rcl stores a node's namespace."""
    return "/" + namespace.strip("/") if namespace.strip("/") else "/"


class GraphAnnouncer:
    """The participant's ParticipantEntitiesInfo: one entry per node, republished on every change."""

    def __init__(self, participant: DomainParticipant):
        self.participant = participant
        qos = Qos(Policy.Reliability.Reliable(max_blocking_time=100_000_000), Policy.Durability.TransientLocal,
                  Policy.History.KeepLast(1), Policy.DataRepresentation(use_cdrv0_representation=True),
                  Policy.Userdata(f"typehash={PARTICIPANT_ENTITIES_INFO_HASH};".encode()))
        self._writer = DataWriter(participant, Topic(participant, DISCOVERY_TOPIC, ParticipantEntitiesInfo), qos=qos)
        self._nodes: dict[int, NodeEntitiesInfo] = {}
        self._lock = threading.Lock()

    def update(self, key: int, namespace: str, name: str, readers: list[uuid.UUID],
               writers: list[uuid.UUID]) -> None:
        with self._lock:
            self._nodes[key] = NodeEntitiesInfo(ros_namespace(namespace), name, [gid(g) for g in readers],
                                                [gid(g) for g in writers])
            self._publish()

    def remove(self, key: int) -> None:
        with self._lock:
            if self._nodes.pop(key, None) is not None:
                self._publish()

    def current(self) -> ParticipantEntitiesInfo:
        return ParticipantEntitiesInfo(gid(self.participant.guid), list(self._nodes.values()))

    def _publish(self) -> None:
        self._writer.write(self.current())
