"""Extraction of the joint chain from an MJCF (sim/kinematic_chain.py): refuses what numpy FK cannot represent."""
import pytest

from sim.kinematic_chain import KinematicChainError, chain_from_mjcf
from sim.robot import load_robot

BALL = """<mujoco><worldbody><body name="a"><joint name="b" type="ball"/><geom size="0.1"/>
<site name="s" pos="0 0 0.2"/></body></worldbody></mujoco>"""


def test_panda_chain_lists_the_seven_arm_joints_in_order():
    robot = load_robot("panda")
    chain = chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)
    assert [j["name"] for j in chain["joints"]] == list(robot.arm_joints)
    assert all(j["type"] == "hinge" for j in chain["joints"])
    assert chain["tip"]["name"] == "ee_site"


def test_wrong_joint_list_or_order_is_refused():
    robot = load_robot("panda")
    with pytest.raises(KinematicChainError, match="expected exactly"):
        chain_from_mjcf(robot.description, robot.arm_joints[::-1], robot.ee_site)
    with pytest.raises(KinematicChainError, match="expected exactly"):
        chain_from_mjcf(robot.description, robot.arm_joints[:6], robot.ee_site)


def test_missing_site_and_ball_joint_are_refused(tmp_path):
    robot = load_robot("panda")
    with pytest.raises(KinematicChainError, match="site 'nope' not found"):
        chain_from_mjcf(robot.description, robot.arm_joints, "nope")
    path = tmp_path / "ball.xml"
    path.write_text(BALL)
    with pytest.raises(KinematicChainError, match="only hinge and slide"):
        chain_from_mjcf(path, ["b"], "s")
