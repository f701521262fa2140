"""numpy forward kinematics (hardware/kinematics.py) against MuJoCo's own site poses, on the Panda and on a small
arm that uses every frame feature the extraction handles (joint anchors, slide joints, ref, euler/axisangle)."""
import json

import mujoco
import numpy as np
import pytest

from hardware.kinematics import ChainError, KinematicChain, matrix_to_quat, quat_to_matrix
from sim.kinematic_chain import chain_from_mjcf
from sim.robot import load_robot

TOY_ARM = """
<mujoco>
  <compiler angle="radian"/>
  <worldbody>
    <body name="base" pos="0.1 -0.2 0.3" euler="0.3 -0.2 0.5">
      <body name="l1" pos="0 0 0.2" axisangle="1 1 0 0.4">
        <joint name="j1" type="hinge" axis="0 0 1" pos="0.05 0.02 0" ref="0.3" range="-3 3"/>
        <geom size="0.02"/>
        <body name="l2" pos="0.3 0 0" xyaxes="0 1 0 -1 0 0">
          <joint name="j2" type="slide" axis="1 1 0" ref="0.1" range="-0.2 0.2"/>
          <joint name="j3" type="hinge" axis="0 1 0.5" pos="0 0.1 0" range="-2 2"/>
          <geom size="0.02"/>
          <body name="l3" pos="0.2 0.05 0" quat="0.9 0.1 0.3 0.2">
            <geom size="0.02"/>
            <site name="tool" pos="0.05 0.01 0.12" euler="0.1 0.2 0.3"/>
            <body name="finger"><joint name="f" type="slide" axis="1 0 0"/><geom size="0.01"/></body>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


@pytest.fixture(scope="module")
def toy_xml(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.xml"
    path.write_text(TOY_ARM)
    return path


def _mujoco_site(path, joints, site, qs):
    model = mujoco.MjModel.from_xml_path(str(path))
    data = mujoco.MjData(model)
    adr = [model.jnt_qposadr[model.joint(j).id] for j in joints]
    out_p, out_r = [], []
    for q in qs:
        data.qpos[:] = model.qpos0
        data.qpos[adr] = q
        mujoco.mj_kinematics(model, data)
        out_p.append(data.site(site).xpos.copy())
        out_r.append(data.site(site).xmat.reshape(3, 3).copy())
    return np.array(out_p), np.array(out_r)


def test_panda_fk_matches_mujoco_site_within_1e6_m():
    robot = load_robot("panda")
    chain = KinematicChain.from_dict(chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site))
    qs = np.random.default_rng(0).uniform(robot.lower, robot.upper, size=(300, robot.n_arm))
    want_p, want_r = _mujoco_site(robot.description, robot.arm_joints, robot.ee_site, qs)
    got_p, got_r = chain.forward(qs)                      # batched
    assert np.abs(got_p - want_p).max() < 1e-6
    assert np.abs(got_r - want_r).max() < 1e-6
    single_p, _ = chain.forward(qs[7])                    # unbatched gives the same
    np.testing.assert_allclose(single_p, want_p[7], atol=1e-9)
    # The reach is a real quantity (not a constant): home pose tool point is ~0.3 m ahead, ~0.5 m up.
    home = chain.tip_position(np.array(robot.home_qpos))
    assert 0.2 < home[0] < 0.45 and abs(home[1]) < 1e-3 and 0.3 < home[2] < 0.7


def test_toy_arm_with_anchors_slides_refs_and_euler_frames(toy_xml):
    joints = ("j1", "j2", "j3")
    chain = KinematicChain.from_dict(json.loads(json.dumps(chain_from_mjcf(toy_xml, joints, "tool"))))
    qs = np.random.default_rng(1).uniform([-3, -0.2, -2], [3, 0.2, 2], size=(100, 3))
    want_p, want_r = _mujoco_site(toy_xml, joints, "tool", qs)
    got_p, got_r = chain.forward(qs)
    assert np.abs(got_p - want_p).max() < 1e-9
    assert np.abs(got_r - want_r).max() < 1e-9
    assert chain.joint_names == joints and chain.tip_name == "tool"


def test_chain_round_trips_through_json(toy_xml):
    chain = KinematicChain.from_dict(chain_from_mjcf(toy_xml, ("j1", "j2", "j3"), "tool"))
    again = KinematicChain.from_dict(json.loads(json.dumps(chain.to_dict())))
    q = np.array([0.4, 0.05, -1.0])
    np.testing.assert_allclose(again.forward(q)[0], chain.forward(q)[0], atol=1e-12)
    np.testing.assert_allclose(again.forward(q)[1], chain.forward(q)[1], atol=1e-12)


def test_quaternion_conversions_invert_each_other():
    rng = np.random.default_rng(2)
    for quat in rng.normal(size=(200, 4)):
        quat = quat / np.linalg.norm(quat) * np.sign(quat[0])
        np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(quat)), quat, atol=1e-12)
    # rotations by pi (w = 0) take the non-trace branch
    np.testing.assert_allclose(matrix_to_quat(np.diag([1.0, -1.0, -1.0])), [0, 1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(joints=[]), "'joints'"),
    (lambda d: d["joints"][1].update(type="ball"), "joints[1].type"),
    (lambda d: d["joints"][0].update(axis=[0, 0, 0]), "joints[0].axis"),
    (lambda d: d["joints"][2].update(pos=[0, float("nan"), 0]), "joints[2].pos"),
    (lambda d: d["joints"][0].update(quat=[1, 0]), "joints[0].quat"),
    (lambda d: d.pop("tip"), "'tip'"),
])
def test_bad_chain_dict_names_the_field(toy_xml, mutate, message):
    data = chain_from_mjcf(toy_xml, ("j1", "j2", "j3"), "tool")
    mutate(data)
    with pytest.raises(ChainError, match=message.replace("[", r"\[").replace("]", r"\]")):
        KinematicChain.from_dict(data, "bundle.json:safety.workspace.chain")


def test_forward_refuses_wrong_number_of_joint_values(toy_xml):
    chain = KinematicChain.from_dict(chain_from_mjcf(toy_xml, ("j1", "j2", "j3"), "tool"))
    with pytest.raises(ChainError, match="expected 3 joint values"):
        chain.forward(np.zeros(4))
