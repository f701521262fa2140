"""`recorder`: writes chosen topics to a rosbag2 recording (MCAP by default), as `ros2 bag record` would.

    recorder topics:="[/joint_states, /forward_position_controller/commands]" output:=runs/bag1 max_duration_s:=30

Each topic's type and QoS are taken from its publishers once discovered (like ros2 bag: reliable only if every
publisher is, transient-local only if every publisher is), so start order does not matter. Messages are stamped
with the receive time (ns) of the node clock. The bag appears under `output` only when recording stops cleanly
(SIGINT/SIGTERM or max_duration_s); until then it lives in a hidden partial folder beside it.
"""
import time
from typing import Sequence

from hardware.messages import message_type
from hardware.recording import STORAGES, BagWriter
from hardware.transport.base import Durability, Node, QoS, Reliability, resolve_topic

# Reader history: deep enough that bursts (e.g. camera frames while the disk is busy) are not dropped.
READER_DEPTH = 1000
PARAMETERS: dict[str, object] = {
    "topics": ["/joint_states"],                   # topics to record (types and QoS learnt from their publishers)
    "output": "",                                  # bag folder; empty: rosbag2_<date>-<time> as ros2 bag names it
    "storage": "mcap",                             # mcap | sqlite3
    "max_duration_s": 0.0,                         # > 0: stop after this long
}


def default_output() -> str:
    return time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


class Recorder:
    def __init__(self, node: Node):
        self.node = node
        p = {name: node.declare_parameter(name, default) for name, default in PARAMETERS.items()}
        topics, storage, self.max_duration_s = p["topics"], p["storage"], p["max_duration_s"]
        output = p["output"] or default_output()
        if storage not in STORAGES:
            raise ValueError(f"parameter {node.name}.storage: expected one of {sorted(STORAGES)}, got {storage!r}")
        if not topics or not all(isinstance(t, str) for t in topics):
            raise ValueError(f"parameter {node.name}.topics: expected a non-empty list of topic names, got {topics!r}")
        self.pending = [resolve_topic(t, node.name, node.namespace) for t in topics]
        self.bag = BagWriter(output, storage)
        self.started = time.monotonic()
        self.subscriptions = []
        try:
            node.logger.info(f"recording {self.pending} to {output} ({storage})")
            self.discover()
            node.create_timer(0.1, self.tick)
        except BaseException:
            self.bag.abort()  # close() will not run for a half-built recorder
            raise

    def tick(self) -> None:
        if self.pending:
            self.discover()
        if self.max_duration_s > 0 and time.monotonic() - self.started >= self.max_duration_s:
            self.node.request_shutdown()

    def discover(self) -> None:
        for topic in list(self.pending):
            publishers = self.node.publisher_info(topic)
            if not publishers:
                continue
            type_names = sorted({type_name for type_name, _ in publishers})
            self.pending.remove(topic)
            if len(type_names) > 1:
                self.node.logger.error(f"not recording {topic}: publishers disagree on its type {type_names}")
                continue
            try:
                msg_type = message_type(type_names[0])
            except KeyError as error:
                self.node.logger.error(f"not recording {topic}: {error.args[0]}")
                continue
            offered = [qos for _, qos in publishers]
            reliable = all(q.reliability is Reliability.RELIABLE for q in offered)
            latched = all(q.durability is Durability.TRANSIENT_LOCAL for q in offered)
            reader_qos = QoS(Reliability.RELIABLE if reliable else Reliability.BEST_EFFORT,
                             Durability.TRANSIENT_LOCAL if latched else Durability.VOLATILE, READER_DEPTH)
            self.bag.add_topic(topic, msg_type, offered[0])
            self.subscriptions.append(self.node.create_subscription(
                msg_type, topic, lambda msg, topic=topic: self.bag.write(topic, self.node.now_ns(), msg), reader_qos))
            self.node.logger.info(f"subscribed to {topic} [{type_names[0]}]")

    def close(self) -> None:
        path = self.bag.close()
        self.node.logger.info(f"wrote {path}: {self.bag.counts}")
        if self.pending:
            self.node.logger.warning(f"never saw a publisher on {self.pending}")


def main(argv: Sequence[str] | None = None) -> int:
    from hardware.transport import run_node

    return run_node("recorder", Recorder, argv, parameters=PARAMETERS, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
