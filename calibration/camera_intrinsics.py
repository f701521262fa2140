"""Camera intrinsics for the robot description: read from the RealSense (its factory calibration, through the
driver), or calibrated with OpenCV from images of a chessboard or ChArUco board (the fallback for other cameras
or a RealSense whose calibration is doubted). Also the board detection that hand-eye calibration uses.

    robot-rl calibrate intrinsics robot=my_robot.yaml camera=wrist source=realsense serial=123456789
    robot-rl calibrate intrinsics robot=my_robot.yaml camera=wrist source=images images='shots/*.png' \
        board.kind=chessboard board.cols=9 board.rows=6 board.square_m=0.025
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calibration.camera_description import CameraDescription, CameraIntrinsics, load_cameras, write_camera

MIN_VIEWS = 5          # OpenCV's calibration is poorly conditioned with fewer board views
MIN_CHARUCO_CORNERS = 6


class IntrinsicsError(ValueError):
    pass


# ---------------------------------------------------------------- boards
@dataclass(frozen=True)
class Board:
    """A planar calibration target. chessboard: cols x rows *inner* corners (use odd x even so that its
    orientation is unambiguous); charuco: cols x rows *squares*, markers from `dictionary`."""
    kind: str = "chessboard"            # chessboard | charuco
    cols: int = 9
    rows: int = 6
    square_m: float = 0.025
    marker_m: float = 0.018             # charuco only
    dictionary: str = "DICT_4X4_50"     # charuco only (cv2.aruco predefined dictionary name)

    def __post_init__(self) -> None:
        if self.kind not in ("chessboard", "charuco"):
            raise IntrinsicsError(f"board.kind: expected 'chessboard' or 'charuco', got {self.kind!r}")
        if self.cols < 2 or self.rows < 2 or self.square_m <= 0:
            raise IntrinsicsError(f"board: expected cols, rows >= 2 and square_m > 0, got {self.cols}x{self.rows} "
                                  f"square {self.square_m}")
        if self.kind == "charuco" and not 0 < self.marker_m < self.square_m:
            raise IntrinsicsError(f"board.marker_m: expected 0 < marker_m < square_m, got {self.marker_m}")

    def charuco(self):
        import cv2

        name = self.dictionary
        if not hasattr(cv2.aruco, name):
            raise IntrinsicsError(f"board.dictionary: {name!r} is not a cv2.aruco predefined dictionary")
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
        return cv2.aruco.CharucoBoard((self.cols, self.rows), self.square_m, self.marker_m, dictionary)

    def object_points(self) -> np.ndarray:
        """All corner positions (N, 3) in the board frame (z = 0 on the board), in detection order."""
        if self.kind == "charuco":
            return np.asarray(self.charuco().getChessboardCorners(), dtype=np.float64)
        grid = np.stack(np.meshgrid(np.arange(self.cols), np.arange(self.rows)), -1).reshape(-1, 2)
        return np.hstack([grid * self.square_m, np.zeros((len(grid), 1))])


@dataclass
class Detection:
    object_points: np.ndarray           # (N, 3) board frame, m
    image_points: np.ndarray            # (N, 2) pixels


def detect_board(image: np.ndarray, board: Board) -> Detection | None:
    """The board's corners in an image (RGB, BGR or grey), sub-pixel refined; None when it is not (fully) seen."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if board.kind == "chessboard":
        found, corners = cv2.findChessboardCornersSB(gray, (board.cols, board.rows),
                                                     cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE)
        if not found:
            return None
        return Detection(board.object_points(), corners.reshape(-1, 2).astype(np.float64))
    charuco = board.charuco()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(charuco).detectBoard(gray)
    if ids is None or len(ids) < MIN_CHARUCO_CORNERS:
        return None
    return Detection(board.object_points()[ids.ravel()], corners.reshape(-1, 2).astype(np.float64))


