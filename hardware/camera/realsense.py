"""RealSense driver: colour (rgb8) and depth (z16) aligned to colour, intrinsics in ROS CameraInfo form,
time stamps in nanoseconds.

The driver reads framesets from a `FrameSource`: a live device or a recording through ``rs.pipeline``
(`PipelineSource`), or a librealsense ``software_device`` through ``rs.syncer`` (`SyncerSource`, built by
`hardware.camera.software_camera`). Everything after the frameset (alignment, intrinsics, stamps, depth scale)
is one code path for all of them.

Clock domains (librealsense's ``rs2_timestamp_domain``), and what `CameraFrame.stamp_ns` holds:
- ``global_time``: the device's hardware clock mapped by librealsense onto the host clock (ms since the epoch,
  drift-corrected). Used as is. Enabled on live devices (option ``global_time_enabled``) when they support it.
- ``system_time``: the host's arrival time (ms since the epoch). Used as is.
- ``hardware_clock``: the camera's own clock (ms since it started). Mapped onto the host clock with the offset
  min(host arrival - hardware time) over the frames seen so far (arrival latency is positive, so the minimum is
  the tightest bound); the offset is re-learned when the hardware clock jumps back (reset or wrap).
Stamps are rounded to whole microseconds, the resolution of RealSense hardware time stamps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pyrealsense2 as rs

NS_PER_MS = 1_000_000


class CameraError(RuntimeError):
    pass


def _rs():
    try:
        import pyrealsense2
    except ImportError as error:  # optional dependency: the [realsense] extra
        raise CameraError("pyrealsense2 is not installed; install the extra: pip install robot_rl[realsense]") from error
    return pyrealsense2


@dataclass(frozen=True)
class CameraSettings:
    serial: str = ""          # empty: the first device found
    width: int = 640
    height: int = 480
    fps: int = 30
    enable_depth: bool = True

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"CameraSettings.{name}: expected a positive integer, got {getattr(self, name)!r}")


# librealsense distortion model -> ROS 2 CameraInfo.distortion_model and how many coefficients it takes.
# ROS has no name for (inverse/modified) Brown-Conrady; their 5 coefficients are in plumb_bob's order
# (k1, k2, p1, p2, k3) and with all-zero coefficients (the D400 colour default) the models are identical.
# realsense-ros publishes them as plumb_bob too, so consumers see the same CameraInfo with either driver.
ROS_DISTORTION = {
    "none": ("plumb_bob", 5),
    "brown_conrady": ("plumb_bob", 5),
    "inverse_brown_conrady": ("plumb_bob", 5),
    "modified_brown_conrady": ("plumb_bob", 5),
    "kannala_brandt4": ("equidistant", 4),
}


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one stream (pixels) and its distortion, as librealsense reports them."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"                   # librealsense distortion model name (rs.distortion member)
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def from_rs(cls, intr: "rs.intrinsics") -> "Intrinsics":
        return cls(width=int(intr.width), height=int(intr.height), fx=float(intr.fx), fy=float(intr.fy),
                   cx=float(intr.ppx), cy=float(intr.ppy), model=intr.model.name, coeffs=tuple(map(float, intr.coeffs)))

    @property
    def camera_matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def ros_distortion_model(self) -> str:
        if self.model not in ROS_DISTORTION:
            raise CameraError(f"distortion model {self.model!r} has no ROS CameraInfo equivalent; "
                              f"supported: {sorted(ROS_DISTORTION)}")
        return ROS_DISTORTION[self.model][0]

    @property
    def ros_d(self) -> list[float]:
        return [float(c) for c in self.coeffs[:ROS_DISTORTION[self.model][1]]] if self.model in ROS_DISTORTION else []

    def camera_info_fields(self) -> dict[str, Any]:
        """sensor_msgs/CameraInfo fields (everything but the header) for an unrectified monocular stream:
        R = identity and P = [K | 0], as camera drivers publish them."""
        k = self.camera_matrix
        p = np.hstack([k, np.zeros((3, 1))])
        return {"height": self.height, "width": self.width, "distortion_model": self.ros_distortion_model,
                "d": self.ros_d, "k": k.ravel().tolist(), "r": np.eye(3).ravel().tolist(), "p": p.ravel().tolist()}

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx,
                "cy": self.cy, "model": self.model, "coeffs": list(self.coeffs)}


@dataclass
class CameraFrame:
    color: np.ndarray                     # (H, W, 3) uint8 RGB
    depth: np.ndarray | None              # (H, W) uint16 in depth units, aligned to the colour image; None without depth
    stamp_ns: int                         # colour exposure time on the host clock (see module doc)
    clock_domain: str                     # librealsense domain the stamp came from
    frame_number: int
    depth_scale: float                    # metres per depth unit (0.0 without depth)
    intrinsics: Intrinsics = field(repr=False)  # of the colour stream = of the aligned depth

    def depth_m(self) -> np.ndarray:
        if self.depth is None:
            raise CameraError("this frame has no depth (enable_depth is off)")
        return self.depth.astype(np.float32) * np.float32(self.depth_scale)


class FrameSource(Protocol):
    """Where framesets come from."""

    def wait(self, timeout_ms: int) -> "rs.composite_frame | None": ...

    def stop(self) -> None: ...


class PipelineSource:
    """A live device (by serial) or a librealsense recording, through ``rs.pipeline``."""

    def __init__(self, settings: CameraSettings, recording: str | Path | None = None):
        rs = _rs()
        self.pipeline = rs.pipeline(rs.context())
        config = rs.config()
        if recording is not None:
            path = Path(recording)
            if not path.is_file():
                raise CameraError(f"{path}: RealSense recording not found")
            config.enable_device_from_file(str(path), repeat_playback=False)
        else:  # fail fast with what is there, rather than after the pipeline's device wait
            context = rs.context()
            serials = [d.get_info(rs.camera_info.serial_number) for d in context.query_devices()]
            if not serials or (settings.serial and settings.serial not in serials):
                raise CameraError(f"RealSense device {settings.serial or '(any)'} not connected; connected: "
                                  f"{serials or 'none'}")
            if settings.serial:
                config.enable_device(settings.serial)
        streams = [(rs.stream.color, rs.format.rgb8)] + ([(rs.stream.depth, rs.format.z16)] if settings.enable_depth else [])
        for stream, fmt in streams:
            if recording is not None:  # a recording streams what it holds: any size and rate
                config.enable_stream(stream, fmt, 0)
            else:
                config.enable_stream(stream, settings.width, settings.height, fmt, settings.fps)
        what = f"recording {recording}" if recording is not None else f"device {settings.serial or '(first found)'}"
        try:
            profile = self.pipeline.start(config)
        except RuntimeError as error:
            raise CameraError(f"RealSense {what}: cannot stream colour"
                              f"{' + depth' if settings.enable_depth else ''} {settings.width}x{settings.height} "
                              f"@ {settings.fps} fps: {error}") from error
        device = profile.get_device()
        if recording is None:  # a recording plays in real time, paced like the camera it came from
            for sensor in device.query_sensors():
                if sensor.supports(rs.option.global_time_enabled):
                    sensor.set_option(rs.option.global_time_enabled, 1.0)

    def wait(self, timeout_ms: int):
        ok, frames = self.pipeline.try_wait_for_frames(timeout_ms)
        return frames if ok else None

    def stop(self) -> None:
        self.pipeline.stop()


class SyncerSource:
    """Sensors (of a software device) opened on their profiles and started into one ``rs.syncer``."""

    def __init__(self, sensors_and_profiles: list[tuple["rs.sensor", "rs.stream_profile"]]):
        rs = _rs()
        self.syncer = rs.syncer()
        self.sensors = []
        for sensor, profile in sensors_and_profiles:
            sensor.open(profile)
            sensor.start(self.syncer)
            self.sensors.append(sensor)

    def wait(self, timeout_ms: int):
        ok, frames = self.syncer.try_wait_for_frames(timeout_ms)
        return frames if ok else None

    def stop(self) -> None:
        for sensor in self.sensors:
            sensor.stop()
            sensor.close()
        self.sensors = []


class HostClockMapper:
    """Maps a camera's hardware clock (ms) onto the host clock (ns) by the minimum observed offset."""

    def __init__(self) -> None:
        self.offset_ns: int | None = None
        self.last_hw_ns: int | None = None

    def __call__(self, hw_ns: int, arrival_ns: int) -> int:
        if self.last_hw_ns is not None and hw_ns < self.last_hw_ns:
            self.offset_ns = None  # the camera clock was reset or wrapped
        self.last_hw_ns = hw_ns
        offset = arrival_ns - hw_ns
        self.offset_ns = offset if self.offset_ns is None else min(self.offset_ns, offset)
        return hw_ns + self.offset_ns


