"""The node interface on rclpy, for robots with ROS 2 installed (this module imports rclpy only when used).

A thin mapping: each call goes to the rclpy Node method of the same meaning; messages are converted field by field
between our cyclonedds dataclasses (hardware/messages.py) and the generated ROS 2 classes (sensor_msgs.msg...),
which have the same field names (checked against the ROS 2 definitions in tests/hardware/test_messages.py).
"""
import array
import importlib
from functools import lru_cache
from typing import Any, Callable

from cyclonedds.idl import IdlStruct
from cyclonedds.idl._type_normalize import get_extended_type_hints
from cyclonedds.idl.types import sequence

from hardware.messages import ros_type_name
from hardware.transport.base import QOS_DEFAULT, Durability, Executor, Node, NodeOptions, QoS, Reliability
from hardware.transport.node_args import ParameterTypeError


@lru_cache(maxsize=None)
def ros_message_class(msg_type: type[IdlStruct]):
    """The rosidl class for one of our types: sensor_msgs/msg/JointState -> sensor_msgs.msg.JointState."""
    package, _, name = ros_type_name(msg_type).split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


@lru_cache(maxsize=None)
def _field_kinds(msg_type: type[IdlStruct]) -> dict[str, tuple[str, Any]]:
    """Per field: ('struct', cls), ('structs', cls) for a sequence of structs, ('bytes', None), or ('plain', None)."""
    kinds = {}
    for name, hint in get_extended_type_hints(msg_type).items():
        if isinstance(hint, type) and issubclass(hint, IdlStruct):
            kinds[name] = ("struct", hint)
        elif isinstance(hint, sequence) and isinstance(hint.subtype, type) and issubclass(hint.subtype, IdlStruct):
            kinds[name] = ("structs", hint.subtype)
        elif isinstance(getattr(msg_type(), name), bytes):
            kinds[name] = ("bytes", None)
        else:
            kinds[name] = ("plain", None)
    return kinds


def to_ros(msg: IdlStruct, class_for: Callable[[type], Any] = ros_message_class) -> Any:
    """Our message -> ROS message; `class_for` maps our type to a class taking the fields as keywords (rosidl's).

    uint8[] fields (Image.data) go as array.array('B'): rosidl's generated setter stores one as it is, while
    bytes or a list are checked element by element in Python (a 640x480 rgb8 Image: ~1 ms against ~0.5 s)."""
    values = {}
    for name, (kind, sub) in _field_kinds(type(msg)).items():
        value = getattr(msg, name)
        if kind == "struct":
            value = to_ros(value, class_for)
        elif kind == "structs":
            value = [to_ros(v, class_for) for v in value]
        elif kind == "bytes":
            value = array.array("B", value)
        values[name] = value
    return class_for(type(msg))(**values)


def from_ros(ros_msg: Any, msg_type: type[IdlStruct]) -> IdlStruct:
    """ROS message -> our message of type `msg_type` (numpy arrays / array.array become lists or bytes)."""
    values = {}
    for name, (kind, sub) in _field_kinds(msg_type).items():
        value = getattr(ros_msg, name)
        if kind == "struct":
            value = from_ros(value, sub)
        elif kind == "structs":
            value = [from_ros(v, sub) for v in value]
        elif kind == "bytes":
            value = bytes(value)
        elif hasattr(value, "tolist"):  # numpy arrays (fixed-size) and array.array (sequences) in rclpy
            value = value.tolist()
        values[name] = value
    return msg_type(**values)


def ros_qos(qos: QoS):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=qos.depth,
        reliability=(ReliabilityPolicy.RELIABLE if qos.reliability is Reliability.RELIABLE
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if qos.durability is Durability.TRANSIENT_LOCAL
                    else DurabilityPolicy.VOLATILE))


class Ros2Publisher:
    def __init__(self, publisher, msg_type: type[IdlStruct], topic: str):
        self._publisher = publisher
        self.msg_type = msg_type
        self.topic = topic

    def publish(self, msg: IdlStruct) -> None:
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"publisher on {self.topic} carries {self.msg_type.__name__}, got {type(msg).__name__}")
        self._publisher.publish(to_ros(msg))