def board_pose(detection: Detection, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, float]:
    """Camera-from-board transform (4x4) by PnP, and its RMS reprojection error in pixels."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(detection.object_points, detection.image_points, intrinsics.camera_matrix,
                                  intrinsics.dist_coeffs, flags=cv2.SOLVEPNP_IPPE if len(detection.object_points) >= 4
                                  else cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise IntrinsicsError("solvePnP failed on a board detection")
    rvec, tvec = cv2.solvePnPRefineLM(detection.object_points, detection.image_points, intrinsics.camera_matrix,
                                      intrinsics.dist_coeffs, rvec, tvec)
    projected, _ = cv2.projectPoints(detection.object_points, rvec, tvec, intrinsics.camera_matrix,
                                     intrinsics.dist_coeffs)
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - detection.image_points) ** 2, axis=1))))
    transform = np.eye(4)
    transform[:3, :3] = cv2.Rodrigues(rvec)[0]
    transform[:3, 3] = tvec.ravel()
    return transform, rms


# ---------------------------------------------------------------- intrinsics
@dataclass
class IntrinsicsResult:
    intrinsics: CameraIntrinsics
    rms_px: float                       # RMS reprojection error over all used corners
    used: list[str]                     # images the board was found in
    skipped: list[str]                  # images without a (full) board


def calibrate_from_images(images: Sequence[np.ndarray], board: Board, names: Sequence[str] | None = None
                          ) -> IntrinsicsResult:
    """K and plumb_bob distortion (k1, k2, p1, p2, k3) from board images with cv2.calibrateCamera."""
    import cv2

    names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
    if not images:
        raise IntrinsicsError("no images given")
    size = images[0].shape[:2]
    objects, points, used, skipped = [], [], [], []
    for name, image in zip(names, images):
        if image.shape[:2] != size:
            raise IntrinsicsError(f"{name}: size {image.shape[1]}x{image.shape[0]} differs from the first image's "
                                  f"{size[1]}x{size[0]}")
        detection = detect_board(image, board)
        if detection is None:
            skipped.append(name)
            continue
        objects.append(detection.object_points.astype(np.float32))
        points.append(detection.image_points.astype(np.float32))
        used.append(name)
    if len(used) < MIN_VIEWS:
        raise IntrinsicsError(f"board ({board.kind} {board.cols}x{board.rows}) found in {len(used)} of {len(names)} "
                              f"images, need at least {MIN_VIEWS}; not found in: {skipped}")
    height, width = size
    rms, k, d, _, _ = cv2.calibrateCamera(objects, points, (width, height), None, None)
    intrinsics = CameraIntrinsics(width=width, height=height, fx=float(k[0, 0]), fy=float(k[1, 1]),
                                  cx=float(k[0, 2]), cy=float(k[1, 2]), distortion_model="plumb_bob",
                                  d=[float(v) for v in d.ravel()[:5]])
    return IntrinsicsResult(intrinsics, float(rms), used, skipped)


def intrinsics_from_realsense(camera, timeout_ms: int = 5000) -> CameraIntrinsics:
    """The colour stream's factory intrinsics (= those of the aligned depth) from a running RealSense driver."""
    frame = camera.read(timeout_ms=timeout_ms)
    if frame is None:
        raise IntrinsicsError(f"no frame from the RealSense within {timeout_ms} ms")
    fields = frame.intrinsics.camera_info_fields()
    return CameraIntrinsics(width=fields["width"], height=fields["height"], fx=fields["k"][0], fy=fields["k"][4],
                            cx=fields["k"][2], cy=fields["k"][5], distortion_model=fields["distortion_model"],
                            d=fields["d"])


def write_intrinsics(robot_yaml: str | Path, camera_name: str, intrinsics: CameraIntrinsics,
                     provenance: dict[str, Any]) -> CameraDescription:
    """Set a camera's intrinsics in the robot config, keeping its pose (a new camera starts at the world origin
    until hand-eye calibration places it)."""
    cameras = load_cameras(robot_yaml)
    camera = cameras.get(camera_name) or CameraDescription(name=camera_name, parent="world", parent_type="world",
                                                            pos=np.zeros(3), quat=np.array([1.0, 0, 0, 0]))
    camera.intrinsics = intrinsics
    camera.calibration = {**(camera.calibration or {}), "intrinsics": provenance}
    write_camera(robot_yaml, camera)
    return camera


# ---------------------------------------------------------------- command
@dataclass
class Config:
    robot: str = ""                     # robot config YAML to write the camera into
    camera: str = "camera"              # camera name in its cameras: section
    source: str = "realsense"           # realsense | images
    serial: str = ""                    # realsense: device serial (empty: first found)
    recording: str = ""                 # realsense: read from a librealsense recording instead of a device
    width: int = 640
    height: int = 480
    fps: int = 30
    images: str = ""                    # images: glob of board images
    board: Board = field(default_factory=Board)


def run(config: Config) -> int:
    if not config.robot:
        raise IntrinsicsError("robot=: the robot config YAML to write the camera into is required")
    if config.source == "realsense":
        from hardware.camera.realsense import CameraSettings, RealSenseCamera

        settings = CameraSettings(serial=config.serial, width=config.width, height=config.height, fps=config.fps,
                                  enable_depth=False)
        camera = (RealSenseCamera.from_recording(config.recording, settings) if config.recording
                  else RealSenseCamera.open(settings))
        with camera:
            intrinsics = intrinsics_from_realsense(camera)
        provenance = {"method": "realsense factory calibration", "serial": config.serial,
                      "recording": config.recording}
    elif config.source == "images":
        import cv2

        paths = sorted(glob.glob(config.images))
        if not paths:
            raise IntrinsicsError(f"images={config.images!r}: no files match")
        images = []
        for p in paths:
            image = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise IntrinsicsError(f"{p}: not an image OpenCV can read")
            images.append(image)
        result = calibrate_from_images(images, config.board, paths)
        intrinsics = result.intrinsics
        provenance = {"method": f"opencv calibrateCamera ({config.board.kind})", "views": len(result.used),
                      "rms_px": round(result.rms_px, 4)}
        print(f"board found in {len(result.used)}/{len(paths)} images, RMS reprojection {result.rms_px:.3f} px")
    else:
        raise IntrinsicsError(f"source={config.source!r}: expected 'realsense' or 'images'")
    write_intrinsics(config.robot, config.camera, intrinsics, provenance)
    print(f"{config.robot}: camera {config.camera!r} intrinsics fx={intrinsics.fx:.2f} fy={intrinsics.fy:.2f} "
          f"cx={intrinsics.cx:.2f} cy={intrinsics.cy:.2f} {intrinsics.distortion_model} d={intrinsics.d}")
    return 0
