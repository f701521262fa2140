"""Camera path cost: librealsense software_device -> RealSenseCamera.read (syncer + rs.align) -> camera_node's
messages -> DDS -> a subscriber in the same process, at RealSense resolutions.

    .venv/bin/python benchmarks/camera_pipeline.py [--frames 60] [--csv out.csv]

Per resolution: driver read (sync + align + copies), message building (Image x2 + CameraInfo x2), and the
end-to-end latency from pushing the frame into librealsense to the subscriber's callback (p50/p99, ms), and the
frame rate the node sustains when frames are pushed as fast as it takes them.
"""
import argparse
import csv
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclonedds.domain import Domain  # noqa: E402

from hardware import messages as m  # noqa: E402
from hardware.camera.realsense import Intrinsics  # noqa: E402
from hardware.camera.software_camera import SoftwareCamera  # noqa: E402
from hardware.nodes.camera_node import COLOR_IMAGE, DEPTH_IMAGE, CameraNode  # noqa: E402
from hardware.transport.base import QOS_SENSOR_DATA  # noqa: E402
from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config, private_domain_id  # noqa: E402


def measure(width, height, frames, domain):
    intr = Intrinsics(width, height, 0.95 * width, 0.95 * width, width / 2, height / 2, "brown_conrady", (0.0,) * 5)
    sw = SoftwareCamera(intr, intr, depth_to_color_translation=(0.015, 0.0, 0.0))
    rng = np.random.default_rng(0)
    color = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    depth = rng.integers(400, 3000, (height, width), dtype=np.uint16)
    camera = sw.camera()
    node = DdsNode(f"camera_{width}", domain_id=domain, parameters={"fps": 30})
    logic = CameraNode(node, camera=camera)
    listener = DdsNode(f"listener_{width}", domain_id=domain)
    received = {}
    listener.create_subscription(m.Image, DEPTH_IMAGE, lambda msg: received.setdefault(
        m.ns_from_time(msg.header.stamp), time.perf_counter_ns()), QOS_SENSOR_DATA)
    listener.create_subscription(m.Image, COLOR_IMAGE, lambda msg: None, QOS_SENSOR_DATA)
    executor = DdsExecutor([listener])
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    time.sleep(1.0)  # discovery
    reads, builds, pushed = [], [], {}
    publish = logic.publish

    def timed_publish(frame):
        start = time.perf_counter_ns()
        publish(frame)
        builds.append(time.perf_counter_ns() - start)

    logic.publish = timed_publish
    start_all = time.perf_counter()
    for i in range(frames):
        stamp_ms = 1_700_000_000_000.0 + i * 33.0
        pushed[round(stamp_ms * 1000) * 1000] = time.perf_counter_ns()
        sw.push(color, depth, timestamp_ms=stamp_ms, frame_number=i)
        t0 = time.perf_counter_ns()
        frame = camera.read(timeout_ms=200)
        reads.append(time.perf_counter_ns() - t0)
        if frame is not None:
            logic.publish(frame)
    elapsed = time.perf_counter() - start_all
    time.sleep(0.5)
    executor.shutdown()
    thread.join(2)
    logic.close()
    node.destroy()
    listener.destroy()
    latencies = [received[s] - pushed[s] for s in received if s in pushed]
    ms = lambda v, q: float(np.percentile(v, q)) / 1e6  # noqa: E731
    return {"resolution": f"{width}x{height}", "read_p50_ms": ms(reads, 50), "publish_p50_ms": ms(builds, 50),
            "e2e_p50_ms": ms(latencies, 50), "e2e_p99_ms": ms(latencies, 99), "fps": frames / elapsed,
            "received": f"{len(latencies)}/{frames}"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--csv")
    args = parser.parse_args()
    domain = private_domain_id()
    handle = Domain(domain, local_only_config())
    rows = [measure(w, h, args.frames, domain) for w, h in ((424, 240), (640, 480), (1280, 720))]
    del handle
    keys = list(rows[0])
    print(" | ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print(" | ".join(f"{row[k]:>14.2f}" if isinstance(row[k], float) else f"{row[k]:>14}" for k in keys))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
