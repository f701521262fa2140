"""Hand-eye calibration end to end on rendered images: the Panda in MuJoCo with a camera on its hand and a
chessboard (black boxes on a white plate) on the table. The arm visits poses; MuJoCo renders the wrist camera;
joint states and images go into a rosbag2 (MCAP) file as the recorder would write them; `robot-rl calibrate
hand-eye`'s run() reads it, detects the board, solves, and writes the camera into the robot config, where it must
match the camera MuJoCo rendered from."""

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
cv2 = pytest.importorskip("cv2")

from calibration.camera_description import CameraIntrinsics, load_cameras  # noqa: E402
from calibration.camera_intrinsics import Board, write_intrinsics  # noqa: E402
from calibration.hand_eye import Config, HandEyeError, invert, pose_error, run, transform  # noqa: E402
from sim.robot import load_robot  # noqa: E402
from tests.calibration.test_camera_description import robot_yaml  # noqa: E402,F401  (fixture)

WIDTH, HEIGHT, FOVY = 320, 240, 60.0
N_POSES = 14
BOARD = Board("chessboard", cols=7, rows=6, square_m=0.03)
OPTICAL = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera frame (looks along -z, y up) -> optical (z forward, y down)


def build_scene(robot):
    spec = mujoco.MjSpec.from_file(str(robot.description))
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.deg2rad([195.0, 5.0, 10.0]), "xyz")
    spec.body("hand").add_camera(name="wrist", pos=[0.01, 0.07, 0.03], quat=quat, fovy=FOVY)
    plate = spec.worldbody.add_body(name="board", pos=[0.33, 0.04, 0.02], quat=[0.9659, 0, 0, 0.2588])
    plate.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[(BOARD.cols + 3) * BOARD.square_m / 2,
                                                       (BOARD.rows + 3) * BOARD.square_m / 2, 0.002],
                   rgba=[1, 1, 1, 1], contype=0, conaffinity=0)
    for i in range(BOARD.rows + 1):
        for j in range(BOARD.cols + 1):
            if (i + j) % 2 == 0:
                plate.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[BOARD.square_m / 2, BOARD.square_m / 2, 5e-4],
                               pos=[(j - BOARD.cols / 2) * BOARD.square_m, (i - BOARD.rows / 2) * BOARD.square_m,
                                    0.0022], rgba=[0, 0, 0, 1], contype=0, conaffinity=0)
    spec.worldbody.add_light(pos=[0.4, 0, 1.5], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8], castshadow=False)
    return spec.compile()


