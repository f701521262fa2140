"""The node interface over DDS with the cyclonedds Python binding, speaking ROS 2's wire conventions.

A ROS 2 node on the same network and domain (``ROS_DOMAIN_ID``) sees these topics as its own: the DDS topic of
ROS topic ``/joint_states`` is ``rt/joint_states``, the type name ``sensor_msgs::msg::dds_::JointState_``, the
payload XCDR1 CDR (hardware/messages.py), and the QoS presets are ROS 2's. As rmw_cyclonedds does, all nodes of a
process share one DomainParticipant per domain.

Several nodes in one process: add them to one :class:`DdsExecutor` (their callbacks then run one at a time on
the spinning thread). Separate processes: each runs its own node and executor; DDS discovery connects them.
"""
import itertools
import logging
import os
import threading
import time
from collections import Counter
from typing import Any, Callable, Sequence

from cyclonedds.core import DDSException, GuardCondition, Policy, Qos, ReadCondition, SampleState, ViewState, InstanceState, WaitSet
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds._clayer import ddspy_take  # the raw take under DataReader.take (see DdsSubscription)
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from hardware.log_throttle import ThrottledLog
from hardware.messages import max_sample_bytes
from hardware.transport.dds_graph import GraphAnnouncer
from hardware.transport.dds_participant import (Security, domain_config, endpoint_user_data, participant_qos,
                                                 security_from_env)
from hardware.transport.node_args import Remap, remap_topic
from hardware.transport.base import (QOS_DEFAULT, Durability, Executor, Node, NodeOptions, QoS, Reliability,
                                     coerce_parameter, resolve_topic)

# The ROS 2 topic prefix for plain topics (services use rq/ and rr/, which robot_rl does not use).
ROS_TOPIC_PREFIX = "rt"
# How many samples one take() drains at most per reader per wake-up (more stay queued for the next round).
_TAKE_BATCH = 64


def dds_topic_name(ros_topic: str) -> str:
    """'/joint_states' -> 'rt/joint_states' (the input must be fully qualified, see base.resolve_topic)."""
    if not ros_topic.startswith("/"):
        raise ValueError(f"expected a fully qualified ROS topic name starting with '/', got {ros_topic!r}")
    return f"{ROS_TOPIC_PREFIX}{ros_topic}"


def ros_type_name_of_dds(dds_type_name: str) -> str:
    """'sensor_msgs::msg::dds_::JointState_' -> 'sensor_msgs/msg/JointState' (other names are returned as-is)."""
    parts = dds_type_name.split("::")
    if len(parts) == 4 and parts[2] == "dds_":
        return f"{parts[0]}/{parts[1]}/{parts[3].removesuffix('_')}"
    return dds_type_name


def dds_qos(qos: QoS, msg_type: type | None = None) -> Qos:
    """cyclonedds QoS for a ROS 2 QoS profile; XCDR1 only, as rmw_cyclonedds announces. With `msg_type`, the
    endpoint's USER_DATA carries `typehash=RIHS01_...;` as Jazzy's rmw_cyclonedds writes it."""
    reliability = (Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
                   if qos.reliability is Reliability.RELIABLE else Policy.Reliability.BestEffort)
    durability = (Policy.Durability.TransientLocal if qos.durability is Durability.TRANSIENT_LOCAL
                  else Policy.Durability.Volatile)
    user_data = [Policy.Userdata(endpoint_user_data(msg_type))] if msg_type is not None else []
    return Qos(reliability, durability, Policy.History.KeepLast(qos.depth),
               Policy.DataRepresentation(use_cdrv0_representation=True), *user_data)


def qos_from_dds(qos: Qos) -> QoS:
    """Our QoS profile for a discovered DDS QoS (the inverse of dds_qos on the three settings ROS 2 uses)."""
    reliable = not any(p == Policy.Reliability.BestEffort for p in qos)
    latched = any(p == Policy.Durability.TransientLocal for p in qos)
    depth = next((p.depth for p in qos if isinstance(p, Policy.History.KeepLast)), 1)
    return QoS(Reliability.RELIABLE if reliable else Reliability.BEST_EFFORT,
               Durability.TRANSIENT_LOCAL if latched else Durability.VOLATILE, max(1, depth))


