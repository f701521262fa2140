"""The node interface every robot_rl node is written against once, whatever carries its messages.

Two transports implement it: ``hardware.transport.dds`` (cyclonedds speaking ROS 2's wire conventions, used
where ROS 2 is absent: this machine, CI, ``robot-rl deploy``) and ``hardware.transport.ros2`` (rclpy, on robots).
Node logic receives a :class:`Node` and never imports either::

    from hardware.messages import JointState, Float64MultiArray, float64_multi_array, joint_state_arrays
    from hardware.transport.base import Node, QOS_DEFAULT, QOS_SENSOR_DATA

    class Follower:
        def __init__(self, node: Node):
            self.node = node
            self.gain = node.declare_parameter("gain", 0.5)            # overridable: gain:=0.8
            self.state = None
            node.create_subscription(JointState, "/joint_states", self.on_state, QOS_SENSOR_DATA)
            self.pub = node.create_publisher(Float64MultiArray, "/forward_position_controller/commands", QOS_DEFAULT)
            node.create_timer(1.0 / node.declare_parameter("rate_hz", 50.0), self.tick)

        def on_state(self, msg: JointState) -> None:
            self.state = joint_state_arrays(msg)[0]

        def tick(self) -> None:
            if self.state is not None:
                self.pub.publish(float64_multi_array(self.gain * self.state))

    def main(argv=None):                                              # console script entry point
        from hardware.transport import run_node
        return run_node("follower", Follower, argv)

Callbacks of the nodes spun by one executor run one at a time on the executor's thread (as rclpy's
SingleThreadedExecutor does), so node logic needs no locks. Time stamps are integers in nanoseconds.
"""
import logging
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Generic, Protocol, Sequence, TypeVar

Msg = TypeVar("Msg")


class Reliability(Enum):
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Durability(Enum):
    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"  # late joiners get the last `depth` samples ("latched")


@dataclass(frozen=True)
class QoS:
    """The QoS settings ROS 2 nodes use (history is always KEEP_LAST `depth`).

    `max_sample_bytes` is what a reader accepts, not a DDS policy: larger serialised samples are dropped and
    counted before deserialising (None: the type's bound, hardware.messages.MAX_SAMPLE_BYTES). The DDS transport
    enforces it; rclpy deserialises in C++ inside rmw and is not bounded by it."""
    reliability: Reliability = Reliability.RELIABLE
    durability: Durability = Durability.VOLATILE
    depth: int = 10
    max_sample_bytes: int | None = None

    def __post_init__(self):
        if self.depth < 1:
            raise ValueError(f"QoS.depth must be >= 1, got {self.depth}")
        if self.max_sample_bytes is not None and self.max_sample_bytes < 4:
            raise ValueError(f"QoS.max_sample_bytes must be >= 4 (the encapsulation header), got "
                             f"{self.max_sample_bytes}")


QOS_DEFAULT = QoS()  # rmw_qos_profile_default: reliable, volatile, keep last 10
QOS_SENSOR_DATA = QoS(Reliability.BEST_EFFORT, Durability.VOLATILE, 5)  # rmw_qos_profile_sensor_data
QOS_LATCHED = QoS(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, 1)  # e-stop, robot description: last value sticks


class Publisher(Protocol[Msg]):
    topic: str

    def publish(self, msg: Msg) -> None: ...


class Subscription(Protocol):
    topic: str


class Timer(Protocol):
    period_s: float

    def cancel(self) -> None: ...


class Node(ABC):
    """A ROS 2 node's surface as node logic sees it (the rclpy Node API, trimmed to what robot_rl uses)."""

    name: str
    namespace: str

    @abstractmethod
    def create_publisher(self, msg_type: type[Msg], topic: str, qos: QoS = QOS_DEFAULT) -> Publisher[Msg]: ...

    @abstractmethod
    def create_subscription(self, msg_type: type[Msg], topic: str, callback: Callable[[Msg], None],
                            qos: QoS = QOS_DEFAULT) -> Subscription: ...

    @abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer: ...

    @abstractmethod
    def declare_parameter(self, name: str, default: Any) -> Any:
        """Declare a parameter; returns its value (the override given at start-up, else `default`)."""

    @abstractmethod
    def get_parameter(self, name: str) -> Any: ...

    @abstractmethod
    def now_ns(self) -> int:
        """The node's clock (ROS time = system time here), integer nanoseconds since the epoch."""

    @property
    @abstractmethod
    def logger(self) -> logging.Logger | Any:
        """Has debug/info/warning/error(msg: str)."""

    @abstractmethod
    def publisher_info(self, topic: str) -> list[tuple[str, QoS]]:
        """(ROS type name, QoS) of every publisher currently discovered on `topic` (any process)."""

    def dropped_samples(self) -> dict[str, dict[str, int]]:
        """Samples this node's readers dropped before any callback saw them, {topic: {reason: count}} (reasons:
        "oversized", "malformed"). Empty where the transport drops inside the middleware (rclpy)."""
        return {}

    @abstractmethod
    def request_shutdown(self) -> None:
        """Ask the executor spinning this node to stop (what rclpy.shutdown() in a callback does)."""

    @abstractmethod
    def destroy(self) -> None: ...


