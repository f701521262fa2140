"""A librealsense ``software_device`` with a colour and a depth stream, fed from numpy arrays.

It stands in for the RealSense where none is plugged in (tests, CI, a simulator feeding rendered images) and
goes through librealsense itself: its syncer pairs the frames, ``rs.align`` maps depth to colour with the
registered depth->colour extrinsics, and ``rs.recorder`` can write what it streams to a file that
`RealSenseCamera.from_recording` plays back through ``rs.pipeline``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hardware.camera.realsense import CameraError, Intrinsics, RealSenseCamera, SyncerSource, _rs


def _rs_intrinsics(intr: Intrinsics):
    rs = _rs()
    out = rs.intrinsics()
    out.width, out.height = intr.width, intr.height
    out.fx, out.fy, out.ppx, out.ppy = intr.fx, intr.fy, intr.cx, intr.cy
    out.model = getattr(rs.distortion, intr.model)
    out.coeffs = list(intr.coeffs) + [0.0] * (5 - len(intr.coeffs))
    return out


class SoftwareCamera:
    """Software RealSense: `push()` colour (+ depth) arrays; `camera()` is the driver reading them."""

    def __init__(self, color: Intrinsics, depth: Intrinsics | None = None, *, fps: int = 30,
                 depth_units: float = 0.001, depth_to_color_rotation=np.eye(3), depth_to_color_translation=(0, 0, 0),
                 serial: str = "SW0001"):
        rs = _rs()
        self.color_intrinsics, self.depth_intrinsics, self.depth_units = color, depth, depth_units
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, "robot_rl software RealSense")
        self.device.register_info(rs.camera_info.serial_number, serial)
        self._streams = []  # (software sensor, profile, bytes per pixel)
        self.color_sensor = self.device.add_sensor("RGB Camera")
        self.color_profile = self._add_stream(self.color_sensor, rs.stream.color, rs.format.rgb8, 3, color, fps, uid=1)
        self.depth_sensor = self.depth_profile = None
        if depth is not None:
            self.depth_sensor = self.device.add_sensor("Stereo Module")
            self.depth_profile = self._add_stream(self.depth_sensor, rs.stream.depth, rs.format.z16, 2, depth, fps, uid=0)
            self.depth_sensor.add_read_only_option(rs.option.depth_units, float(depth_units))
            extrinsics = rs.extrinsics()
            extrinsics.rotation = np.asarray(depth_to_color_rotation, dtype=float).T.ravel().tolist()  # column-major
            extrinsics.translation = [float(v) for v in depth_to_color_translation]
            self.depth_profile.register_extrinsics_to(self.color_profile, extrinsics)
        self.device.create_matcher(rs.matchers.dlr_c if depth is not None else rs.matchers.default)
        self._recorder = None
        self._source: SyncerSource | None = None

    def _add_stream(self, sensor, stream, fmt, bpp: int, intr: Intrinsics, fps: int, uid: int):
        rs = _rs()
        video = rs.video_stream()
        video.type, video.index, video.uid = stream, 0, uid
        video.width, video.height, video.fps, video.bpp, video.fmt = intr.width, intr.height, fps, bpp, fmt
        video.intrinsics = _rs_intrinsics(intr)
        return sensor.add_video_stream(video, True).as_video_stream_profile()

    def camera(self, record_to: str | Path | None = None, **driver_options) -> RealSenseCamera:
        """Start streaming into the driver; with `record_to` (a .db3 path) librealsense also records the streams.
        `driver_options` go to `RealSenseCamera` (e.g. host_clock_ns)."""
        if self._source is not None:
            raise CameraError("SoftwareCamera.camera(): already streaming")
        device = self.device
        if record_to is not None:
            path = Path(record_to)
            if path.suffix != ".db3":
                raise CameraError(f"{path}: librealsense records to rosbag2 sqlite files; expected a .db3 path")
            self._recorder = device = _rs().recorder(str(path), self.device)
        sensors = {s.get_info(_rs().camera_info.name): s for s in device.query_sensors()}
        pairs = [(sensors["RGB Camera"], self.color_profile)]
        if self.depth_sensor is not None:
            pairs.append((sensors["Stereo Module"], self.depth_profile))
        self._source = SyncerSource(pairs)
        return RealSenseCamera(self, enable_depth=self.depth_sensor is not None, **driver_options)

    # FrameSource: the driver reads through this object, so closing the driver also finishes a recording.
    def wait(self, timeout_ms: int):
        if self._source is None:
            raise CameraError("SoftwareCamera: not streaming (call camera() first)")
        return self._source.wait(timeout_ms)

    def stop(self) -> None:
        self.close()

    def push(self, color: np.ndarray, depth: np.ndarray | None = None, *, timestamp_ms: float, frame_number: int,
             domain: str = "global_time") -> None:
        """One colour (H, W, 3) uint8 frame and, with a depth stream, one depth (H, W) uint16 frame (depth units)
        taken at `timestamp_ms` in clock `domain` ('global_time', 'system_time' or 'hardware_clock')."""
        self._push(self.color_sensor, self.color_profile, np.asarray(color), (self.color_intrinsics.height,
                   self.color_intrinsics.width, 3), np.uint8, timestamp_ms, frame_number, domain)
        if self.depth_sensor is not None:
            if depth is None:
                raise CameraError("SoftwareCamera.push: this camera has a depth stream; pass depth=")
            self._push(self.depth_sensor, self.depth_profile, np.asarray(depth), (self.depth_intrinsics.height,
                       self.depth_intrinsics.width), np.uint16, timestamp_ms, frame_number, domain,
                       depth_units=self.depth_units)

    @staticmethod
    def _push(sensor, profile, pixels, shape, dtype, timestamp_ms, frame_number, domain, depth_units=None) -> None:
        rs = _rs()
        if pixels.shape != shape or pixels.dtype != dtype:
            raise CameraError(f"SoftwareCamera.push: expected {shape} {np.dtype(dtype)}, got {pixels.shape} "
                              f"{pixels.dtype}")
        frame = rs.software_video_frame()
        frame.pixels = np.ascontiguousarray(pixels).copy()  # librealsense keeps the buffer until the frame is freed
        frame.bpp = pixels.dtype.itemsize * (shape[2] if len(shape) == 3 else 1)
        frame.stride = frame.bpp * shape[1]
        frame.timestamp = float(timestamp_ms)
        frame.domain = getattr(rs.timestamp_domain, domain)
        frame.frame_number = int(frame_number)
        frame.profile = profile
        if depth_units is not None:
            frame.depth_units = float(depth_units)
        sensor.on_video_frame(frame)

    def close(self) -> None:
        if self._source is not None:
            self._source.stop()
            self._source = None
        self._recorder = None  # dropping the recorder finishes the file
