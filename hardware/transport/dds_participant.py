"""The DDS transport's participant and endpoints configured as ROS 2 (rmw_cyclonedds_cpp, Jazzy) configures them.

- Discovery (rcl/src/rcl/init.c and discovery_options.c, rmw_cyclonedds_cpp rmw_node.cpp check_create_domain):
  ``ROS_LOCALHOST_ONLY=1`` (deprecated, still honoured) means LOCALHOST and drops static peers; otherwise
  ``ROS_AUTOMATIC_DISCOVERY_RANGE`` = SUBNET (unset or empty) | LOCALHOST | OFF | SYSTEM_DEFAULT (another value:
  LOCALHOST, with a warning), and ``ROS_STATIC_PEERS`` is a ';'-separated list of addresses. Each range becomes
  the same Cyclone XML fragment rmw writes, put before ``CYCLONEDDS_URI`` (so the user's file still wins).
- Participant USER_DATA ``enclave=<enclave>;`` and endpoint USER_DATA ``typehash=RIHS01_<sha256>;``
  (rmw_dds_common encode_type_hash_for_user_data_qos). The RIHS01 type hashes (REP 2011 type description
  hashing) are those of Jazzy's message definitions, which our types mirror (TYPE_HASHES, checked with rosbags).
- SROS2 (rcl/src/rcl/security.c, rmw_cyclonedds configure_qos_for_security): ``ROS_SECURITY_ENABLE=true``,
  ``ROS_SECURITY_STRATEGY=Enforce|Permissive``, ``ROS_SECURITY_KEYSTORE`` and the enclave (``--enclave``, or
  ``ROS_SECURITY_ENCLAVE_OVERRIDE``) locate ``<keystore>/enclaves/<enclave>/`` whose six files become the
  participant's ``dds.sec.*`` properties. That needs a Cyclone DDS built with security (its dds_security_auth,
  _ac and _crypto plugins); the cyclonedds wheel from PyPI has none, so Enforce is refused there and Permissive
  runs unsecured with a warning, as rcl does in Permissive mode when it cannot secure a node.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from cyclonedds.core import Policy, Qos

from hardware.messages import ros_type_name

log = logging.getLogger("robot_rl.dds")

DISCOVERY_RANGES = ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT")
STATIC_PEER_MAX_LENGTH = 255   # RMW_DISCOVERY_OPTIONS_STATIC_PEERS_MAX_LENGTH - 1
# rmw_dds_common security.cpp: the files of an enclave, as the dds.sec.* properties rmw_cyclonedds sets
SECURITY_FILES = {"dds.sec.auth.identity_ca": "identity_ca.cert.pem", "dds.sec.auth.identity_certificate": "cert.pem",
                  "dds.sec.auth.private_key": "key.pem", "dds.sec.access.permissions_ca": "permissions_ca.cert.pem",
                  "dds.sec.access.governance": "governance.p7s", "dds.sec.access.permissions": "permissions.p7s"}
SECURITY_PLUGINS = {"auth": ("dds_security_auth", "init_authentication", "finalize_authentication"),
                    "crypto": ("dds_security_crypto", "init_crypto", "finalize_crypto"),
                    "access": ("dds_security_ac", "init_access_control", "finalize_access_control")}


class DdsConfigError(ValueError):
    """The environment asks for a DDS setup this installation cannot give (named variable and why)."""


# ---------------------------------------------------------------- discovery
@dataclass(frozen=True)
class Discovery:
    range: str = "SUBNET"
    static_peers: tuple[str, ...] = ()


def discovery_from_env(env: Mapping[str, str] = os.environ) -> Discovery:
    """The discovery options rcl derives from the environment."""
    if env.get("ROS_LOCALHOST_ONLY", "") == "1":
        log.warning("ROS_LOCALHOST_ONLY is deprecated but still honored; ROS_AUTOMATIC_DISCOVERY_RANGE and "
                    "ROS_STATIC_PEERS are ignored")
        return Discovery("LOCALHOST")
    text = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")
    if text == "":
        text = "SUBNET"
    elif text not in DISCOVERY_RANGES:
        log.warning(f"Invalid value '{text}' specified for 'ROS_AUTOMATIC_DISCOVERY_RANGE', assuming localhost only")
        text = "LOCALHOST"
    peers = []
    for peer in env.get("ROS_STATIC_PEERS", "").split(";"):
        if len(peer) > STATIC_PEER_MAX_LENGTH:
            log.warning(f"Static peer {peer} specified to 'ROS_STATIC_PEERS' is too long; skipping")
        elif peer:
            peers.append(peer)
    return Discovery(text, tuple(peers))


def discovery_config(discovery: Discovery, pid: int | None = None) -> str:
    """The Cyclone XML fragment rmw_cyclonedds puts before CYCLONEDDS_URI ('' where it adds none)."""
    if discovery.range in ("OFF", "SYSTEM_DEFAULT") and discovery.static_peers:
        log.warning(f"{len(discovery.static_peers)} static peers were specified, but discovery is "
                    f"{discovery.range}, so these static peers will be ignored")
    localhost_peer = discovery.range == "LOCALHOST"
    peers = discovery.static_peers if discovery.range in ("SUBNET", "LOCALHOST") else ()
    no_multicast = discovery.range in ("LOCALHOST", "OFF")
    if not (localhost_peer or peers or no_multicast):
        return ""
    xml = "<CycloneDDS><Domain>"
    if no_multicast:
        xml += "<General><AllowMulticast>false</AllowMulticast></General>"
    if discovery.range == "OFF":   # a tag only this process carries: nobody discovers it
        xml += ("<Discovery><ParticipantIndex>none</ParticipantIndex>"
                f"<Tag>ros_discovery_off_{os.getpid() if pid is None else pid}</Tag>")
    else:
        xml += "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
    if localhost_peer or peers:
        xml += "<Peers>" + ('<Peer address="localhost"/>' if localhost_peer else "")
        xml += "".join(f'<Peer address="{peer}"/>' for peer in peers) + "</Peers>"
    return xml + "</Discovery></Domain></CycloneDDS>"


def domain_config(env: Mapping[str, str] = os.environ) -> str | None:
    """The configuration a ROS 2 node would create its domain with: rmw's fragment, then CYCLONEDDS_URI.
    None where rmw adds nothing (Cyclone then reads CYCLONEDDS_URI itself)."""
    fragment = discovery_config(discovery_from_env(env))
    if not fragment:
        return None
    return f"{fragment},{env.get('CYCLONEDDS_URI', '')}"


# ---------------------------------------------------------------- USER_DATA
# RIHS01 hashes of hardware/messages.py's types, as Jazzy's rosidl generates them. Written out because computing
# them (rosbags builds its whole Jazzy type store) takes seconds at node start; tests/hardware/test_dds_participant.py
# recomputes each with rosbags, and String/JointState match what `ros2 topic info -v` prints on Jazzy.
TYPE_HASHES = {
    "builtin_interfaces/msg/Time": "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
    "builtin_interfaces/msg/Duration": "RIHS01_e8d009f659816f758b75334ee1a9ca5b5c0b859843261f14c7f937349599d93b",
    "std_msgs/msg/Header": "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    "std_msgs/msg/Bool": "RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9",
    "std_msgs/msg/String": "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
    "std_msgs/msg/MultiArrayDimension": "RIHS01_5e773a60a4c7fc8a54985f307c7837aa2994252a126c301957a24e31282c9cbe",
    "std_msgs/msg/MultiArrayLayout": "RIHS01_4c66e6f78e740ac103a94cf63259f968e48c617e7699e829b63c21a5cb50dac6",
    "std_msgs/msg/Float64MultiArray": "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f",
    "sensor_msgs/msg/JointState": "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
    "sensor_msgs/msg/Image": "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "sensor_msgs/msg/RegionOfInterest": "RIHS01_ad16bcba5f9131dcdba6fbded19f726f5440e3c513b4fb586dd3027eeed8abb1",
    "sensor_msgs/msg/CameraInfo": "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
    "trajectory_msgs/msg/JointTrajectoryPoint": "RIHS01_de8907036d8bd45aac6f30cc9044a3d4a329c42cbf719aff7d95a584cfa532d7",
    "trajectory_msgs/msg/JointTrajectory": "RIHS01_179b33eba59d676f6d967ac71fe35e7ca2f64b2f3928f4a018cec115e213796e",
}


@lru_cache(maxsize=None)
def type_hash(msg_type: type) -> str:
    """RIHS01 hash of a message type (REP 2011), as Jazzy's rosidl generates it."""
    name = ros_type_name(msg_type)
    if name in TYPE_HASHES:
        return TYPE_HASHES[name]
    from rosbags.typesys import Stores, get_typestore   # a type added later: computed (slow) until listed above

    return get_typestore(Stores.ROS2_JAZZY).hash_rihs01(name)