def local_only_config(max_participants: int = 32) -> str:
    """cyclonedds XML keeping all traffic on the loopback interface (tests, single-machine deploys).

    Loopback has no multicast, so discovery goes by unicast to 127.0.0.1 over the first participant indices.
    """
    return ("<CycloneDDS><Domain id=\"any\"><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
            "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
            f"<MaxAutoParticipantIndex>{max_participants}</MaxAutoParticipantIndex>"
            "<Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery></Domain></CycloneDDS>")


def default_domain_id() -> int:
    """ROS_DOMAIN_ID as ROS 2 reads it (0 when unset)."""
    text = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
    try:
        domain_id = int(text)
    except ValueError:
        raise ValueError(f"ROS_DOMAIN_ID={text!r}: expected an integer 0..232") from None
    if not 0 <= domain_id <= 232:
        raise ValueError(f"ROS_DOMAIN_ID={domain_id}: expected an integer 0..232")
    return domain_id


_private_domains = itertools.count()


def private_domain_id() -> int:
    """A fresh domain id per call, derived from the pid so that concurrent processes (pytest-xdist workers,
    other test runs) are unlikely to share it. For tests and isolated local runs; pair with local_only_config()."""
    return 1 + (os.getpid() * 7 + next(_private_domains)) % 232


class _DomainContext:
    """The process's one participant on a domain, with its topics (a topic name has one type per participant)."""
    _lock = threading.Lock()
    _contexts: dict[int, "_DomainContext"] = {}

    def __init__(self, domain_id: int, config: str | None, security: Security):
        # A Domain object pins the configuration; it must exist before the participant and outlive it. If this
        # process already joined the domain (e.g. a test's own reader), that domain's configuration stays.
        # Without an explicit config, the domain is configured as a ROS 2 node's would be (discovery variables).
        self.domain = None
        config = domain_config() if config is None else config
        qos = participant_qos(security)   # before the domain: a refused security setup leaves nothing behind
        if config is not None:
            try:
                self.domain = Domain(domain_id, config)
            except DDSException as error:
                if error.code != DDSException.DDS_RETCODE_PRECONDITION_NOT_MET:
                    raise
        self.domain_id = domain_id
        self.security = security
        self.participant = DomainParticipant(domain_id, qos=qos)
        self.topics: dict[str, Topic] = {}
        self.topic_lock = threading.Lock()
        self._publications = None
        self.graph = GraphAnnouncer(self.participant)   # what `ros2 node list` reads (dds_graph.py)

    def publications(self) -> list:
        """Discovered DCPSPublication samples of live writers (own process included)."""
        with self.topic_lock:
            if self._publications is None:
                reader = BuiltinDataReader(self.participant, BuiltinTopicDcpsPublication)
                alive = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
                self._publications = (reader, alive)
            reader, alive = self._publications
            return reader.read(N=100_000, condition=alive)

    @classmethod
    def get(cls, domain_id: int, config: str | None = None, security: Security = Security()) -> "_DomainContext":
        """The process's participant on `domain_id`; the first node to join sets its config and enclave (one
        participant, one enclave per process and domain, as one rclpy context has)."""
        with cls._lock:
            context = cls._contexts.get(domain_id)
            if context is None:
                context = cls._contexts[domain_id] = cls(domain_id, config, security)
            return context

    def topic(self, name: str, msg_type: type) -> Topic:
        with self.topic_lock:
            topic = self.topics.get(name)
            if topic is None:
                topic = self.topics[name] = Topic(self.participant, name, msg_type)
            elif topic.data_type is not msg_type:
                raise TypeError(f"topic {name!r} already has type {topic.data_type.__idl_typename__} in this "
                                f"process; cannot also use {msg_type.__idl_typename__}")
            return topic


