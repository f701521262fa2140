"""Hand-eye calibration: where a camera sits, from arm poses (forward kinematics of recorded joint states) and
views of a calibration board.

Two set-ups, one model. G_i is the tool frame's pose in the world (FK of sample i), C_i the board's pose in the
camera (PnP of its detection), X the unknown camera pose and Y the unknown board pose:
- eye_in_hand (wrist camera, board fixed in the world):  X = tool-from-camera,  Y = world-from-board,
  C_i = X^-1 G_i^-1 Y
- eye_to_hand (fixed camera, board held by the arm):      X = world-from-camera, Y = tool-from-board,
  C_i = X^-1 G_i Y
Writing M_i = G_i^-1 (eye_in_hand) or G_i (eye_to_hand), any two samples give A X = X B with A = M_j M_i^-1 and
B = C_j C_i^-1. The rotation comes from the rotation vectors (log R_A = R_X log R_B, solved in closed form as an
orthogonal Procrustes problem, Park & Martin 1994), the translation from the stacked linear equations
(R_A - I) t_X = R_X t_B - t_A. X and Y are then refined together by minimising the board corners' reprojection
error over all images (scipy least_squares), which weights each view by what the camera actually measured.

Hand-written because OpenCV 5's Python wheel (the pinned opencv-python-headless) no longer exposes
cv2.calibrateHandEye / cv2.calibrateRobotWorldHandEye; the method is the one those functions implement (PARK)
followed by the usual reprojection refinement.

    robot-rl calibrate hand-eye robot=my_robot.yaml camera=wrist recording=handeye_bag setup=eye_in_hand \
        board.kind=charuco board.cols=7 board.rows=5 board.square_m=0.03 board.marker_m=0.022
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.camera_description import CameraDescription, CameraIntrinsics, load_cameras, write_camera
from calibration.camera_intrinsics import Board, Detection, board_pose, detect_board

SETUPS = ("eye_in_hand", "eye_to_hand")
MIN_POSES = 3                 # two relative motions, about different axes, fix X
MIN_ROTATION_RAD = np.deg2rad(2.0)   # motion pairs rotating less carry no rotation information
MIN_AXIS_SPREAD = 0.05        # 2nd/1st singular value of the stacked rotation axes: below = one axis only
MAX_RMS_PX = 3.0              # final reprojection error above this means inconsistent data


class HandEyeError(ValueError):
    pass


@dataclass
class HandEyeSample:
    name: str                           # where it came from (image index, bag time stamp)
    tool_pose: np.ndarray               # (4, 4) world-from-tool (FK)
    detection: Detection | None         # board corners in the image; None = board not found


@dataclass
class HandEyeResult:
    setup: str
    camera_pose: np.ndarray             # X (4x4): tool-from-camera (eye_in_hand) / world-from-camera (eye_to_hand)
    board_pose: np.ndarray              # Y (4x4): world-from-board (eye_in_hand) / tool-from-board (eye_to_hand)
    initial_camera_pose: np.ndarray     # the closed-form estimate before refinement
    rms_px: float                       # reprojection RMS over all corners after refinement
    per_sample_rms_px: dict[str, float]
    used: list[str]
    missing: list[str]                  # samples without a board detection


# ---------------------------------------------------------------- rigid transforms
def transform(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, trans
    return out


def invert(t: np.ndarray) -> np.ndarray:
    return transform(t[:3, :3].T, -t[:3, :3].T @ t[:3, 3])


def _rotvec(rot: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rot).as_rotvec()


def _from_params(p: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return transform(Rotation.from_rotvec(p[:3]).as_matrix(), p[3:6])


def _to_params(t: np.ndarray) -> np.ndarray:
    return np.concatenate([_rotvec(t[:3, :3]), t[:3, 3]])


def _project_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


# ---------------------------------------------------------------- solver
def _closed_form(motions_m: list[np.ndarray], views: list[np.ndarray]) -> np.ndarray:
    """X from A X = X B over all sample pairs (Park & Martin); raises on degenerate motion."""
    alphas, betas, pairs = [], [], []
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            a = motions_m[j] @ invert(motions_m[i])
            b = views[j] @ invert(views[i])
            alpha, beta = _rotvec(a[:3, :3]), _rotvec(b[:3, :3])
            if np.linalg.norm(alpha) >= MIN_ROTATION_RAD:
                alphas.append(alpha)
                betas.append(beta)
            pairs.append((a, b))
    if len(alphas) < 2:
        raise HandEyeError(f"degenerate motion: fewer than two sample pairs rotate the tool by >= "
                           f"{np.rad2deg(MIN_ROTATION_RAD):.0f} deg; rotate the tool between samples")
    alphas, betas = np.array(alphas), np.array(betas)
    singular = np.linalg.svd(alphas / np.linalg.norm(alphas, axis=1, keepdims=True), compute_uv=False)
    if singular[1] / singular[0] < MIN_AXIS_SPREAD:
        axis = np.linalg.svd(alphas)[2][0]
        raise HandEyeError(f"degenerate motion: all tool rotations are about one axis (~{np.round(axis, 3).tolist()} "
                           "in the world); the camera translation along it is unobservable. Rotate the tool about at "
                           "least two different axes")
    # min sum |alpha - R beta|^2 -> Kabsch on beta -> alpha
    u, _, vt = np.linalg.svd(betas.T @ alphas)
    rot = vt.T @ np.diag([1.0, 1.0, np.linalg.det(vt.T @ u.T)]) @ u.T
    lhs = np.concatenate([a[:3, :3] - np.eye(3) for a, _ in pairs])
    rhs = np.concatenate([rot @ b[:3, 3] - a[:3, 3] for a, b in pairs])
    trans = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return transform(rot, trans)


def solve_hand_eye(samples: Sequence[HandEyeSample], intrinsics: CameraIntrinsics, setup: str = "eye_in_hand",
                   max_rms_px: float = MAX_RMS_PX) -> HandEyeResult:
    import cv2
    from scipy.optimize import least_squares

    if setup not in SETUPS:
        raise HandEyeError(f"setup: expected one of {SETUPS}, got {setup!r}")
    missing = [s.name for s in samples if s.detection is None]
    used = [s for s in samples if s.detection is not None]
    if len(used) < MIN_POSES:
        raise HandEyeError(f"hand-eye needs at least {MIN_POSES} arm poses with the board detected; got "
                           f"{len(used)} of {len(samples)} ({len(missing)} without a detection: {missing[:10]})")
    for s in used:
        if s.tool_pose.shape != (4, 4) or not np.all(np.isfinite(s.tool_pose)):
            raise HandEyeError(f"sample {s.name}: tool_pose must be a finite 4x4 transform")
    views = [board_pose(s.detection, intrinsics)[0] for s in used]
    motions_m = [invert(s.tool_pose) if setup == "eye_in_hand" else s.tool_pose for s in used]
    x0 = _closed_form(motions_m, views)
    y_estimates = [invert(m) @ x0 @ c for m, c in zip(motions_m, views)]
    y0 = transform(_project_rotation(sum(y[:3, :3] for y in y_estimates)), np.mean([y[:3, 3] for y in y_estimates], 0))

    k, d = intrinsics.camera_matrix, intrinsics.dist_coeffs

    def residuals(p: np.ndarray) -> np.ndarray:
        x_inv, y = invert(_from_params(p[:6])), _from_params(p[6:])
        out = []
        for m, s in zip(motions_m, used):
            cam_from_board = x_inv @ m @ y
            projected, _ = cv2.projectPoints(s.detection.object_points, cv2.Rodrigues(cam_from_board[:3, :3])[0],
                                             cam_from_board[:3, 3], k, d)
            out.append((projected.reshape(-1, 2) - s.detection.image_points).ravel())
        return np.concatenate(out)

    fit = least_squares(residuals, np.concatenate([_to_params(x0), _to_params(y0)]), method="lm", x_scale="jac")
    x, y = _from_params(fit.x[:6]), _from_params(fit.x[6:])
    errors = fit.fun.reshape(-1, 2)
    counts = [len(s.detection.object_points) for s in used]
    per_sample = {s.name: float(np.sqrt(np.mean(np.sum(e ** 2, 1))))
                  for s, e in zip(used, np.split(errors, np.cumsum(counts)[:-1]))}
    rms = float(np.sqrt(np.mean(np.sum(errors ** 2, 1))))
    if rms > max_rms_px:
        worst = sorted(per_sample.items(), key=lambda kv: -kv[1])[:5]
        raise HandEyeError(f"hand-eye fit leaves {rms:.2f} px RMS reprojection error (> {max_rms_px} px): the arm "
                           f"poses and board views disagree. Check the FK frame, joint/image time matching, the "
                           f"board size and the intrinsics. Worst samples: {worst}")
    return HandEyeResult(setup=setup, camera_pose=x, board_pose=y, initial_camera_pose=x0, rms_px=rms,
                         per_sample_rms_px=per_sample, used=[s.name for s in used], missing=missing)


def pose_error(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(translation error m, rotation error rad) between two 4x4 transforms."""
    delta = invert(truth) @ estimate
    return float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3])), float(np.linalg.norm(_rotvec(delta[:3, :3])))