class Executor(ABC):
    """Runs the callbacks of one or more nodes until shut down."""

    @abstractmethod
    def add_node(self, node: Node) -> None: ...

    @abstractmethod
    def spin(self) -> None:
        """Run callbacks until shutdown() is called (from a callback, a signal handler or another thread)."""

    @abstractmethod
    def spin_once(self, timeout_s: float) -> None: ...

    @abstractmethod
    def shutdown(self) -> None: ...


# ---------------------------------------------------------------- names
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def resolve_topic(topic: str, node_name: str, namespace: str = "/") -> str:
    """Fully qualified ROS 2 topic name: '/x' stays, 'x' -> '<ns>/x', '~/x' -> '<ns>/<node>/x' (rcl rules)."""
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if topic.startswith("~"):
        topic = f"{namespace}/{node_name}{topic[1:]}"
    elif not topic.startswith("/"):
        topic = f"{namespace}/{topic}"
    parts = topic.strip("/").split("/")
    if not topic.strip("/") or topic.endswith("/") or not all(_NAME.match(p) for p in parts):
        raise ValueError(f"invalid ROS 2 topic name {topic!r}: tokens must be [A-Za-z_][A-Za-z0-9_]*, "
                         "separated by single '/'")
    return "/" + "/".join(parts)


# ---------------------------------------------------------------- parameters
@dataclass
class NodeOptions:
    """What a node is started with: its name, namespace and parameter overrides (as `--ros-args` carries)."""
    name: str
    namespace: str = "/"
    parameters: dict[str, Any] | None = None
    log_level: str | None = None


def coerce_parameter(node: str, name: str, default: Any, value: Any) -> Any:
    """Check an override against the declared default's type, as rclpy does (ints are accepted for doubles)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool) != isinstance(value, bool):
        raise TypeError(f"parameter {node}.{name}: expected {type(default).__name__}, got {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"parameter {node}.{name}: expected a list, got {value!r}")
        if default and isinstance(default[0], float):
            return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return list(value)
    if not isinstance(value, type(default)):
        raise TypeError(f"parameter {node}.{name}: expected {type(default).__name__}, got {value!r}")
    return value


def _parse_value(text: str) -> Any:
    import yaml  # ROS 2 parses `-p name:=value` values as YAML, so we do too

    return yaml.safe_load(text)


def load_params_file(path: str | os.PathLike, node_name: str, namespace: str = "/") -> dict[str, Any]:
    """Parameters for a node from a ROS 2 params YAML ({/** | node | /ns/node: {ros__parameters: {...}}})."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read ROS 2 parameter file: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping '<node name>: {{ros__parameters: {{...}}}}'")
    params: dict[str, Any] = {}
    full_name = f"/{namespace.strip('/')}/{node_name}" if namespace.strip("/") else f"/{node_name}"
    for key in dict.fromkeys(("/**", node_name, "/" + node_name, full_name, full_name[1:])):  # wildcard first
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ValueError(f"{path}: section {key!r} must hold a 'ros__parameters' mapping")
        params.update(_flatten(section["ros__parameters"]))
    return params


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def parse_node_args(argv: Sequence[str], default_name: str) -> NodeOptions:
    """Node name, namespace and parameters from a command line, ROS 2 style.

    Accepts what `ros2 run`/launch pass (`--ros-args -r __node:=n -r __ns:=/ns -p k:=v --params-file f.yaml`)
    and the short form `k:=v` / `k=v`. Later values win; unknown flags are an error naming them.
    """
    options = NodeOptions(name=default_name, parameters={})
    params_files: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--ros-args" or arg == "--":
            i += 1
            continue
        if arg in ("-p", "--param", "-r", "--remap", "--params-file", "--log-level"):
            if i + 1 >= len(args):
                raise ValueError(f"{arg} needs a value")
            value = args[i + 1]
            if arg == "--params-file":
                params_files.append(value)
            elif arg == "--log-level":
                options.log_level = value.split(":")[-1].upper()
            elif arg in ("-r", "--remap"):
                key, _, target = value.partition(":=")
                if key == "__node" or key == "__name":
                    options.name = target
                elif key == "__ns":
                    options.namespace = target
                else:
                    raise ValueError(f"remapping {value!r} not supported (only __node:= and __ns:=)")
            else:
                key, sep, text = value.partition(":=")
                if not sep:
                    raise ValueError(f"parameter {value!r}: expected name:=value")
                options.parameters[key] = _parse_value(text)
            i += 2
            continue
        if ":=" in arg or ("=" in arg and not arg.startswith("-")):
            key, _, text = arg.partition(":=") if ":=" in arg else arg.partition("=")
            options.parameters[key] = _parse_value(text)
            i += 1
            continue
        raise ValueError(f"unexpected argument {arg!r}; expected name:=value, -p name:=value or --params-file FILE")
    file_params: dict[str, Any] = {}
    for path in params_files:
        file_params.update(load_params_file(path, options.name, options.namespace))
    options.parameters = {**file_params, **options.parameters}  # command-line -p beats files, as in ROS 2
    return options
