"""MJCF -> URDF generator: the URDF PyBullet loads has the MJCF's joints, limits, dynamics, masses, inertias,
shapes and kinematics (a small MJCF exercising the tricky cases, and the shipped Panda)."""
from __future__ import annotations

import os

import mujoco
import numpy as np
import pybullet as pb
import pytest

from sim.robot import load_robot
from sim.urdf_export import (UrdfExportError, cached_urdf, link_frame_offset, mat_to_rpy, mjcf_to_urdf,
                             quat_to_mat, robot_root_body)

# Default classes, a joint anchored away from its body origin, fullinertia with products, fromto capsules, an
# unlimited hinge, a slide joint, a fixed child body, a visual-only and a collision-only geom, a material.
SMALL_MJCF = """
<mujoco model="small_arm">
  <compiler angle="radian" autolimits="true"/>
  <asset><material name="blue" rgba="0 0 1 1"/></asset>
  <default>
    <default class="arm">
      <joint axis="0 1 0" damping="0.7" frictionloss="0.05" armature="0.02"/>
      <geom type="capsule" size="0.03" density="0"/>
    </default>
  </default>
  <worldbody>
    <body name="base" pos="0.1 -0.2 0.05" quat="0.9238795 0 0 0.3826834" childclass="arm">
      <inertial pos="0 0 0.02" mass="2.0" diaginertia="0.01 0.01 0.02"/>
      <geom type="cylinder" size="0.06 0.02" pos="0 0 0.02"/>
      <body name="upper" pos="0 0 0.1" euler="0.3 -0.2 0.5">
        <joint name="shoulder" pos="0.01 0.02 -0.03" range="-1.5 2.0"/>
        <inertial pos="0.02 0.01 0.15" mass="1.3" fullinertia="0.04 0.05 0.03 0.002 -0.003 0.001"/>
        <geom fromto="0 0 0 0.05 0 0.3"/>
        <geom type="sphere" size="0.04" pos="0 0 0.3" contype="0" conaffinity="0" group="1" material="blue"/>
        <geom type="box" size="0.02 0.03 0.04" pos="0 0 0.1" group="3"/>
        <body name="fore" pos="0.05 0 0.3" quat="0.7071068 0.7071068 0 0">
          <joint name="elbow" axis="0.6 0 0.8"/>
          <inertial pos="0 0.05 0.1" quat="0.9 0.1 0.3 0.2" mass="0.8" diaginertia="0.003 0.006 0.008"/>
          <geom fromto="0 0 0 0 0 0.25" size="0.025"/>
          <body name="tool" pos="0 0 0.25" euler="0 0.4 0">
            <inertial pos="0 0 0.01" mass="0.2" diaginertia="1e-4 1e-4 1e-4"/>
            <geom type="box" size="0.03 0.03 0.01"/>
            <site name="tip" pos="0.01 0.02 0.05"/>
            <body name="slider" pos="0 0 0.02">
              <joint name="slide" type="slide" axis="1 0 0" range="-0.02 0.03" damping="3"/>
              <inertial pos="0 0 0.01" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
              <geom type="box" size="0.01 0.01 0.01" friction="1.3 0.01 0.001"/>
            </body>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position joint="shoulder" kp="50" forcerange="-20 20"/>
    <motor joint="elbow" gear="2" forcerange="-3 3"/>
  </actuator>
</mujoco>
"""


@pytest.fixture
def client():
    cid = pb.connect(pb.DIRECT)
    yield cid
    pb.disconnect(cid)