class DdsPublisher:
    def __init__(self, node: "DdsNode", msg_type: type, topic: str, qos: QoS):
        self.topic = topic
        self.msg_type = msg_type
        self.qos = qos
        self._writer = DataWriter(node.context.participant, node.context.topic(dds_topic_name(topic), msg_type),
                                  qos=dds_qos(qos, msg_type))

    def publish(self, msg) -> None:
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"publisher on {self.topic} carries {self.msg_type.__name__}, got {type(msg).__name__}")
        self._writer.write(msg)

    def matched_subscriptions(self) -> int:
        """How many readers (any process) are matched; lets callers wait for discovery before publishing."""
        return len(self._writer.get_matched_subscriptions())

    @property
    def guid(self):
        """The writer's DDS GUID (None once destroyed)."""
        return self._writer.guid if self._writer is not None else None

    def destroy(self) -> None:
        self._writer = None


def decode_sample(msg_type: type, data: bytes, max_bytes: int) -> tuple[Any, str, str]:
    """(message, "", "") for a serialised sample, or (None, reason, detail) when it is bigger than `max_bytes`
    ("oversized", checked before any decoding) or does not decode as `msg_type` ("malformed").

    Cyclone DDS itself checks the CDR of samples against the type (its writer refuses truncated CDR or sequence
    lengths beyond the data, and its reader drops them), so "malformed" is the second line: samples from a stack
    that does not check, and faults of the Python deserialiser. Text that is not UTF-8 is valid CDR; it decodes
    with U+FFFD replacements (hardware/messages.py), as rclpy does."""
    if len(data) > max_bytes:
        return None, "oversized", f"{len(data)} bytes, bound {max_bytes}"
    if len(data) < 4:   # cyclonedds reads a sample without its encapsulation header as the type's defaults
        return None, "malformed", f"{len(data)} bytes: no encapsulation header, so no {msg_type.__name__}"
    try:
        return msg_type.deserialize(data), "", ""
    except Exception as error:  # noqa: BLE001 - whatever a remote sends must not reach the executor
        return None, "malformed", f"{len(data)} bytes that are no {msg_type.__name__}: {error!r:.200}"


class DdsSubscription:
    """A reader whose samples are checked before any callback sees them: bigger than the topic's bound
    (QoS.max_sample_bytes, else the type's, hardware.messages.MAX_SAMPLE_BYTES) -> dropped before deserialising;
    not deserialisable (truncated CDR, absurd sequence lengths, wrong type behind the name) -> dropped. Both are
    counted in `dropped` and logged throttled; a remote participant can neither crash nor stall the node."""

    def __init__(self, node: "DdsNode", msg_type: type, topic: str, callback: Callable[[Any], None], qos: QoS):
        self.topic = topic
        self.msg_type = msg_type
        self.callback = callback
        self.qos = qos
        self.max_sample_bytes = qos.max_sample_bytes or max_sample_bytes(msg_type)
        self.dropped: Counter[str] = Counter()
        self._logger = node.logger
        self._log = node.throttled_log
        self.reader = DataReader(node.context.participant,
                                 node.context.topic(dds_topic_name(topic), msg_type), qos=dds_qos(qos, msg_type))
        self.condition = ReadCondition(self.reader, SampleState.Any | ViewState.Any | InstanceState.Any)

    def matched_publishers(self) -> int:
        return len(self.reader.get_matched_publications())

    def take(self) -> list:
        # DataReader.take() deserialises inside the call, so one bad sample raises and loses the whole batch;
        # ddspy_take (what it calls) hands over the serialised bytes, which we size-check first.
        taken = ddspy_take(self.reader._ref, self.condition.mask, _TAKE_BATCH)
        if isinstance(taken, int):
            raise DDSException(taken, f"taking samples on {self.topic}")
        samples = []
        for data, info in taken:
            # A writer that goes away (its process killed) reaches readers as an invalid sample (instance state
            # change, no data); callbacks get only data, as rclpy's do.
            if not info.valid_data:
                continue
            msg, reason, detail = decode_sample(self.msg_type, data, self.max_sample_bytes)
            if msg is None:
                self._drop(reason, detail)
            else:
                samples.append(msg)
        return samples

    def _drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        self._log(self._logger.warning, f"{self.topic}:{reason}",
                  f"{self.topic}: dropped a {reason} sample ({detail}); {self.dropped[reason]} so far")