class Ros2Node(Node):
    """An rclpy node. rcl's own arguments (`--ros-args -r from:=to -e /enclave -p ... --params-file ...`) go to
    rclpy.init as given, so rcl applies remaps, parameters, the SROS2 enclave (with ROS_SECURITY_* from the
    environment) and logging; the short form `name:=value` becomes parameter_overrides (winning, as in rclpy)."""

    def __init__(self, options: NodeOptions):
        import rclpy
        from rclpy.node import Node as RclpyNode
        from rclpy.parameter import Parameter

        cli_args = None
        if not rclpy.ok():
            rclpy.init(args=[options.name, *options.ros_args])
        elif options.ros_args:   # a context exists (several nodes in one process): the rules for this node only
            cli_args = list(options.ros_args)
        self.name = options.name
        self.namespace = options.namespace
        self._expected_overrides = sorted(options.parameters or {})   # our parse of the same arguments
        overrides = [Parameter(k, value=v) for k, v in options.short_parameters.items()]
        self._node = RclpyNode(options.name, namespace=options.namespace, parameter_overrides=overrides,
                               cli_args=cli_args)
        self.name = self._node.get_name()
        self.namespace = self._node.get_namespace()
        self.shutdown_requested = False

    def create_publisher(self, msg_type, topic, qos=QOS_DEFAULT):
        publisher = self._node.create_publisher(ros_message_class(msg_type), topic, ros_qos(qos))
        return Ros2Publisher(publisher, msg_type, publisher.topic_name)

    def create_subscription(self, msg_type, topic, callback, qos=QOS_DEFAULT):
        return self._node.create_subscription(ros_message_class(msg_type), topic,
                                              lambda ros_msg: callback(from_ros(ros_msg, msg_type)), ros_qos(qos))

    def create_timer(self, period_s, callback):
        timer = self._node.create_timer(period_s, callback)
        timer.period_s = period_s
        return timer

    def declare_parameter(self, name, default):
        from rclpy.exceptions import InvalidParameterTypeException

        try:
            return self._node.declare_parameter(name, default).value
        except InvalidParameterTypeException as error:   # the same error class the DDS transport raises
            raise ParameterTypeError(f"parameter {self.name}.{name}: {error}") from error

    def undeclared_overrides(self) -> list[str]:
        """Overrides rclpy would ignore silently (automatically_declare_parameters_from_overrides=False)."""
        return [name for name in self._expected_overrides if not self._node.has_parameter(name)]

    def get_parameter(self, name):
        return self._node.get_parameter(name).value

    def now_ns(self) -> int:
        return self._node.get_clock().now().nanoseconds

    def publisher_info(self, topic: str) -> list[tuple[str, QoS]]:
        from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

        infos = self._node.get_publishers_info_by_topic(self._node.resolve_topic_name(topic))
        return [(info.topic_type, QoS(
            Reliability.BEST_EFFORT if info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
            else Reliability.RELIABLE,
            Durability.TRANSIENT_LOCAL if info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
            else Durability.VOLATILE, max(1, info.qos_profile.depth))) for info in infos]

    def request_shutdown(self) -> None:
        self.shutdown_requested = True

    @property
    def logger(self):
        return self._node.get_logger()

    def destroy(self) -> None:
        self._node.destroy_node()


class Ros2Executor(Executor):
    """rclpy's SingleThreadedExecutor, spun in short rounds so that shutdown() (e.g. from a signal) ends spin()."""

    def __init__(self, nodes: list[Ros2Node] = ()):
        from rclpy.executors import SingleThreadedExecutor

        self._executor = SingleThreadedExecutor()
        self._nodes: list[Ros2Node] = []
        self._stop = False
        for node in nodes:
            self.add_node(node)

    def add_node(self, node: Ros2Node) -> None:
        self._executor.add_node(node._node)
        self._nodes.append(node)

    def spin(self) -> None:
        import rclpy

        while not self._stop and rclpy.ok() and not any(n.shutdown_requested for n in self._nodes):
            self._executor.spin_once(timeout_sec=0.1)

    def spin_once(self, timeout_s: float) -> None:
        self._executor.spin_once(timeout_sec=timeout_s)

    def shutdown(self) -> None:
        self._stop = True