def load(client, model, tmp_path):
    path = cached_urdf(model, directory=tmp_path)
    root = robot_root_body(model)   # URDF has no world pose: place the base link where the MJCF has it
    rid = pb.loadURDF(str(path), basePosition=model.body_pos[root].tolist(),
                      baseOrientation=np.roll(model.body_quat[root], -1).tolist(),
                      useFixedBase=True, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
    joints = {pb.getJointInfo(rid, j, physicsClientId=client)[1].decode(): j
              for j in range(pb.getNumJoints(rid, physicsClientId=client))}
    links = {pb.getJointInfo(rid, j, physicsClientId=client)[12].decode(): j
             for j in range(pb.getNumJoints(rid, physicsClientId=client))}
    return rid, joints, links


def test_rpy_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(100):
        q = rng.normal(size=4)
        rot = quat_to_mat(q)
        roll, pitch, yaw = mat_to_rpy(rot)
        rx = np.array([[1, 0, 0], [0, np.cos(roll), -np.sin(roll)], [0, np.sin(roll), np.cos(roll)]])
        ry = np.array([[np.cos(pitch), 0, np.sin(pitch)], [0, 1, 0], [-np.sin(pitch), 0, np.cos(pitch)]])
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        np.testing.assert_allclose(rz @ ry @ rx, rot, atol=1e-9)


def test_small_mjcf_joints_limits_dynamics(client, tmp_path):
    model = mujoco.MjModel.from_xml_string(SMALL_MJCF)
    rid, joints, _ = load(client, model, tmp_path)
    assert set(joints) == {"shoulder", "elbow", "slide", "fore_to_tool_fixed"}
    info = {name: pb.getJointInfo(rid, j, physicsClientId=client) for name, j in joints.items()}
    assert info["shoulder"][2] == pb.JOINT_REVOLUTE and info["elbow"][2] == pb.JOINT_REVOLUTE
    assert info["slide"][2] == pb.JOINT_PRISMATIC and info["fore_to_tool_fixed"][2] == pb.JOINT_FIXED
    assert info["shoulder"][8:10] == pytest.approx((-1.5, 2.0))
    assert info["elbow"][8] > info["elbow"][9]            # continuous joint: PyBullet reports lower > upper
    assert info["slide"][8:10] == pytest.approx((-0.02, 0.03))
    assert info["shoulder"][6] == pytest.approx(0.7) and info["shoulder"][7] == pytest.approx(0.05)
    assert info["slide"][6] == pytest.approx(3.0)
    assert info["shoulder"][10] == pytest.approx(20.0)    # effort from the actuator's forcerange
    assert info["elbow"][10] == pytest.approx(6.0)        # |gear| * forcerange
    # PyBullet reports the axis in the link's principal inertia frame; in the link frame it is the MJCF's.
    iorn = pb.getDynamicsInfo(rid, joints["elbow"], physicsClientId=client)[4]
    axis = np.array(pb.getMatrixFromQuaternion(iorn)).reshape(3, 3) @ np.array(info["elbow"][13])
    np.testing.assert_allclose(axis, [0.6, 0, 0.8], atol=1e-6)


def test_small_mjcf_masses_and_inertia(client, tmp_path):
    model = mujoco.MjModel.from_xml_string(SMALL_MJCF)
    rid, _, links = load(client, model, tmp_path)
    for name in ("upper", "fore", "tool", "slider"):
        bid = model.body(name).id
        mass, _, principal, ipos, iorn = pb.getDynamicsInfo(rid, links[name], physicsClientId=client)[:5]
        assert mass == pytest.approx(model.body_mass[bid])
        # PyBullet diagonalises the tensor: its principal moments and axes must give back MuJoCo's tensor.
        rot_pb = np.array(pb.getMatrixFromQuaternion(iorn)).reshape(3, 3)
        rot_mj = quat_to_mat(model.body_iquat[bid])
        np.testing.assert_allclose(rot_pb @ np.diag(principal) @ rot_pb.T,
                                   rot_mj @ np.diag(model.body_inertia[bid]) @ rot_mj.T, atol=1e-6)
        np.testing.assert_allclose(ipos, model.body_ipos[bid] - link_frame_offset(model, bid), atol=1e-9)
    assert pb.getDynamicsInfo(rid, links["slider"], physicsClientId=client)[1] == pytest.approx(1.3)


def test_small_mjcf_kinematics_match(client, tmp_path):
    model = mujoco.MjModel.from_xml_string(SMALL_MJCF)
    data = mujoco.MjData(model)
    rid, joints, links = load(client, model, tmp_path)
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = np.array([rng.uniform(-1.5, 2.0), rng.uniform(-3, 3), rng.uniform(-0.02, 0.03)])
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for name, value in zip(("shoulder", "elbow", "slide"), q):
            pb.resetJointState(rid, joints[name], value, physicsClientId=client)
        for body in ("upper", "fore", "tool", "slider"):
            bid = model.body(body).id
            state = pb.getLinkState(rid, links[body], computeForwardKinematics=True, physicsClientId=client)
            rot = np.array(pb.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            np.testing.assert_allclose(np.array(state[4]) - rot @ link_frame_offset(model, bid), data.xpos[bid],
                                       atol=1e-6)
            np.testing.assert_allclose(rot, data.xmat[bid].reshape(3, 3), atol=1e-6)


def test_shapes_visual_and_collision(client, tmp_path):
    model = mujoco.MjModel.from_xml_string(SMALL_MJCF)
    rid, _, links = load(client, model, tmp_path)
    upper = links["upper"]
    visual = [v for v in pb.getVisualShapeData(rid, physicsClientId=client) if v[1] == upper]
    collision = pb.getCollisionShapeData(rid, upper, physicsClientId=client)
    # capsule + sphere are visible (groups 0, 1); the group-3 box collides but is not drawn; the sphere does not collide
    assert sorted(v[2] for v in visual) == sorted([pb.GEOM_CAPSULE, pb.GEOM_SPHERE])
    assert sorted(c[2] for c in collision) == sorted([pb.GEOM_CAPSULE, pb.GEOM_BOX])
    sphere = next(v for v in visual if v[2] == pb.GEOM_SPHERE)
    assert sphere[3][0] == pytest.approx(0.04) and tuple(sphere[7]) == pytest.approx((0, 0, 1, 1))
    capsule = next(c for c in collision if c[2] == pb.GEOM_CAPSULE)
    assert capsule[3][:2] == pytest.approx((np.hypot(0.05, 0.3), 0.03))   # (length, radius)


def test_cache_is_content_addressed_and_atomic(tmp_path):
    model = mujoco.MjModel.from_xml_string(SMALL_MJCF)
    first = cached_urdf(model, directory=tmp_path)
    mtime = first.stat().st_mtime_ns
    assert cached_urdf(model, directory=tmp_path) == first and first.stat().st_mtime_ns == mtime
    model.dof_damping[0] = 5.0
    second = cached_urdf(model, directory=tmp_path)
    assert second != first and 'damping="5"' in second.read_text()
    assert sorted(os.listdir(tmp_path)) == sorted([first.name, second.name])   # no temp files left behind


@pytest.mark.parametrize("snippet, message", [
    ('<body name="b"><joint type="ball"/><geom size="0.1"/></body>', "only hinge and slide"),
    ('<body name="b"><joint/><geom type="ellipsoid" size="0.1 0.2 0.3"/></body>', "ELLIPSOID"),
    ('<body name="b"><joint name="j1"/><joint name="j2" axis="1 0 0"/><geom size="0.1"/></body>', "2 joints"),
    ('<body name="b"><joint type="slide"/><geom size="0.1"/></body>', "needs a range"),
])
def test_unsupported_mjcf_gives_clear_error(snippet, message):
    xml = f'<mujoco model="bad"><worldbody><body name="root"><geom size="0.1"/>{snippet}</body></worldbody></mujoco>'
    with pytest.raises(UrdfExportError, match=message):
        mjcf_to_urdf(mujoco.MjModel.from_xml_string(xml))


def test_two_roots_need_root_body():
    xml = ('<mujoco model="two"><worldbody><body name="a"><geom size="0.1"/></body>'
           '<body name="b"><geom size="0.1"/></body></worldbody></mujoco>')
    model = mujoco.MjModel.from_xml_string(xml)
    with pytest.raises(UrdfExportError, match=r"\['a', 'b'\]"):
        mjcf_to_urdf(model)
    assert '<link name="b">' in mjcf_to_urdf(model, root_body="b")


def test_panda_urdf_round_trip(client, tmp_path):
    robot = load_robot("panda")
    model = mujoco.MjModel.from_xml_path(str(robot.description))
    rid, joints, links = load(client, model, tmp_path)
    for name, (lo, hi) in zip(robot.arm_joints, robot.position_limits):
        info = pb.getJointInfo(rid, joints[name], physicsClientId=client)
        assert info[2] == pb.JOINT_REVOLUTE and info[8:10] == pytest.approx((lo, hi))
        assert info[6] == pytest.approx(model.dof_damping[model.joint(name).dofadr[0]])
        assert info[10] == pytest.approx(87.0 if name[-1] in "1234" else 12.0)
    for name in robot.gripper_joints:
        info = pb.getJointInfo(rid, joints[name], physicsClientId=client)
        assert info[2] == pb.JOINT_PRISMATIC and info[8:10] == pytest.approx((0.0, 0.04))
    # A fixed base reports mass 0 in PyBullet: compare the moving links (every body but world and link0).
    total = sum(pb.getDynamicsInfo(rid, j, physicsClientId=client)[0] for j in range(pb.getNumJoints(rid)))
    assert total == pytest.approx(model.body_mass[2:].sum())
    assert pb.getDynamicsInfo(rid, links["link4"], physicsClientId=client)[0] == pytest.approx(3.587895)