def endpoint_user_data(msg_type: type) -> bytes:
    return f"typehash={type_hash(msg_type)};".encode()


def participant_user_data(enclave: str) -> bytes:
    return f"enclave={enclave};".encode()


# ---------------------------------------------------------------- SROS2
@dataclass(frozen=True)
class Security:
    enclave: str = "/"
    enabled: bool = False
    enforce: bool = False
    keystore: str = ""

    @property
    def enclave_dir(self) -> Path:
        return Path(self.keystore) / "enclaves" / self.enclave.strip("/")


def security_from_env(enclave: str | None, env: Mapping[str, str] = os.environ) -> Security:
    enclave = env.get("ROS_SECURITY_ENCLAVE_OVERRIDE") or enclave or "/"
    return Security(enclave=enclave, enabled=env.get("ROS_SECURITY_ENABLE", "") == "true",
                    enforce=env.get("ROS_SECURITY_STRATEGY", "") == "Enforce",
                    keystore=env.get("ROS_SECURITY_KEYSTORE", ""))


@lru_cache(maxsize=None)
def cyclone_security_plugins() -> tuple[str, ...]:
    """The DDS Security plugin libraries next to the libddsc this binding loads (none in the PyPI wheel)."""
    import cyclonedds

    package = Path(cyclonedds.__file__).resolve().parent
    places = [package.parent / "cyclonedds.libs", package / ".libs"]
    if os.environ.get("CYCLONEDDS_HOME"):
        places.append(Path(os.environ["CYCLONEDDS_HOME"]) / "lib")
    found = []
    for library, _, _ in SECURITY_PLUGINS.values():
        if any(next(place.glob(f"lib{library}*.so*"), None) for place in places if place.is_dir()):
            found.append(library)
    return tuple(found)


