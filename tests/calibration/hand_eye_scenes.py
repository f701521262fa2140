"""Synthetic hand-eye scenes: known camera mount X and board pose Y, arm poses whose camera looks at the board,
board corners projected through a known camera with OpenCV's projectPoints (+ optional pixel noise)."""
import numpy as np
from scipy.spatial.transform import Rotation

from calibration.camera_description import CameraIntrinsics
from calibration.camera_intrinsics import Board, Detection
from calibration.hand_eye import HandEyeSample, invert, transform

INTRINSICS = CameraIntrinsics(640, 480, 600.0, 602.0, 318.5, 241.0, "plumb_bob", [0.05, -0.1, 0.0, 0.0, 0.02])
BOARD = Board("chessboard", cols=9, rows=6, square_m=0.025)
# wrist camera: 6 cm forward, 3 cm to the side, 4 cm up the tool, looking along the tool's z, tilted by 10 deg
X_IN_HAND = transform(Rotation.from_euler("xyz", [10, -5, 90], degrees=True).as_matrix(), [0.06, -0.03, 0.04])
Y_BOARD_WORLD = transform(Rotation.from_euler("z", 20, degrees=True).as_matrix(), [0.55, -0.1, 0.02])
# fixed camera: 1.2 m in front of the robot, looking back at it; board held 5 cm in front of the tool
X_FIXED = transform(Rotation.from_euler("xyz", [-120, 0, 90], degrees=True).as_matrix(), [1.3, 0.05, 0.9])
Y_BOARD_TOOL = transform(Rotation.from_euler("x", 180, degrees=True).as_matrix(), [-0.1, -0.06, 0.05])


def look_at(eye, target, roll_deg=0.0):
    """World-from-camera (optical frame: z forward, y down) at `eye` looking at `target`."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0]) if abs(z[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    x -= (x @ z) * z
    x /= np.linalg.norm(x)
    rot = np.column_stack([x, np.cross(z, x), z]) @ Rotation.from_euler("z", roll_deg, degrees=True).as_matrix()
    return transform(rot, eye)


def project(cam_from_board, intrinsics=INTRINSICS, board=BOARD, noise_px=0.0, rng=None):
    import cv2

    points = board.object_points()
    image, _ = cv2.projectPoints(points, cv2.Rodrigues(cam_from_board[:3, :3])[0], cam_from_board[:3, 3],
                                 intrinsics.camera_matrix, intrinsics.dist_coeffs)
    image = image.reshape(-1, 2)
    in_camera = points @ cam_from_board[:3, :3].T + cam_from_board[:3, 3]
    if np.any(in_camera[:, 2] <= 0.05):
        return None
    # beyond the image corners' radius the distortion polynomial folds back: such points would not be seen
    radius = np.linalg.norm(in_camera[:, :2] / in_camera[:, 2:], axis=1)
    corner = np.hypot(intrinsics.width / intrinsics.camera_matrix[0, 0], intrinsics.height / intrinsics.camera_matrix[1, 1]) / 2
    if np.any(radius > corner) or not np.all((image > 0) & (image < [intrinsics.width, intrinsics.height])):
        return None  # the board left the image
    if noise_px:
        image = image + rng.normal(0.0, noise_px, image.shape)
    return Detection(points, image)


def eye_in_hand_samples(n, noise_px=0.0, seed=0, one_axis=False):
    rng = np.random.default_rng(seed)
    centre = Y_BOARD_WORLD @ np.array([0.1, 0.0625, 0, 1])
    samples = []
    while len(samples) < n:
        i = len(samples)
        if one_axis:  # circle around the vertical through the board centre: every rotation about world z
            angle = 2 * np.pi * i / n
            eye = centre[:3] + [0.25 * np.cos(angle), 0.25 * np.sin(angle), 0.35]
            cam = look_at(eye, centre[:3])
        else:
            eye = centre[:3] + rng.uniform([-0.2, -0.2, 0.3], [0.2, 0.2, 0.45])
            cam = look_at(eye, centre[:3] + rng.uniform(-0.03, 0.03, 3), roll_deg=rng.uniform(-40, 40))
        detection = project(invert(cam) @ Y_BOARD_WORLD, noise_px=noise_px, rng=rng)
        if detection is not None:
            samples.append(HandEyeSample(f"pose{i}", cam @ invert(X_IN_HAND), detection))
    return samples


def eye_to_hand_samples(n, noise_px=0.0, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    while len(samples) < n:
        i = len(samples)
        # board somewhere in front of the camera, facing it, tilted up to ~30 deg
        board_centre = X_FIXED @ np.array([*rng.uniform([-0.1, -0.08, 0.6], [0.1, 0.08, 0.8]), 1.0])
        board = look_at(board_centre[:3], X_FIXED[:3, 3], roll_deg=rng.uniform(-30, 30))
        tilt = Rotation.from_rotvec(rng.uniform(-0.5, 0.5, 3)).as_matrix()
        board = board @ transform(tilt @ Rotation.from_euler("x", 180, degrees=True).as_matrix(), [0, 0, 0])
        board = board @ transform(np.eye(3), [-0.1, -0.0625, 0])  # board origin at its corner, centre on the ray
        detection = project(invert(X_FIXED) @ board, noise_px=noise_px, rng=rng)
        if detection is not None:
            samples.append(HandEyeSample(f"pose{i}", board @ invert(Y_BOARD_TOOL), detection))
    return samples
