"""RealSense driver through librealsense itself: a software_device feeds synthetic frames with known content and
time stamps through rs.syncer and rs.align; a recording written by rs.recorder plays back through rs.pipeline."""
import time

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from hardware.camera.realsense import (CameraError, CameraSettings, HostClockMapper, Intrinsics,  # noqa: E402
                                       RealSenseCamera)
from hardware.camera.software_camera import SoftwareCamera  # noqa: E402

COLOR = Intrinsics(64, 48, 50.0, 51.0, 31.5, 23.5, "inverse_brown_conrady", (0.0,) * 5)
DEPTH = Intrinsics(80, 60, 60.0, 60.0, 40.0, 30.0, "brown_conrady", (0.0,) * 5)
T0_MS = 1_700_000_000_000.0


def color_image(i: int) -> np.ndarray:
    img = np.zeros((COLOR.height, COLOR.width, 3), np.uint8)
    img[..., 0] = i
    img[..., 1] = np.arange(COLOR.width, dtype=np.uint8)[None, :]
    img[..., 2] = np.arange(COLOR.height, dtype=np.uint8)[:, None]
    return img


def read_all(sw: SoftwareCamera, cam: RealSenseCamera, n: int, depth_of=lambda i: None, domain="global_time",
             period_ms=33.333, pace=False):
    frames = []
    for i in range(n):
        if pace:  # push at the camera's rate, as a live camera delivers (recordings replay this pacing)
            time.sleep(period_ms / 1000.0)
        depth = depth_of(i)
        sw.push(color_image(i), depth, timestamp_ms=T0_MS + i * period_ms, frame_number=i, domain=domain)
        frame = cam.read(timeout_ms=300)
        if frame is not None:
            frames.append(frame)
    return frames


def test_frames_content_stamps_intrinsics_and_depth_scale():
    sw = SoftwareCamera(COLOR, DEPTH, depth_units=0.0001)
    cam = sw.camera()
    frames = read_all(sw, cam, 6, depth_of=lambda i: np.full((60, 80), 5000 + i, np.uint16))
    cam.close()
    # the syncer may hand out the very first frame alone (skipped); every later pair must come through intact
    assert len(frames) >= 5 and cam.incomplete_framesets <= 1
    for f in frames:
        i = f.frame_number
        np.testing.assert_array_equal(f.color, color_image(i))
        assert f.depth.shape == (COLOR.height, COLOR.width) and f.depth.dtype == np.uint16  # aligned to colour
        assert np.all(f.depth[5:-5, 5:-5] == 5000 + i)
        assert f.depth_scale == pytest.approx(1e-4)
        assert f.depth_m()[24, 32] == pytest.approx((5000 + i) * 1e-4, rel=1e-6)
        assert f.clock_domain == "global_time"
        assert f.stamp_ns == round((T0_MS + i * 33.333) * 1000) * 1000
        assert f.intrinsics == COLOR
    assert [f.frame_number for f in frames] == sorted(f.frame_number for f in frames)


@pytest.mark.parametrize("t", [-0.05, 0.05])
def test_alignment_maps_depth_through_the_extrinsics(t):
    """A wall at z = 1 m whose left part is a box at 0.5 m (depth image columns < 40), seen by a colour camera
    5 cm to the side. The box and wall edges land in the colour image where the pinhole model puts them:
    with t < 0 a disocclusion gap of zeros opens between them; with t > 0 the nearer box hides the wall."""
    sw = SoftwareCamera(COLOR, DEPTH, depth_to_color_translation=(t, 0.0, 0.0))
    depth = np.full((60, 80), 1000, np.uint16)
    depth[:, :40] = 500
    cam = sw.camera()
    aligned = read_all(sw, cam, 3, depth_of=lambda i: depth)[-1].depth
    cam.close()

    def colour_column(u_depth, z):  # depth pixel -> 3D point (depth frame) -> colour frame -> colour pixel
        x = (u_depth - DEPTH.cx) * z / DEPTH.fx + t
        return COLOR.fx * x / z + COLOR.cx

    box_edge, wall_edge = colour_column(39.5, 0.5), colour_column(39.5, 1.0)
    for row in aligned[5:-5]:
        box, wall = np.flatnonzero(row == 500), np.flatnonzero(row == 1000)
        assert set(np.unique(row)) <= {0, 500, 1000}
        assert abs(box.max() + 0.5 - box_edge) <= 1.0
        assert abs(wall.min() - 0.5 - max(wall_edge, box_edge)) <= 1.0
        if t < 0:
            assert np.all(row[box.max() + 1: wall.min()] == 0) and wall.min() - box.max() > 1


def test_colour_only_stream():
    sw = SoftwareCamera(COLOR)
    cam = sw.camera()
    frames = read_all(sw, cam, 4)
    cam.close()
    assert len(frames) >= 3
    assert all(f.depth is None and f.depth_scale == 0.0 for f in frames)
    np.testing.assert_array_equal(frames[-1].color, color_image(frames[-1].frame_number))
    with pytest.raises(CameraError, match="no depth"):
        frames[-1].depth_m()