class DdsTimer:
    """Fires every `period_s` on the executor's thread; missed periods are skipped, keeping the phase (as rcl)."""

    def __init__(self, period_s: float, callback: Callable[[], None]):
        if not period_s > 0:
            raise ValueError(f"timer period must be > 0 s, got {period_s}")
        self.period_s = float(period_s)
        self.period_ns = int(round(period_s * 1e9))
        self.callback = callback
        self.next_ns = time.monotonic_ns() + self.period_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def due(self, now_ns: int) -> bool:
        if self.cancelled or now_ns < self.next_ns:
            return False
        missed = (now_ns - self.next_ns) // self.period_ns
        self.next_ns += (missed + 1) * self.period_ns
        return True


class DdsNode(Node):
    """A node on a DDS domain. `parameters` are the start-up overrides; `config` a cyclonedds XML (e.g.
    local_only_config()) applied when this process first joins the domain (None: as a ROS 2 node's, from
    ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_STATIC_PEERS / ROS_LOCALHOST_ONLY and CYCLONEDDS_URI); `remaps` the
    `-r from:=to` topic rules; `enclave` the SROS2 enclave (with ROS_SECURITY_*, see dds_participant.py)."""

    def __init__(self, name: str, namespace: str = "/", parameters: dict[str, Any] | None = None,
                 domain_id: int | None = None, config: str | None = None, remaps: Sequence[Remap] = (),
                 enclave: str | None = None):
        self.name = name
        self.namespace = namespace
        self.remaps = list(remaps)
        self.domain_id = default_domain_id() if domain_id is None else domain_id
        self.context = _DomainContext.get(self.domain_id, config, security_from_env(enclave))
        self._overrides = dict(parameters or {})
        self._parameters: dict[str, Any] = {}
        self.publishers: list[DdsPublisher] = []
        self.subscriptions: list[DdsSubscription] = []
        self.timers: list[DdsTimer] = []
        self._logger = logging.getLogger(f"robot_rl.{name}")
        self.throttled_log = ThrottledLog()
        self._executors: list["DdsExecutor"] = []

    @classmethod
    def from_options(cls, options: NodeOptions, **kwargs) -> "DdsNode":
        return cls(options.name, options.namespace, options.parameters, remaps=options.remaps,
                   enclave=options.enclave, **kwargs)

    def resolve(self, topic: str) -> str:
        return remap_topic(resolve_topic(topic, self.name, self.namespace), self.remaps, self.name, self.namespace)

    def create_publisher(self, msg_type, topic, qos=QOS_DEFAULT):
        publisher = DdsPublisher(self, msg_type, self.resolve(topic), qos)
        self.publishers.append(publisher)
        self._announce()
        return publisher

    def create_subscription(self, msg_type, topic, callback, qos=QOS_DEFAULT):
        subscription = DdsSubscription(self, msg_type, self.resolve(topic), callback, qos)
        self.subscriptions.append(subscription)
        self._announce()
        self._changed()
        return subscription

    def create_timer(self, period_s, callback):
        timer = DdsTimer(period_s, callback)
        self.timers.append(timer)
        self._changed()
        return timer

    def declare_parameter(self, name, default):
        if name in self._parameters:
            raise ValueError(f"parameter {self.name}.{name} declared twice")
        value = self._overrides.get(name, default)
        self._parameters[name] = coerce_parameter(self.name, name, default, value)
        return self._parameters[name]

    def get_parameter(self, name):
        try:
            return self._parameters[name]
        except KeyError:
            raise KeyError(f"parameter {self.name}.{name} was not declared") from None

    def undeclared_overrides(self) -> list[str]:
        """Overrides given at start-up that no declare_parameter asked for (likely typos)."""
        return sorted(set(self._overrides) - set(self._parameters))

    def now_ns(self) -> int:
        return time.time_ns()

    def publisher_info(self, topic: str) -> list[tuple[str, QoS]]:
        name = dds_topic_name(self.resolve(topic))
        return [(ros_type_name_of_dds(sample.type_name), qos_from_dds(sample.qos))
                for sample in self.context.publications() if sample.topic_name == name]

    def dropped_samples(self) -> dict[str, dict[str, int]]:
        dropped: dict[str, Counter] = {}
        for sub in self.subscriptions:
            if sub.dropped:
                dropped.setdefault(sub.topic, Counter()).update(sub.dropped)
        return {topic: dict(counts) for topic, counts in dropped.items()}

    def request_shutdown(self) -> None:
        for executor in list(self._executors):
            executor.shutdown()

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def destroy(self) -> None:
        for executor in list(self._executors):
            executor.remove_node(self)
        for timer in self.timers:
            timer.cancel()
        self.context.graph.remove(id(self))
        self.publishers.clear()
        self.subscriptions.clear()
        self.timers.clear()

    def _announce(self) -> None:
        """This node, its readers and writers on the graph topic, as an rclpy node appears there."""
        self.context.graph.update(id(self), self.namespace, self.name, [s.reader.guid for s in self.subscriptions],
                                  [p.guid for p in self.publishers if p.guid is not None])

    def _changed(self) -> None:
        for executor in self._executors:
            executor.wake()