def camera_description(result: HandEyeResult, name: str, parent: str, parent_type: str,
                       intrinsics: CameraIntrinsics, source: str = "") -> CameraDescription:
    from hardware.kinematics import matrix_to_quat

    if result.setup == "eye_to_hand" and parent_type != "world":
        raise HandEyeError(f"eye_to_hand gives the camera pose in the world; parent must be 'world', got {parent!r}")
    return CameraDescription(
        name=name, parent=parent, parent_type=parent_type, pos=result.camera_pose[:3, 3],
        quat=matrix_to_quat(result.camera_pose[:3, :3]), intrinsics=intrinsics,
        calibration={"hand_eye": {"method": "park_martin + reprojection refinement", "setup": result.setup,
                                  "samples": len(result.used), "missing_detections": len(result.missing),
                                  "rms_px": round(result.rms_px, 4), "source": source,
                                  "date": datetime.date.today().isoformat()}})


# ---------------------------------------------------------------- samples from a recording
def samples_from_recording(bag: str | Path, board: Board, tool_pose_of, joint_names: Sequence[str],
                           image_topic: str = "/camera/color/image_raw", joint_topic: str = "/joint_states",
                           max_dt_s: float = 0.02, still_rad: float = 1e-3, still_window_s: float = 0.1
                           ) -> list[HandEyeSample]:
    """One sample per image taken while the arm stood still: the joint state nearest in time (within max_dt_s),
    all joints moving less than still_rad over +-still_window_s, FK by `tool_pose_of(q) -> 4x4`."""
    from rosbags.highlevel import AnyReader

    from hardware.messages import IMAGE_ENCODINGS

    path = Path(bag)
    if not path.exists():
        raise HandEyeError(f"{path}: recording not found")
    stamps, positions, images = [], [], []
    with AnyReader([path]) as reader:
        topics = {c.topic for c in reader.connections}
        for topic in (image_topic, joint_topic):
            if topic not in topics:
                raise HandEyeError(f"{path}: topic {topic} not recorded; it has {sorted(topics)}")
        for connection, t, raw in reader.messages([c for c in reader.connections
                                                   if c.topic in (image_topic, joint_topic)]):
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec or t
            if connection.topic == joint_topic:
                index = {n: i for i, n in enumerate(msg.name)}
                if not all(n in index for n in joint_names):
                    raise HandEyeError(f"{path}: {joint_topic} lacks joints {[n for n in joint_names if n not in index]}")
                stamps.append(stamp)
                positions.append([msg.position[index[n]] for n in joint_names])
            else:
                if msg.encoding not in IMAGE_ENCODINGS:
                    raise HandEyeError(f"{path}: {image_topic} encoding {msg.encoding!r} not supported")
                dtype, channels = IMAGE_ENCODINGS[msg.encoding]
                pixels = np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, -1)[:, :msg.width * channels]
                images.append((stamp, pixels.reshape(msg.height, msg.width, channels).squeeze()))
    if not stamps or not images:
        raise HandEyeError(f"{path}: no {'joint states' if not stamps else 'images'} recorded")
    order = np.argsort(stamps)
    stamps, positions = np.asarray(stamps)[order], np.asarray(positions, dtype=float)[order]
    samples = []
    for stamp, image in images:
        i = int(np.argmin(np.abs(stamps - stamp)))
        if abs(stamps[i] - stamp) > max_dt_s * 1e9:
            continue
        window = np.abs(stamps - stamp) <= still_window_s * 1e9
        if np.ptp(positions[window], axis=0).max() > still_rad:
            continue  # the arm moved while the image was taken: FK and image would disagree
        samples.append(HandEyeSample(name=f"t={stamp}", tool_pose=tool_pose_of(positions[i]),
                                     detection=detect_board(image, board)))
    return samples


