"""Intrinsics: from the RealSense driver (librealsense software_device), and OpenCV calibration from board images
rendered for known cameras (planar board warped through K [r1 r2 t]); board detection and PnP; the command."""
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

cv2 = pytest.importorskip("cv2")

from calibration.camera_description import CameraIntrinsics, load_cameras  # noqa: E402
from calibration.camera_intrinsics import (Board, Config, IntrinsicsError, board_pose, calibrate_from_images,  # noqa: E402
                                           detect_board, intrinsics_from_realsense, run, write_intrinsics)
from tests.calibration.test_camera_description import robot_yaml  # noqa: E402,F401  (fixture)

TRUE = CameraIntrinsics(640, 480, 520.0, 515.0, 322.5, 236.0, "plumb_bob", [0.0] * 5)


def board_image(board: Board, px_per_square=40, margin=40):
    """A flat board image and the homography from board metres (z = 0) to its pixels (measured by detection)."""
    if board.kind == "chessboard":
        squares = np.indices((board.rows + 1, board.cols + 1)).sum(0) % 2
        flat = np.kron(squares, np.ones((px_per_square, px_per_square))).astype(np.uint8) * 255
        flat = cv2.copyMakeBorder(255 - flat, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255)
    else:
        cb = board.charuco()
        flat = cb.generateImage(((board.cols) * px_per_square + 2 * margin, board.rows * px_per_square + 2 * margin),
                                marginSize=margin)
    detection = detect_board(flat, board)
    assert detection is not None
    homography, _ = cv2.findHomography(detection.object_points[:, :2], detection.image_points)
    return flat, homography


def view(flat, metres_to_flat, intrinsics, cam_from_board):
    """What a pinhole camera sees of the planar board: image = K [r1 r2 t] * (board metres <- flat pixels)."""
    k = intrinsics.camera_matrix
    h = k @ np.column_stack([cam_from_board[:3, 0], cam_from_board[:3, 1], cam_from_board[:3, 3]])
    image = cv2.warpPerspective(flat, h @ np.linalg.inv(metres_to_flat), (intrinsics.width, intrinsics.height),
                                flags=cv2.INTER_LINEAR, borderValue=128)
    return cv2.GaussianBlur(image, (3, 3), 0.6)


def random_views(board, n, seed=0):
    rng = np.random.default_rng(seed)
    centre = np.append(board.object_points()[:, :2].mean(0), 0.0)
    poses = []
    for _ in range(n):
        rot = Rotation.from_euler("xyz", [rng.uniform(-35, 35), rng.uniform(-35, 35), rng.uniform(-20, 20)],
                                  degrees=True).as_matrix()
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = -rot @ centre + [rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03), rng.uniform(0.45, 0.6)]
        poses.append(pose)
    return poses


@pytest.mark.parametrize("board", [Board("chessboard", 9, 6, 0.03),
                                   Board("charuco", 7, 5, 0.04, 0.03, "DICT_4X4_50")])
def test_calibration_from_rendered_board_images(board):
    flat, metres_to_flat = board_image(board)
    poses = random_views(board, 10)
    images = [view(flat, metres_to_flat, TRUE, pose) for pose in poses]
    images.append(np.full((480, 640), 128, np.uint8))  # a frame without the board
    start = time.perf_counter()
    result = calibrate_from_images(images, board)
    elapsed = time.perf_counter() - start
    got = result.intrinsics
    print(f"\n{board.kind}: fx {got.fx:.2f} fy {got.fy:.2f} cx {got.cx:.2f} cy {got.cy:.2f} "
          f"rms {result.rms_px:.3f} px, {elapsed:.2f} s for {len(images)} images")
    assert result.skipped == ["image 10"] and len(result.used) == 10
    assert abs(got.fx - TRUE.fx) / TRUE.fx < 0.01 and abs(got.fy - TRUE.fy) / TRUE.fy < 0.01
    assert abs(got.cx - TRUE.cx) < 3.0 and abs(got.cy - TRUE.cy) < 3.0
    assert result.rms_px < 0.5
    # PnP with the calibrated camera puts the board where it was
    pose, rms = board_pose(detect_board(images[0], board), got)
    assert np.linalg.norm(pose[:3, 3] - poses[0][:3, 3]) < 0.01 and rms < 0.5


def test_too_few_board_views_names_the_images():
    board = Board("chessboard", 9, 6, 0.03)
    flat, metres_to_flat = board_image(board)
    images = [view(flat, metres_to_flat, TRUE, p) for p in random_views(board, 3)] + [np.zeros((480, 640), np.uint8)]
    with pytest.raises(IntrinsicsError, match=r"found in 3 of 4 images, need at least 5; not found in: \['d.png'\]"):
        calibrate_from_images(images, board, ["a.png", "b.png", "c.png", "d.png"])
    with pytest.raises(IntrinsicsError, match="board.kind"):
        Board("circles")
    with pytest.raises(IntrinsicsError, match="size 320x240 differs"):
        calibrate_from_images([images[0], np.zeros((240, 320), np.uint8)], board)


def test_intrinsics_from_realsense_into_the_robot_config(robot_yaml):  # noqa: F811
    pytest.importorskip("pyrealsense2")
    from hardware.camera.realsense import Intrinsics
    from hardware.camera.software_camera import SoftwareCamera

    factory = Intrinsics(64, 48, 61.5, 61.25, 31.75, 24.5, "inverse_brown_conrady", (0.0,) * 5)
    sw = SoftwareCamera(factory)
    camera = sw.camera()
    for i in range(3):
        sw.push(np.zeros((48, 64, 3), np.uint8), timestamp_ms=1000.0 + 33 * i, frame_number=i)
    intrinsics = intrinsics_from_realsense(camera, timeout_ms=500)
    camera.close()
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (61.5, 61.25, 31.75, 24.5)
    assert intrinsics.distortion_model == "plumb_bob" and intrinsics.d == [0.0] * 5
    write_intrinsics(robot_yaml, "wrist", intrinsics, {"method": "realsense factory calibration"})
    loaded = load_cameras(robot_yaml)["wrist"]
    assert loaded.intrinsics == intrinsics and loaded.parent == "world"


def test_command_from_images(robot_yaml, tmp_path):  # noqa: F811
    board = Board("chessboard", 9, 6, 0.03)
    flat, metres_to_flat = board_image(board)
    for i, pose in enumerate(random_views(board, 6, seed=3)):
        cv2.imwrite(str(tmp_path / f"shot{i}.png"), view(flat, metres_to_flat, TRUE, pose))
    assert run(Config(robot=str(robot_yaml), camera="front", source="images", images=str(tmp_path / "*.png"),
                      board=board)) == 0
    camera = load_cameras(robot_yaml)["front"]
    assert abs(camera.intrinsics.fx - TRUE.fx) / TRUE.fx < 0.02
    assert camera.calibration["intrinsics"]["views"] == 6
    with pytest.raises(IntrinsicsError, match="no files match"):
        run(Config(robot=str(robot_yaml), source="images", images=str(tmp_path / "*.jpg")))
