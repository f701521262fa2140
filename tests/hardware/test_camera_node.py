"""camera_node end to end over real DDS on loopback: a librealsense software_device feeds frames through the
driver into the node; a subscriber receives Image + CameraInfo with matching content, stamps and intrinsics.
Also as its own process (the console script's main) playing a recording librealsense wrote."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyrealsense2")


from hardware import messages as m  # noqa: E402
from hardware.camera.realsense import Intrinsics  # noqa: E402
from hardware.camera.software_camera import SoftwareCamera  # noqa: E402
from hardware.nodes.camera_node import COLOR_IMAGE, COLOR_INFO, DEPTH_IMAGE, DEPTH_INFO, CameraNode  # noqa: E402
from hardware.transport.base import QOS_SENSOR_DATA  # noqa: E402
from hardware.transport.dds import (DdsExecutor, DdsNode, local_only_config,  # noqa: E402
                                    spin_in_thread)

ROOT = Path(__file__).resolve().parents[2]
COLOR = Intrinsics(64, 48, 50.0, 51.0, 31.5, 23.5, "brown_conrady", (0.1, -0.02, 0.0, 0.0, 0.003))
DEPTH = Intrinsics(64, 48, 50.0, 51.0, 31.5, 23.5, "brown_conrady", (0.0,) * 5)
T0_MS = 1_750_000_000_000.0


def color_image(i):
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = i
    img[..., 1] = np.arange(64, dtype=np.uint8)[None, :]
    img[..., 2] = 255 - np.arange(48, dtype=np.uint8)[:, None]
    return img


def depth_image(i):
    return np.full((48, 64), 800 + 10 * i, np.uint16)


def subscriber(domain):
    node = DdsNode("listener", domain_id=domain)
    got = {topic: [] for topic in (COLOR_IMAGE, COLOR_INFO, DEPTH_IMAGE, DEPTH_INFO)}
    for topic, msg_type in ((COLOR_IMAGE, m.Image), (COLOR_INFO, m.CameraInfo), (DEPTH_IMAGE, m.Image),
                            (DEPTH_INFO, m.CameraInfo)):
        node.create_subscription(msg_type, topic, got[topic].append, QOS_SENSOR_DATA)
    return node, got


def check_messages(got, pushed_numbers, frame_id):
    by_stamp = {m.ns_from_time(msg.header.stamp): msg for msg in got[COLOR_IMAGE]}
    depth_by_stamp = {m.ns_from_time(msg.header.stamp): msg for msg in got[DEPTH_IMAGE]}
    info_by_stamp = {m.ns_from_time(msg.header.stamp): msg for msg in got[COLOR_INFO]}
    matched = 0
    for i in pushed_numbers:
        stamp = round((T0_MS + 33.333 * i) * 1000) * 1000
        if stamp not in by_stamp:
            continue
        matched += 1
        image, depth, info = by_stamp[stamp], depth_by_stamp[stamp], info_by_stamp[stamp]
        assert image.encoding == "rgb8" and image.header.frame_id == frame_id
        np.testing.assert_array_equal(m.array_from_image(image), color_image(i))
        assert depth.encoding == "16UC1"
        # depth went through rs.align into the distorted colour camera: every pixel it reached holds the value
        aligned = m.array_from_image(depth)
        assert aligned.shape == (48, 64) and np.mean(aligned > 0) > 0.8
        assert set(np.unique(aligned)) <= {0, 800 + 10 * i}
        assert (info.width, info.height, info.distortion_model) == (64, 48, "plumb_bob")
        np.testing.assert_allclose(info.k, [50.0, 0, 31.5, 0, 51.0, 23.5, 0, 0, 1])
        np.testing.assert_allclose(info.p, [50.0, 0, 31.5, 0, 0, 51.0, 23.5, 0, 0, 0, 1, 0])
        np.testing.assert_allclose(info.d, COLOR.coeffs, rtol=1e-6)
        assert stamp in {m.ns_from_time(x.header.stamp) for x in got[DEPTH_INFO]}
    return matched


def test_software_device_to_subscriber_over_dds(domain):
    sw = SoftwareCamera(COLOR, DEPTH)
    camera_dds = DdsNode("camera", domain_id=domain, parameters={"fps": 30, "frame_id": "wrist_camera_optical"})
    logic = CameraNode(camera_dds, camera=sw.camera())
    listener, got = subscriber(domain)
    executor = DdsExecutor([camera_dds, listener])
    thread = spin_in_thread(executor)
    try:
        deadline = time.monotonic() + 10
        while not all(p.matched_subscriptions() for p in camera_dds.publishers) and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(12):
            sw.push(color_image(i), depth_image(i), timestamp_ms=T0_MS + 33.333 * i, frame_number=i)
            time.sleep(0.033)
        deadline = time.monotonic() + 5
        while len(got[DEPTH_INFO]) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        executor.shutdown()
        thread.join(5)
        logic.close()
    assert logic.published >= 10
    assert check_messages(got, range(12), "wrist_camera_optical") >= 10
    stamps = [m.ns_from_time(msg.header.stamp) for msg in got[COLOR_IMAGE]]
    assert stamps == sorted(stamps)


def test_colour_only_node(domain):
    sw = SoftwareCamera(COLOR)
    camera_dds = DdsNode("camera", domain_id=domain, parameters={"enable_depth": False})
    logic = CameraNode(camera_dds, camera=sw.camera())
    assert [p.topic for p in camera_dds.publishers] == [COLOR_IMAGE, COLOR_INFO]
    listener, got = subscriber(domain)
    executor = DdsExecutor([camera_dds, listener])
    executor.spin_until(lambda: all(p.matched_subscriptions() for p in camera_dds.publishers), timeout_s=10)
    for i in range(4):
        sw.push(color_image(i), timestamp_ms=T0_MS + 33.333 * i, frame_number=i)
        executor.spin_until(lambda: len(got[COLOR_INFO]) > i, timeout_s=2)
    logic.close()
    assert len(got[COLOR_IMAGE]) >= 3 and not got[DEPTH_IMAGE]
    last = got[COLOR_IMAGE][-1]
    np.testing.assert_array_equal(m.array_from_image(last), color_image(round((m.ns_from_time(last.header.stamp) / 1e6
                                                                               - T0_MS) / 33.333)))


def test_camera_node_process_plays_a_recording(domain, tmp_path):
    path = tmp_path / "camera.db3"
    sw = SoftwareCamera(COLOR, DEPTH)
    cam = sw.camera(record_to=path)
    for i in range(20):
        sw.push(color_image(i), depth_image(i), timestamp_ms=T0_MS + 33.333 * i, frame_number=i)
        cam.read(timeout_ms=100)
        time.sleep(0.033)
    cam.close()
    listener, got = subscriber(domain)
    executor = DdsExecutor([listener])
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
           "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    # the recording replays in real time, so the subscriber is matched before most frames go out
    proc = subprocess.Popen([sys.executable, "-m", "hardware.nodes.camera_node", "--ros-args",
                             "-p", f"recording:={path}", "-p", "frame_id:=fixed_camera"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        executor.spin_until(lambda: len(got[DEPTH_INFO]) >= 5, timeout_s=30)
        executor.spin_until(lambda: False, timeout_s=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "depth scale 0.001" in err + out
    assert check_messages(got, range(20), "fixed_camera") >= 5
