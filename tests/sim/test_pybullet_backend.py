"""PyBullet backend: same kinematics as MuJoCo, the same actuator law (tracking agrees with MuJoCo), named
parameters change the dynamics as in MuJoCo, gravity/payload, gripper, grasping, contacts and pixels."""
from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import sim  # noqa: F401  (registers the Gymnasium ids)
from sim.backends.mujoco_backend import MuJoCoBackend
from sim.backends.pybullet_backend import PyBulletBackend
from sim.robot import load_robot

ROBOT = load_robot("panda")
HOME = np.array(ROBOT.home_qpos)
CUBE = np.array([0.5, 0.05, 0.02, 1.0, 0.0, 0.0, 0.0])
STEP = np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.3, 0.5])   # a joint-space step command from home, rad


@pytest.fixture(scope="module")
def shared():
    backend = PyBulletBackend(ROBOT)
    yield backend
    backend.close()


@pytest.fixture
def fresh():
    backends = []

    def make(kind=PyBulletBackend):
        backends.append(kind(ROBOT))
        return backends[-1]
    yield make
    for b in backends:
        b.close()


def rollout(backend, target, steps, width=0.08, start=HOME, obj=CUBE):
    backend.reset(start, 0.08, obj)
    backend.command(target, width)
    out = []
    for _ in range(steps):
        backend.step()
        out.append(backend.arm_qpos())
    return np.array(out)


def rotation_angle(q1: np.ndarray, q2: np.ndarray) -> float:
    return 2 * np.arccos(min(1.0, abs(float(np.dot(q1, q2)))))


def test_forward_kinematics_matches_mujoco_within_1mm(shared):
    model = shared.model
    data = mujoco.MjData(model)
    site = model.site(ROBOT.ee_site).id
    qadr = [model.joint(j).qposadr[0] for j in ROBOT.arm_joints]
    quat = np.zeros(4)
    rng = np.random.default_rng(0)
    pos_err, rot_err = [], []
    for _ in range(300):
        q = rng.uniform(ROBOT.lower, ROBOT.upper)
        data.qpos[qadr] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mju_mat2Quat(quat, data.site_xmat[site])
        pose = shared.forward_kinematics(q)
        pos_err.append(np.linalg.norm(pose[:3] - data.site_xpos[site]))
        rot_err.append(rotation_angle(pose[3:], quat))
    assert max(pos_err) < 1e-3 and max(rot_err) < 1e-3
    assert max(pos_err) < 1e-5   # in fact the same frames up to float rounding


def test_forward_kinematics_has_no_side_effects(fresh):
    a, b = fresh(), fresh()
    for backend in (a, b):
        backend.reset(HOME, 0.08, CUBE)
        backend.command(HOME + STEP, 0.0)
        backend.step()
    before = a.arm_qpos(), a.arm_qvel(), a.ee_pose()
    a.forward_kinematics(HOME + 0.5)
    np.testing.assert_array_equal(a.arm_qpos(), before[0])
    np.testing.assert_array_equal(a.ee_pose(), before[2])
    for backend in (a, b):
        backend.step()
    np.testing.assert_allclose(a.arm_qpos(), b.arm_qpos(), atol=1e-12)
    np.testing.assert_allclose(a.arm_qvel(), b.arm_qvel(), atol=1e-10)


def test_ee_pose_after_reset_is_forward_kinematics(shared):
    shared.reset(HOME, 0.08, CUBE)
    np.testing.assert_allclose(shared.ee_pose(), shared.forward_kinematics(HOME), atol=1e-12)
    assert shared.arm_qpos() == pytest.approx(HOME) and shared.gripper_width() == pytest.approx(0.08)
    np.testing.assert_allclose(shared.object_pose(), CUBE, atol=1e-9)


def test_holds_home_pose_and_cube_rests_on_table(shared):
    trajectory = rollout(shared, HOME, 20)          # 1 s
    assert np.abs(trajectory - HOME).max() < 1e-3
    assert np.abs(shared.arm_qvel()).max() < 1e-3
    pose = shared.object_pose()
    assert pose[2] == pytest.approx(CUBE[2], abs=1e-3) and np.linalg.norm(shared.object_velocity()) < 1e-2


