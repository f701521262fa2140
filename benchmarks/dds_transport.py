"""DDS transport latency and CDR cost: round trips through an echo node in another process over loopback, and
publish-to-callback inside one process, for a 7-joint JointState and camera images.

    .venv/bin/python benchmarks/dds_transport.py [--count 300] [--csv out.csv]

Prints a table (p50/p99 in microseconds). One-way latency is about half the round trip.
"""
import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hardware import messages as m  # noqa: E402
from hardware.transport.base import QOS_DEFAULT  # noqa: E402
from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config, private_domain_id  # noqa: E402

ECHO = """
from hardware import messages as m
from hardware.transport import run_node

class Echo:
    def __init__(self, node):
        msg_type = m.message_type(node.declare_parameter("type", "sensor_msgs/msg/JointState"))
        suffix = msg_type.__name__.lower()  # a topic name keeps one type per process, so one pair per type
        publisher = node.create_publisher(msg_type, "/pong_" + suffix)
        node.create_subscription(msg_type, "/ping_" + suffix, publisher.publish)

raise SystemExit(run_node("echo", Echo))
"""


def payloads():
    joints = [f"panda_joint{i}" for i in range(1, 8)]
    rng = np.random.default_rng(0)
    return {
        "JointState 7 joints": m.joint_state(joints, rng.normal(size=7), rng.normal(size=7), rng.normal(size=7)),
        "Image 64x64 rgb8": m.image_from_array(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "rgb8"),
        "Image 640x480 rgb8": m.image_from_array(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), "rgb8"),
    }


def cdr_cost(msg, repeats=50):
    type(msg).deserialize(msg.serialize())  # warm-up: cyclonedds builds its (de)serialisers on first use
    start = time.perf_counter()
    for _ in range(repeats):
        data = msg.serialize()
    serialise = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        type(msg).deserialize(data)
    return serialise, (time.perf_counter() - start) / repeats


def round_trips(domain_id, msg, count):
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "CYCLONEDDS_URI": local_only_config(),
           "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    echo = subprocess.Popen([sys.executable, "-c", ECHO, f"type:={m.ros_type_name(type(msg))}"], env=env)
    try:
        node = DdsNode("bench", domain_id=domain_id)
        suffix = type(msg).__name__.lower()
        publisher = node.create_publisher(type(msg), "/ping_" + suffix, QOS_DEFAULT)
        got = []
        node.create_subscription(type(msg), "/pong_" + suffix, lambda _: got.append(time.perf_counter_ns()),
                                 QOS_DEFAULT)
        executor = DdsExecutor([node])
        if not executor.spin_until(lambda: publisher.matched_subscriptions() and node.subscriptions[0]
                                   .matched_publishers(), 30):
            raise RuntimeError("echo node not discovered")
        times = []
        for i in range(count + 10):
            sent = time.perf_counter_ns()
            publisher.publish(msg)
            if not executor.spin_until(lambda: len(got) > i, 2):
                raise RuntimeError("echo lost")
            times.append(got[i] - sent)
        node.destroy()
        return np.array(times[10:]) / 1e3
    finally:
        echo.terminate()
        echo.wait(10)


def in_process(domain_id, msg, count):
    node = DdsNode("local", domain_id=domain_id)
    topic = "/local_" + type(msg).__name__.lower()
    publisher = node.create_publisher(type(msg), topic)
    got = []
    node.create_subscription(type(msg), topic, lambda _: got.append(time.perf_counter_ns()))
    executor = DdsExecutor([node])
    times = []
    for i in range(count + 10):
        sent = time.perf_counter_ns()
        publisher.publish(msg)
        executor.spin_until(lambda: len(got) > i, 2)
        times.append(got[i] - sent)
    node.destroy()
    return np.array(times[10:]) / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    domain_id = private_domain_id()
    from cyclonedds.domain import Domain

    handle = Domain(domain_id, local_only_config())  # noqa: F841
    rows = []
    for name, msg in payloads().items():
        serialise, deserialise = cdr_cost(msg)
        rtt = round_trips(domain_id, msg, args.count)
        local = in_process(domain_id, msg, args.count)
        rows.append({"message": name, "bytes": len(msg.serialize()), "serialise_us": serialise * 1e6,
                     "deserialise_us": deserialise * 1e6, "rtt_p50_us": np.percentile(rtt, 50),
                     "rtt_p99_us": np.percentile(rtt, 99), "local_p50_us": np.percentile(local, 50),
                     "local_p99_us": np.percentile(local, 99)})
    header = f"{'message':<20} {'bytes':>8} {'ser us':>8} {'deser us':>9} {'RTT p50':>9} {'RTT p99':>9} " \
             f"{'local p50':>10} {'local p99':>10}"
    print(header)
    for r in rows:
        print(f"{r['message']:<20} {r['bytes']:>8} {r['serialise_us']:>8.1f} {r['deserialise_us']:>9.1f} "
              f"{r['rtt_p50_us']:>9.0f} {r['rtt_p99_us']:>9.0f} {r['local_p50_us']:>10.0f} {r['local_p99_us']:>10.0f}")
    if args.csv:
        with open(args.csv, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