def write_bag(path, robot, stamps_states, states, stamps_images, images):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types

    def header(stamp):
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
            sec=stamp // 10 ** 9, nanosec=stamp % 10 ** 9), frame_id="wrist")

    messages = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        js = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        im = writer.add_connection("/camera/color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        names = list(robot.arm_joints) + list(robot.gripper_joints)
        for stamp, q in zip(stamps_states, states):
            msg = types["sensor_msgs/msg/JointState"](header=header(stamp), name=names,
                                                      position=np.concatenate([q, [0.04, 0.04]]),
                                                      velocity=np.zeros(0), effort=np.zeros(0))
            messages.append((stamp, js, store.serialize_cdr(msg, "sensor_msgs/msg/JointState")))
        for stamp, image in zip(stamps_images, images):
            msg = types["sensor_msgs/msg/Image"](header=header(stamp), height=HEIGHT, width=WIDTH, encoding="rgb8",
                                                 is_bigendian=0, step=WIDTH * 3, data=image.ravel())
            messages.append((stamp, im, store.serialize_cdr(msg, "sensor_msgs/msg/Image")))
        for stamp, conn, data in sorted(messages, key=lambda m: m[0]):
            writer.write(conn, stamp, data)


def test_wrist_camera_from_a_rendered_recording(robot_yaml, tmp_path):  # noqa: F811
    robot = load_robot(robot_yaml)
    model = build_scene(robot)
    data = mujoco.MjData(model)
    qadr = [model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)] for n in robot.arm_joints]
    site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, robot.ee_site)
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "wrist")
    renderer = mujoco.Renderer(model, HEIGHT, WIDTH)
    rng = np.random.default_rng(0)
    stamps_states, states, stamps_images, images, truth = [], [], [], [], []
    t = 1_700_000_000_000_000_000
    for k in range(N_POSES):
        q = np.array(robot.home_qpos) + rng.uniform(-0.25, 0.25, 7)
        data.qpos[qadr] = q
        mujoco.mj_forward(model, data)
        renderer.update_scene(data, camera="wrist")
        images.append(renderer.render().copy())
        stamps_images.append(t + 100_000_000)
        for dt in range(0, 200_000_000, 10_000_000):  # the arm holds still for 200 ms around the shot
            stamps_states.append(t + dt)
            states.append(q)
        tool = transform(data.site_xmat[site].reshape(3, 3), data.site_xpos[site])
        camera = transform(data.cam_xmat[cam].reshape(3, 3) @ OPTICAL, data.cam_xpos[cam])
        truth.append(invert(tool) @ camera)
        if k == 5:  # a shot taken while the arm moves: must be left out
            stamps_images.append(t + 600_000_000)
            images.append(images[-1])
            for dt in range(500_000_000, 700_000_000, 10_000_000):
                stamps_states.append(t + dt)
                states.append(q + (dt - 500_000_000) * 1e-9)
        t += 1_000_000_000
    renderer.close()
    for x in truth[1:]:  # the camera is rigidly mounted: one tool-from-camera transform
        assert pose_error(x, truth[0])[0] < 1e-9
    bag = tmp_path / "handeye"
    write_bag(bag, robot, stamps_states, states, stamps_images, images)

    fy = HEIGHT / 2 / np.tan(np.deg2rad(FOVY) / 2)
    intrinsics = CameraIntrinsics(WIDTH, HEIGHT, fy, fy, (WIDTH - 1) / 2, (HEIGHT - 1) / 2)
    write_intrinsics(robot_yaml, "wrist", intrinsics, {"method": "MuJoCo camera fovy"})
    assert run(Config(robot=str(robot_yaml), camera="wrist", recording=str(bag), board=BOARD)) == 0

    camera = load_cameras(robot_yaml)["wrist"]
    assert (camera.parent, camera.parent_type) == (robot.ee_site, "site")
    estimate = transform(_quat_matrix(camera.quat), camera.pos)
    dt, dr = pose_error(estimate, truth[0])
    report = camera.calibration["hand_eye"]
    print(f"\nrendered wrist camera {WIDTH}x{HEIGHT}: {dt * 1e3:.2f} mm, {np.rad2deg(dr):.3f} deg, "
          f"RMS {report['rms_px']:.3f} px, {report['samples']} poses, {report['missing_detections']} missing")
    assert report["samples"] + report["missing_detections"] == N_POSES  # the moving shot was not used at all
    assert report["samples"] >= 8
    assert dt < 2e-3 and np.rad2deg(dr) < 0.2
    assert camera.intrinsics == intrinsics


def _quat_matrix(quat):
    from hardware.kinematics import quat_to_matrix

    return quat_to_matrix(quat)


def test_recording_errors(robot_yaml, tmp_path):  # noqa: F811
    with pytest.raises(HandEyeError, match="no intrinsics yet"):
        run(Config(robot=str(robot_yaml), camera="wrist", recording=str(tmp_path / "none")))
    write_intrinsics(robot_yaml, "wrist", CameraIntrinsics(WIDTH, HEIGHT, 200, 200, 160, 120), {})
    with pytest.raises(HandEyeError, match="recording not found"):
        run(Config(robot=str(robot_yaml), camera="wrist", recording=str(tmp_path / "none")))
    bag = tmp_path / "states_only"
    robot = load_robot(robot_yaml)
    write_bag(bag, robot, [1, 2], [np.zeros(7)] * 2, [], [])
    with pytest.raises(HandEyeError, match="/camera/color/image_raw not recorded|no images"):
        run(Config(robot=str(robot_yaml), camera="wrist", recording=str(bag)))
