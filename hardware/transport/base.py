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
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Protocol, TypeVar

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
    def undeclared_overrides(self) -> list[str]:
        """Parameter overrides given at start-up that no declare_parameter asked for (likely typos)."""

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


# ---------------------------------------------------------------- start-up options and parameters
# How a node is started (command line, parameter files, rclpy's parameter types) lives in node_args.py.
from hardware.transport.node_args import (NodeArgumentError, NodeOptions, coerce_parameter,  # noqa: E402,F401
                                          load_params_file, parse_node_args)
