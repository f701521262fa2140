"""camera_node: a RealSense's colour image, depth aligned to colour and intrinsics on ROS 2 topics, under the
names realsense-ros uses (so launch files and consumers work with either driver):

  /camera/color/image_raw                        sensor_msgs/Image rgb8
  /camera/color/camera_info                      sensor_msgs/CameraInfo
  /camera/aligned_depth_to_color/image_raw       sensor_msgs/Image 16UC1 (depth units, see depth_scale below)
  /camera/aligned_depth_to_color/camera_info     sensor_msgs/CameraInfo (= colour intrinsics)

all with sensor-data QoS, stamped with the frame's hardware time on the host clock (hardware/camera/realsense.py).
Depth pixels are in the camera's depth units (1 mm on D400 by default); the node logs the scale at start.

Parameters: serial (empty: first device), width, height, fps, enable_depth, frame_id, and recording (a file
librealsense recorded: play it instead of a device).
"""
from __future__ import annotations

from typing import Any

from hardware.camera.realsense import CameraFrame, CameraSettings, RealSenseCamera
from hardware.messages import CameraInfo, Image, header, image_from_array
from hardware.transport.base import QOS_SENSOR_DATA, Node

COLOR_IMAGE = "/camera/color/image_raw"
COLOR_INFO = "/camera/color/camera_info"
DEPTH_IMAGE = "/camera/aligned_depth_to_color/image_raw"
DEPTH_INFO = "/camera/aligned_depth_to_color/camera_info"
PARAMETERS: dict[str, object] = {
    "serial": "",                                  # empty: the first device found
    "width": 640,
    "height": 480,
    "fps": 30,
    "enable_depth": True,
    "frame_id": "camera_color_optical_frame",
    "recording": "",                               # a librealsense recording (.bag) to play instead of a device
}


class CameraNode:
    def __init__(self, node: Node, camera: RealSenseCamera | None = None):
        """`camera`: an already open driver (tests: a software device); otherwise opened from the parameters."""
        self.node = node
        p = {name: node.declare_parameter(name, default) for name, default in PARAMETERS.items()}
        settings = CameraSettings(serial=p["serial"], width=p["width"], height=p["height"], fps=p["fps"],
                                  enable_depth=p["enable_depth"])
        self.frame_id = p["frame_id"]
        recording = p["recording"]
        if camera is None:
            camera = (RealSenseCamera.from_recording(recording, settings) if recording
                      else RealSenseCamera.open(settings))
        self.camera = camera
        self.published = 0
        self._logged_scale = False
        self.color_pub = node.create_publisher(Image, COLOR_IMAGE, QOS_SENSOR_DATA)
        self.color_info_pub = node.create_publisher(CameraInfo, COLOR_INFO, QOS_SENSOR_DATA)
        self.depth_pub = self.depth_info_pub = None
        if camera.enable_depth:
            self.depth_pub = node.create_publisher(Image, DEPTH_IMAGE, QOS_SENSOR_DATA)
            self.depth_info_pub = node.create_publisher(CameraInfo, DEPTH_INFO, QOS_SENSOR_DATA)
        # Poll at twice the frame rate without blocking the executor; each tick drains what has arrived.
        node.create_timer(0.5 / settings.fps, self.poll)

    def poll(self) -> None:
        while (frame := self.camera.read(timeout_ms=1)) is not None:
            self.publish(frame)

    def publish(self, frame: CameraFrame) -> None:
        stamp, frame_id = frame.stamp_ns, self.frame_id
        info: dict[str, Any] = frame.intrinsics.camera_info_fields()
        self.color_pub.publish(image_from_array(frame.color, "rgb8", stamp, frame_id))
        self.color_info_pub.publish(CameraInfo(header=header(stamp, frame_id), **info))
        if self.depth_pub is not None and frame.depth is not None:
            self.depth_pub.publish(image_from_array(frame.depth, "16UC1", stamp, frame_id))
            self.depth_info_pub.publish(CameraInfo(header=header(stamp, frame_id), **info))
            if not self._logged_scale:
                self.node.logger.info(f"depth scale {frame.depth_scale:.6g} m per unit; stamps from clock domain "
                                      f"{frame.clock_domain}")
                self._logged_scale = True
        self.published += 1

    def close(self) -> None:
        self.camera.close()


def main(argv=None) -> int:
    from hardware.transport import run_node

    return run_node("camera", CameraNode, argv, parameters=PARAMETERS, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