class RealSenseCamera:
    """Colour + aligned depth frames from a `FrameSource`; `read()` returns `CameraFrame`s."""

    def __init__(self, source: FrameSource, enable_depth: bool = True, host_clock_ns=time.time_ns):
        rs = _rs()
        self.source = source
        self.enable_depth = enable_depth
        self.align = rs.align(rs.stream.color) if enable_depth else None
        self._host_clock_ns = host_clock_ns
        self._hw_to_host = HostClockMapper()
        self._rs = rs
        self.incomplete_framesets = 0  # framesets skipped because colour or depth was missing

    @classmethod
    def open(cls, settings: CameraSettings) -> "RealSenseCamera":
        """A live camera (pyrealsense2 + a USB device)."""
        return cls(PipelineSource(settings), settings.enable_depth)

    @classmethod
    def from_recording(cls, path: str | Path, settings: CameraSettings) -> "RealSenseCamera":
        """Play back a recording librealsense wrote (rs.recorder / realsense-viewer) in real time."""
        return cls(PipelineSource(settings, recording=path), settings.enable_depth)

    def read(self, timeout_ms: int = 1000) -> CameraFrame | None:
        """The next frameset, or None when none came within the timeout (or a recording ended)."""
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            frames = self.source.wait(max(1, int((deadline - time.monotonic()) * 1000.0)))
            if frames is None:
                return None
            arrival_ns = self._host_clock_ns()
            if frames.get_color_frame() and (not self.enable_depth or frames.get_depth_frame()):
                break
            # The syncer hands out a lone frame when its partner is late or lost (always at start-up): skip it.
            self.incomplete_framesets += 1
            if time.monotonic() >= deadline:
                return None
        if self.align is not None:
            frames = self.align.process(frames)
        color = frames.get_color_frame()
        depth_frame = frames.get_depth_frame() if self.enable_depth else None
        intrinsics = Intrinsics.from_rs(color.get_profile().as_video_stream_profile().get_intrinsics())
        pixels = np.asanyarray(color.get_data())
        if pixels.shape != (intrinsics.height, intrinsics.width, 3) or pixels.dtype != np.uint8:
            raise CameraError(f"colour frame: expected ({intrinsics.height}, {intrinsics.width}, 3) uint8 rgb8, "
                              f"got {pixels.shape} {pixels.dtype} ({color.get_profile().format()})")
        depth = None
        depth_scale = 0.0
        if depth_frame:
            depth = np.array(depth_frame.get_data(), dtype=np.uint16, copy=True)
            depth_scale = float(depth_frame.as_depth_frame().get_units())
        stamp_ns, domain = self._stamp(color, arrival_ns)
        return CameraFrame(color=pixels.copy(), depth=depth, stamp_ns=stamp_ns, clock_domain=domain,
                           frame_number=int(color.get_frame_number()), depth_scale=depth_scale, intrinsics=intrinsics)

    def _stamp(self, frame: "rs.frame", arrival_ns: int) -> tuple[int, str]:
        stamp_ns = int(round(frame.get_timestamp() * 1000.0)) * 1000  # ms -> whole us -> ns
        domain = frame.get_frame_timestamp_domain()
        if domain == self._rs.timestamp_domain.hardware_clock:
            stamp_ns = self._hw_to_host(stamp_ns, arrival_ns)
        return stamp_ns, domain.name

    def close(self) -> None:
        self.source.stop()

    def __enter__(self) -> "RealSenseCamera":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