def test_hardware_clock_is_mapped_onto_the_host_clock():
    """Camera clock: ms since power-on, a frame every 33 ms. Host arrivals: 10 s + 33 ms * i + a varying latency.
    Each stamp is the camera time plus the smallest (arrival - camera time) offset seen so far."""
    latency_ms = [5, 3, 4, 1, 2, 6]
    arrivals = iter([10_000_000_000 + (33 * i + lat) * 1_000_000 for i, lat in enumerate(latency_ms)])
    sw = SoftwareCamera(COLOR)
    cam = sw.camera(host_clock_ns=lambda: next(arrivals))
    frames = []
    for i in range(len(latency_ms)):
        sw.push(color_image(i), timestamp_ms=5000.0 + 33.0 * i, frame_number=i, domain="hardware_clock")
        frames.append(cam.read(300))
    cam.close()
    assert [f.frame_number for f in frames] == list(range(len(latency_ms)))
    assert all(f.clock_domain == "hardware_clock" for f in frames)
    for i, f in enumerate(frames):
        offset_ms = 5000 + min(latency_ms[:i + 1])
        assert f.stamp_ns == (5000 + 33 * i + offset_ms) * 1_000_000


def test_host_clock_mapper_takes_the_minimum_offset_and_relearns_after_a_reset():
    m = HostClockMapper()
    assert m(1_000, 5_000) == 5_000            # offset 4000
    assert m(2_000, 6_500) == 6_000            # offset 4500 > 4000: keep 4000
    assert m(3_000, 6_800) == 6_800            # offset 3800: tighter
    assert m(500, 9_000) == 9_000              # clock went back: re-learn (offset 8500)


def test_camera_info_fields():
    info = COLOR.camera_info_fields()
    assert info["distortion_model"] == "plumb_bob" and info["d"] == [0.0] * 5
    assert info["k"] == [50.0, 0.0, 31.5, 0.0, 51.0, 23.5, 0.0, 0.0, 1.0]
    assert info["r"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    assert info["p"] == [50.0, 0.0, 31.5, 0.0, 0.0, 51.0, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert (info["width"], info["height"]) == (64, 48)
    fisheye = Intrinsics(64, 48, 30, 30, 32, 24, "kannala_brandt4", (0.1, 0.2, 0.3, 0.4, 0.0))
    assert fisheye.camera_info_fields()["distortion_model"] == "equidistant"
    assert fisheye.camera_info_fields()["d"] == [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(Exception, match="ftheta"):
        Intrinsics(64, 48, 30, 30, 32, 24, "ftheta", (0.5, 0, 0, 0, 0)).camera_info_fields()


def test_intrinsics_and_distortion_reach_the_driver_from_librealsense():
    distorted = Intrinsics(64, 48, 52.5, 52.0, 30.25, 22.75, "brown_conrady", (0.11, -0.05, 0.001, -0.002, 0.01))
    sw = SoftwareCamera(distorted)
    cam = sw.camera()
    frames = read_all(sw, cam, 3)
    cam.close()
    got = frames[-1].intrinsics
    assert got.model == "brown_conrady"
    np.testing.assert_allclose([got.fx, got.fy, got.cx, got.cy], [52.5, 52.0, 30.25, 22.75])
    np.testing.assert_allclose(got.coeffs, distorted.coeffs, rtol=1e-6)  # librealsense stores float32


def test_recording_plays_back_through_the_pipeline(tmp_path):
    path = tmp_path / "camera.db3"
    sw = SoftwareCamera(COLOR, DEPTH)
    cam = sw.camera(record_to=path)
    live = read_all(sw, cam, 8, depth_of=lambda i: np.full((60, 80), 700 + i, np.uint16), pace=True)
    cam.close()
    assert path.stat().st_size > 0
    played = []
    with RealSenseCamera.from_recording(path, CameraSettings()) as cam:
        while (frame := cam.read(timeout_ms=1000)) is not None:
            played.append(frame)
    # playback starts like a live camera: librealsense's syncer may drop the first pair or two; after that every
    # recorded frame comes back in order, identical to what the live driver read
    numbers = [f.frame_number for f in played]
    assert numbers == list(range(numbers[0], 8)) and numbers[0] <= 2
    by_number = {f.frame_number: f for f in played}
    for a in live:
        if a.frame_number not in by_number:
            continue
        b = by_number[a.frame_number]
        np.testing.assert_array_equal(a.color, b.color)
        np.testing.assert_array_equal(a.depth, b.depth)
        assert a.stamp_ns == b.stamp_ns and a.intrinsics == b.intrinsics and b.depth_scale == pytest.approx(0.001)


def test_clear_errors():
    with pytest.raises(CameraError, match="not found"):
        RealSenseCamera.from_recording("/nonexistent/camera.db3", CameraSettings())
    with pytest.raises(CameraError, match="SERIAL-THAT-IS-NOT-THERE"):  # no camera on this machine
        RealSenseCamera.open(CameraSettings(serial="SERIAL-THAT-IS-NOT-THERE"))
    sw = SoftwareCamera(COLOR, DEPTH)
    with pytest.raises(CameraError, match=r"expected \(48, 64, 3\) uint8"):
        sw.push(np.zeros((48, 64), np.uint8), np.zeros((60, 80), np.uint16), timestamp_ms=0.0, frame_number=0)
    with pytest.raises(CameraError, match="pass depth"):
        sw.push(color_image(0), timestamp_ms=0.0, frame_number=0)
    with pytest.raises(CameraError, match=".db3"):
        sw.camera(record_to="/tmp/x.bag")
    with pytest.raises(ValueError, match="CameraSettings.fps"):
        CameraSettings(fps=0)