# ---------------------------------------------------------------- command
@dataclass
class Config:
    robot: str = ""                     # robot config YAML (its MJCF gives FK; the camera is written into it)
    camera: str = "camera"              # camera name; its intrinsics must be in the robot config already
    recording: str = ""                 # rosbag2 with /joint_states and the camera image
    setup: str = "eye_in_hand"          # eye_in_hand | eye_to_hand
    image_topic: str = "/camera/color/image_raw"
    board: Board = field(default_factory=Board)


def run(config: Config) -> int:
    from hardware.kinematics import KinematicChain
    from sim.kinematic_chain import chain_from_mjcf
    from sim.robot import load_robot

    if not config.robot or not config.recording:
        raise HandEyeError("robot= and recording= are required")
    robot = load_robot(config.robot)
    cameras = load_cameras(config.robot)
    if config.camera not in cameras or cameras[config.camera].intrinsics is None:
        raise HandEyeError(f"{config.robot}: camera {config.camera!r} has no intrinsics yet; run "
                           f"`robot-rl calibrate intrinsics camera={config.camera}` first")
    intrinsics = cameras[config.camera].intrinsics
    chain = KinematicChain.from_dict(chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site))

    def tool_pose_of(q):
        pos, rot = chain.forward(np.asarray(q))
        return transform(rot, pos)

    samples = samples_from_recording(config.recording, config.board, tool_pose_of, robot.arm_joints,
                                     image_topic=config.image_topic)
    result = solve_hand_eye(samples, intrinsics, config.setup)
    parent, parent_type = (robot.ee_site, "site") if config.setup == "eye_in_hand" else ("world", "world")
    write_camera(config.robot, camera_description(result, config.camera, parent, parent_type, intrinsics,
                                                  source=str(config.recording)))
    print(f"{config.robot}: camera {config.camera!r} in {parent}: pos {np.round(result.camera_pose[:3, 3], 4)} m, "
          f"RMS reprojection {result.rms_px:.3f} px over {len(result.used)} poses ({len(result.missing)} without "
          f"a board detection)")
    return 0
