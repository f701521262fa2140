"""Named physical parameters of the MuJoCo backend: read, written, and they change the dynamics."""
import numpy as np
import pytest

pytest.importorskip("mujoco")

from sim.backends.mujoco_backend import MuJoCoBackend
from sim.robot import load_robot

OBJECT = np.array([0.5, 0.0, 0.02, 1, 0, 0, 0])


def _response(set_to: dict[str, float], joint: int = 3, steps: int = 3) -> np.ndarray:
    """Arm joint angles a few control steps after a 0.3 rad step command on one joint."""
    robot = load_robot("panda")
    b = MuJoCoBackend(robot)
    for name, value in set_to.items():
        b.set_parameter(name, value)
    home = np.array(robot.home_qpos)
    b.reset(home, 0.08, OBJECT)
    target = home.copy()
    target[joint] += 0.3
    b.command(target, 0.08)
    for _ in range(steps):
        b.step()
    return b.arm_qpos()


@pytest.mark.parametrize("name, value", [("damping/panda_joint4", 200.0), ("armature/panda_joint4", 3.0),
                                         ("frictionloss/panda_joint4", 40.0), ("kp/panda_joint4", 300.0),
                                         ("kv/panda_joint4", 2000.0)])
def test_joint_parameter_changes_the_step_response(name, value):
    nominal = _response({}, steps=1)
    changed = _response({name: value}, steps=1)
    assert abs(changed[3] - nominal[3]) > 0.01, (nominal[3], changed[3])


def test_payload_mass_makes_the_arm_sag():
    robot = load_robot("panda")
    b = MuJoCoBackend(robot)
    home = np.array(robot.home_qpos)
    z = []
    for mass in (0.0, 3.0):
        b.set_parameter("payload_mass", mass)
        b.reset(home, 0.08, OBJECT)
        for _ in range(10):
            b.step()
        z.append(b.ee_pose()[2])
    assert z[0] - z[1] > 1e-3


def test_get_returns_what_set_wrote_and_names_are_checked():
    b = MuJoCoBackend(load_robot("panda"))
    names = b.parameter_names()
    assert "kp/panda_joint1" in names and "payload_mass" in names and len(names) == 5 * 7 + 1
    assert b.get_parameter("kp/panda_joint1") == 4500.0
    for name in names:
        b.set_parameter(name, 1.25)
        assert b.get_parameter(name) == 1.25
    with pytest.raises(KeyError, match="unknown physical parameter 'damping/elbow'"):
        b.set_parameter("damping/elbow", 1.0)
    with pytest.raises(ValueError, match="kp/panda_joint1"):
        b.set_parameter("kp/panda_joint1", -1.0)