def security_qos(security: Security) -> list:
    """The participant's dds.sec.* properties for `security`, [] when security is off; DdsConfigError where
    Enforce cannot be honoured (no security in this Cyclone DDS, or the enclave's files missing)."""
    if not security.enabled:
        return []
    missing_plugins = sorted({lib for lib, _, _ in SECURITY_PLUGINS.values()} - set(cyclone_security_plugins()))
    problem = None
    if missing_plugins:
        problem = (f"this Cyclone DDS ({_cyclone_location()}) has no DDS Security built in (plugins "
                   f"{missing_plugins} missing; the cyclonedds wheel from PyPI is built without it). Use the rclpy "
                   f"transport with a sourced ROS 2 (ROBOT_RL_TRANSPORT=ros2) or a cyclonedds binding built against "
                   f"a Cyclone DDS with -DENABLE_SECURITY=ON (CYCLONEDDS_HOME)")
    elif not security.keystore:
        problem = "ROS_SECURITY_KEYSTORE is not set"
    else:
        absent = [name for name in SECURITY_FILES.values() if not (security.enclave_dir / name).is_file()]
        if absent:
            problem = f"enclave {security.enclave} in {security.enclave_dir} lacks {absent} (docs/sros2.md)"
    if problem:
        if security.enforce:
            raise DdsConfigError(f"ROS_SECURITY_ENABLE=true with ROS_SECURITY_STRATEGY=Enforce: refusing to run "
                                 f"unsecured: {problem}")
        log.warning(f"ROS_SECURITY_ENABLE=true (Permissive): running UNSECURED: {problem}")
        return []
    properties = [Policy.Property(key, f"file:{security.enclave_dir / name}") for key, name in SECURITY_FILES.items()]
    for kind, (path, init, finalize) in SECURITY_PLUGINS.items():
        properties += [Policy.Property(f"dds.sec.{kind}.library.path", path),
                       Policy.Property(f"dds.sec.{kind}.library.init", init),
                       Policy.Property(f"dds.sec.{kind}.library.finalize", finalize)]
    return properties


def participant_qos(security: Security) -> Qos:
    return Qos(Policy.Userdata(participant_user_data(security.enclave)), *security_qos(security))


def _cyclone_location() -> str:
    import cyclonedds

    return str(Path(cyclonedds.__file__).resolve().parent)
