"""The Panda MJCF and the scene: compile, names, published kinematics and masses, servo behaviour."""
import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from sim import scene
from sim.backends.mujoco_backend import MuJoCoBackend
from sim.ik import quat_to_mat
from sim.robot import load_robot

# Franka's modified DH parameters (a_{i-1}, d_i, alpha_{i-1}), flange d = 0.107, hand -45 deg about z, TCP 0.1034.
DH = [(0.0, 0.333, 0.0), (0.0, 0.0, -np.pi / 2), (0.0, 0.316, np.pi / 2), (0.0825, 0.0, np.pi / 2),
      (-0.0825, 0.384, -np.pi / 2), (0.0, 0.0, np.pi / 2), (0.088, 0.0, np.pi / 2)]


def _craig(a, d, alpha, theta):
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array([[ct, -st, 0, a], [st * ca, ct * ca, -sa, -d * sa], [st * sa, ct * sa, ca, d * ca], [0, 0, 0, 1]])


def dh_tcp(q):
    t = np.eye(4)
    for (a, d, alpha), theta in zip(DH, q):
        t = t @ _craig(a, d, alpha, theta)
    t = t @ _craig(0.0, 0.107, 0.0, -np.pi / 4) @ _craig(0.0, 0.1034, 0.0, 0.0)
    return t


@pytest.fixture(scope="module")
def backend():
    b = MuJoCoBackend(load_robot("panda"))
    yield b
    b.close()


def test_robot_config_reads_joint_limits_from_the_mjcf():
    robot = load_robot("panda")
    assert robot.position_limits[1] == (-1.7628, 1.7628)
    assert robot.position_limits[3] == (-3.0718, -0.0698)
    assert robot.position_limits[5] == (-0.0175, 3.7525)


def test_scene_has_the_shared_names(backend):
    m = backend.model
    for kind, name in [(mujoco.mjtObj.mjOBJ_GEOM, scene.TABLE_GEOM), (mujoco.mjtObj.mjOBJ_BODY, scene.OBJECT_BODY),
                       (mujoco.mjtObj.mjOBJ_GEOM, scene.OBJECT_GEOM), (mujoco.mjtObj.mjOBJ_SITE, scene.GOAL_SITE),
                       (mujoco.mjtObj.mjOBJ_CAMERA, scene.CAMERA_NAME), (mujoco.mjtObj.mjOBJ_SITE, "ee_site")]:
        assert mujoco.mj_name2id(m, kind, name) >= 0, name
    goal = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, scene.GOAL_SITE)
    assert m.site_bodyid[goal] > 0 and m.body_mocapid[m.site_bodyid[goal]] >= 0   # sites never collide


def test_forward_kinematics_matches_franka_dh(backend):
    robot = backend.robot
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(robot.lower, robot.upper)
        pose = backend.forward_kinematics(q)
        t = dh_tcp(q)
        np.testing.assert_allclose(pose[:3], t[:3, 3], atol=1e-6)   # quaternions in the MJCF have 7 digits
        np.testing.assert_allclose(quat_to_mat(pose[3:]), t[:3, :3], atol=1e-6)   # quaternions in the MJCF have 7 digits


def test_home_pose_is_the_published_ready_pose(backend):
    pose = backend.forward_kinematics(np.array(backend.robot.home_qpos))
    np.testing.assert_allclose(pose[:3], [0.307, 0.0, 0.487], atol=1e-3)


def test_link_masses_are_gaz_2019(backend):
    m = backend.model
    masses = [m.body_mass[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"link{i}")] for i in range(1, 8)]
    np.testing.assert_allclose(masses, [4.970684, 0.646926, 3.228604, 3.587895, 1.225946, 1.666555, 0.735522])


def test_forward_kinematics_leaves_the_state_alone(backend):
    backend.reset(np.array(backend.robot.home_qpos), 0.08, np.array([0.5, 0, 0.02, 1, 0, 0, 0]))
    before = backend.ee_pose()
    backend.forward_kinematics(np.zeros(7) + 0.3)
    np.testing.assert_array_equal(backend.ee_pose(), before)


def test_servos_hold_and_track_targets(backend):
    home = np.array(backend.robot.home_qpos)
    backend.reset(home, 0.08, np.array([0.5, 0, 0.02, 1, 0, 0, 0]))
    for _ in range(10):
        backend.step()
    np.testing.assert_allclose(backend.arm_qpos(), home, atol=1e-4)   # gravity compensated: no sag
    target = home + 0.2
    backend.command(target, 0.08)
    for _ in range(10):
        backend.step()
    np.testing.assert_allclose(backend.arm_qpos(), target, atol=0.01)


def test_gripper_closes_on_the_cube_and_lifts_it(backend):
    robot = backend.robot
    from sim.ik import solve_ik
    down = quat_to_mat(backend.forward_kinematics(np.array(robot.home_qpos))[3:])
    cube = np.array([0.5, 0.0, scene.OBJECT_HALF_SIZE])
    grasp = solve_ik(backend.forward_kinematics, np.array(robot.home_qpos), cube, down, robot.lower, robot.upper)
    lift = solve_ik(backend.forward_kinematics, grasp, cube + [0, 0, 0.15], down, robot.lower, robot.upper)
    backend.reset(grasp, 0.08, np.array([*cube, 1, 0, 0, 0]))
    backend.step()
    assert not backend.fingers_touch_object()            # open: the cube stands between the fingers
    backend.command(grasp, 0.0)
    for _ in range(10):
        backend.step()
    assert backend.fingers_touch_object()
    assert abs(backend.gripper_width() - 2 * scene.OBJECT_HALF_SIZE) < 0.004
    for alpha in np.linspace(0, 1, 20):
        backend.command((1 - alpha) * grasp + alpha * lift, 0.0)
        backend.step()
    for _ in range(10):
        backend.step()
    assert backend.object_pose()[2] > cube[2] + 0.13


def test_render_front_camera(backend):
    backend.reset(np.array(backend.robot.home_qpos), 0.08, np.array([0.5, 0, 0.02, 1, 0, 0, 0]))
    image = backend.render(40, 30)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert image.std() > 10