def test_cube_falls_under_gravity(shared):
    shared.reset(HOME, 0.08, np.array([0.6, -0.2, 0.3, 1, 0, 0, 0]))
    shared.step()                                    # 50 ms of free fall: v = g t, still in the air
    assert shared.object_velocity()[2] == pytest.approx(-9.81 * 0.05, rel=0.02)
    for _ in range(20):
        shared.step()
    assert shared.object_pose()[2] == pytest.approx(0.02, abs=2e-3)


def test_step_target_tracked_like_mujoco(fresh):
    pyb, mjc = fresh(), fresh(MuJoCoBackend)
    target = HOME + STEP
    trajectory_pb = rollout(pyb, target, 20)
    trajectory_mj = rollout(mjc, target, 20)
    assert np.abs(trajectory_pb[-1] - target).max() < 2e-3      # it gets there
    assert np.abs(trajectory_pb[0] - HOME).max() > 0.05          # and moves within the first 50 ms
    # Same actuator law, armature and implicit damping: the engines agree to well below a milliradian.
    difference = np.abs(trajectory_pb - trajectory_mj).max()
    assert difference < 3e-3, difference


def test_payload_sags_the_arm_as_in_mujoco(fresh):
    sag = {}
    for kind in (PyBulletBackend, MuJoCoBackend):
        backend = fresh(kind)
        backend.set_parameter("payload_mass", 3.0)
        assert backend.get_parameter("payload_mass") == 3.0
        sag[kind] = rollout(backend, HOME, 20)[-1] - HOME
    assert np.abs(sag[PyBulletBackend]).max() > 1e-3                 # 3 kg at the hand bends the arm
    np.testing.assert_allclose(sag[PyBulletBackend], sag[MuJoCoBackend], atol=2e-4)


@pytest.mark.parametrize("name, value", [
    ("damping/panda_joint4", 60.0), ("armature/panda_joint4", 1.5), ("kp/panda_joint4", 300.0),
    ("kv/panda_joint4", 20.0), ("frictionloss/panda_joint4", 30.0)])
def test_set_parameter_changes_dynamics_like_mujoco(fresh, name, value):
    target = HOME + STEP
    nominal = rollout(fresh(), target, 6)
    changed = {}
    for kind in (PyBulletBackend, MuJoCoBackend):
        backend = fresh(kind)
        backend.set_parameter(name, value)
        assert backend.get_parameter(name) == value
        changed[kind] = rollout(backend, target, 6)
    assert np.abs(changed[PyBulletBackend] - nominal).max() > 5e-3
    if not name.startswith("frictionloss"):   # friction loss is a hard constraint here, soft in MuJoCo
        np.testing.assert_allclose(changed[PyBulletBackend], changed[MuJoCoBackend], atol=5e-3)


def test_parameters_match_mujoco_and_bad_values_fail(shared, fresh):
    mjc = fresh(MuJoCoBackend)
    assert shared.parameter_names() == mjc.parameter_names()
    for name in shared.parameter_names():   # both read the same description
        assert shared.get_parameter(name) == pytest.approx(mjc.get_parameter(name)), name
    with pytest.raises(KeyError, match="damping/nope"):
        shared.set_parameter("damping/nope", 1.0)
    with pytest.raises(KeyError, match="stiffness"):
        shared.get_parameter("stiffness/panda_joint1")
    with pytest.raises(ValueError, match="kp/panda_joint1"):
        shared.set_parameter("kp/panda_joint1", -1.0)
    assert shared.get_parameter("kp/panda_joint1") == mjc.get_parameter("kp/panda_joint1")   # refused, unchanged


def test_gripper_tracks_width_with_coupled_fingers(shared):
    shared.reset(HOME, 0.08, CUBE)
    shared.command(HOME, 0.03)
    for _ in range(10):
        shared.step()
    assert shared.gripper_width() == pytest.approx(0.03, abs=1e-3)
    q = shared._q[shared._grip]
    assert q[0] == pytest.approx(q[1], abs=1e-4)