class DdsExecutor(Executor):
    """Single-threaded executor: waits on a DDS WaitSet (data on any reader, or a wake-up) until the next timer
    deadline, then runs the due callbacks one at a time. Callback exceptions propagate out of spin()."""

    def __init__(self, nodes: list[DdsNode] = ()):
        self.nodes: list[DdsNode] = []
        self._waitset: WaitSet | None = None
        self._guard: GuardCondition | None = None
        self._attached: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for node in nodes:
            self.add_node(node)

    def add_node(self, node: DdsNode) -> None:
        with self._lock:
            if self._waitset is None:
                self._waitset = WaitSet(node.context.participant)
                self._guard = GuardCondition(node.context.participant)
                self._waitset.attach(self._guard)
                self.domain_id = node.domain_id
            elif node.domain_id != self.domain_id:
                raise ValueError(f"node {node.name} is on domain {node.domain_id}, this executor on {self.domain_id}")
            self.nodes.append(node)
            node._executors.append(self)
        self.wake()

    def remove_node(self, node: DdsNode) -> None:
        with self._lock:
            if node in self.nodes:
                self.nodes.remove(node)
                node._executors.remove(self)
                for sub in node.subscriptions:
                    if id(sub) in self._attached:
                        self._waitset.detach(sub.condition)
                        self._attached.discard(id(sub))

    def wake(self) -> None:
        if self._guard is not None:
            self._guard.set(True)

    def shutdown(self) -> None:
        self._stop.set()
        self.wake()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def spin(self) -> None:
        while not self._stop.is_set():
            self.spin_once(1.0)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until predicate() holds (checked after each round) or timeout; returns predicate()."""
        deadline = time.monotonic() + timeout_s
        while not predicate() and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.spin_once(min(left, 0.05))
        return predicate()

    def spin_once(self, timeout_s: float) -> None:
        if self._waitset is None:
            time.sleep(timeout_s)
            return
        with self._lock:
            nodes = list(self.nodes)
            for node in nodes:
                for sub in node.subscriptions:
                    if id(sub) not in self._attached:
                        self._waitset.attach(sub.condition)
                        self._attached.add(id(sub))
        timers = [t for node in nodes for t in node.timers if not t.cancelled]
        now = time.monotonic_ns()
        wait_ns = int(timeout_s * 1e9)
        if timers:
            wait_ns = min(wait_ns, max(0, min(t.next_ns for t in timers) - now))
        if wait_ns > 0:
            self._waitset.wait(wait_ns)
        self._guard.set(False)
        for node in nodes:
            for sub in list(node.subscriptions):
                for msg in sub.take():
                    sub.callback(msg)
        now = time.monotonic_ns()
        for timer in timers:
            if timer.due(now):
                timer.callback()


def spin_in_thread(executor: DdsExecutor, name: str = "dds-executor") -> threading.Thread:
    """Start executor.spin() on a daemon thread (tests, several nodes beside other work in one process)."""
    thread = threading.Thread(target=executor.spin, name=name, daemon=True)
    thread.start()
    return thread