def grasp_configurations(model, points):
    """Damped least-squares IK (MuJoCo Jacobians) for the TCP at each point with the gripper pointing down."""
    data = mujoco.MjData(model)
    site = model.site(ROBOT.ee_site).id
    qadr = [model.joint(j).qposadr[0] for j in ROBOT.arm_joints]
    dadr = [model.joint(j).dofadr[0] for j in ROBOT.arm_joints]
    down = np.diag([1.0, -1.0, -1.0])
    q, out = HOME.copy(), []
    for point in points:
        for _ in range(100):
            data.qpos[qadr] = q
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            rot = data.site_xmat[site].reshape(3, 3)
            error = np.concatenate([point - data.site_xpos[site], 0.5 * np.cross(rot, down, axis=0).sum(axis=1)])
            jp, jr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
            mujoco.mj_jacSite(model, data, jp, jr, site)
            jac = np.vstack([jp[:, dadr], jr[:, dadr]])
            q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), error), ROBOT.lower, ROBOT.upper)
        out.append(q.copy())
    return out


def test_grasp_and_lift_cube(shared):
    above, grasp, lift = grasp_configurations(shared.model, [CUBE[:3] + [0, 0, 0.15], CUBE[:3], CUBE[:3] + [0, 0, 0.2]])
    shared.reset(above, 0.08, CUBE)
    for s in np.linspace(0.1, 1.0, 10):
        shared.command((1 - s) * above + s * grasp, 0.08)
        shared.step()
    assert not shared.fingers_touch_object()
    shared.command(grasp, 0.0)
    for _ in range(10):
        shared.step()
    assert shared.fingers_touch_object()
    assert shared.gripper_width() == pytest.approx(0.04, abs=3e-3)   # the cube is 4 cm wide
    for s in np.linspace(0.05, 1.0, 20):
        shared.command((1 - s) * grasp + s * lift, 0.0)
        shared.step()
    assert shared.object_pose()[2] > 0.15 and shared.fingers_touch_object()


def test_render_shape_and_content(shared):
    shared.reset(HOME, 0.08, CUBE)
    image = shared.render(64, 48)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert image.reshape(-1, 3).std(axis=0).min() > 10
    shared.set_goal_marker(np.array([0.45, 0.0, 0.3]))
    moved = shared.render(64, 48)
    assert np.abs(moved.astype(int) - image).sum() > 0       # the goal marker is drawn where it is
    with pytest.raises(KeyError, match="top"):
        shared.render(8, 8, camera="top")


def test_render_agrees_with_mujoco_camera(fresh):
    """Same camera pose and fovy: the red cube shows up in the same place in both engines' images."""
    centres = []
    for kind in (PyBulletBackend, MuJoCoBackend):
        backend = fresh(kind)
        backend.reset(HOME, 0.08, np.array([0.6, -0.15, 0.02, 1, 0, 0, 0]))
        image = backend.render(64, 64).astype(int)
        red = (image[:, :, 0] > 150) & (image[:, :, 1] < 80) & (image[:, :, 2] < 80)
        assert red.sum() > 3
        centres.append(np.argwhere(red).mean(axis=0))
    assert np.abs(centres[0] - centres[1]).max() < 2.0   # pixels


def test_gymnasium_env_runs_on_pybullet():
    env = gym.make("robot_rl/panda-reach-v0", backend="pybullet", obs_type="state+pixels")
    try:
        obs, info = env.reset(seed=0)
        assert obs["pixels"].shape == (3, 64, 64) and "success" in info
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_episode_does_not_depend_on_the_one_before(backend):
    """Same seed and actions give the same trajectory whatever ran before (Bullet keeps contact caches)."""
    env = gym.make("robot_rl/panda-push-v0", backend=backend)
    actions = np.random.default_rng(0).uniform(-1, 1, (25, *env.action_space.shape)).astype(np.float32)

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        return np.array([obs] + [env.step(a)[0] for a in actions])

    first = rollout(3)
    rollout(5)
    np.testing.assert_array_equal(rollout(3), first)
    env.close()
