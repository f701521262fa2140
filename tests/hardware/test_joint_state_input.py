"""Joint states from arms that name joints differently, measure no velocity, or take commands in another order."""
import numpy as np
import pytest

from hardware import messages as m
from hardware.joint_state_input import JointStateInput, check_command_order, hardware_joint_names

BUNDLE = [f"panda_joint{i}" for i in range(1, 4)]
FR3 = [f"fr3_joint{i}" for i in range(1, 4)]
NS = 1_000_000_000


def test_the_robots_names_map_to_the_bundles_joints():
    names = hardware_joint_names(" fr3_joint1, fr3_joint2,fr3_joint3", BUNDLE, "hardware_joint_names")
    assert names == tuple(FR3)
    assert hardware_joint_names("", BUNDLE, "x") == tuple(BUNDLE)
    with pytest.raises(ValueError, match="expected 3 distinct names"):
        hardware_joint_names("fr3_joint1,fr3_joint1,fr3_joint3", BUNDLE, "x")
    reader = JointStateInput(names)
    msg = m.joint_state(["fr3_joint3", "fr3_finger", "fr3_joint1", "fr3_joint2"], [3.0, 9.0, 1.0, 2.0],
                        [0.3, 0.0, 0.1, 0.2], stamp_ns=NS)
    q, dq, stamp = reader.read(msg)
    np.testing.assert_array_equal(q, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(dq, [0.1, 0.2, 0.3])
    assert stamp == NS and reader.estimated == 0
    with pytest.raises(ValueError, match="lacks joints"):
        reader.read(m.joint_state(BUNDLE, [0.0] * 3))


def test_nan_or_missing_velocities_are_estimated_from_positions():
    reader = JointStateInput(BUNDLE)
    nan = [float("nan")] * 3
    _, dq, _ = reader.read(m.joint_state(BUNDLE, [0.0, 1.0, 2.0], nan, stamp_ns=10 * NS))
    np.testing.assert_array_equal(dq, [0.0, 0.0, 0.0])           # nothing to differentiate yet
    _, dq, _ = reader.read(m.joint_state(BUNDLE, [0.01, 1.0, 1.98], [float("nan"), 5.0, float("inf")],
                                         stamp_ns=10 * NS + NS // 100))
    np.testing.assert_allclose(dq, [1.0, 5.0, -2.0])             # measured where finite, estimated elsewhere
    _, dq, _ = reader.read(m.joint_state(BUNDLE, [0.03, 1.0, 1.98], stamp_ns=10 * NS + 2 * NS // 100))
    np.testing.assert_allclose(dq, [2.0, 0.0, 0.0])              # no velocity field at all
    _, dq, _ = reader.read(m.joint_state(BUNDLE, [0.5, 1.0, 1.98], nan, stamp_ns=10 * NS + 2 * NS // 100))
    np.testing.assert_allclose(dq, [2.0, 0.0, 0.0])              # same stamp again: the last estimate stays
    assert reader.estimated == 4


def test_the_command_order_is_checked_against_the_controllers_joints(tmp_path):
    yaml = tmp_path / "controllers.yaml"
    yaml.write_text("forward_position_controller:\n  ros__parameters:\n    joints: [fr3_joint1, fr3_joint2, "
                    "fr3_joint3]\n    interface_name: position\n")
    check_command_order(FR3, str(yaml), "forward_position_controller")
    with pytest.raises(ValueError, match="takes joints .* but the commands go out in the order"):
        check_command_order(list(reversed(FR3)), str(yaml), "forward_position_controller")
    with pytest.raises(ValueError, match="joints: expected a list"):
        check_command_order(FR3, str(yaml), "joint_trajectory_controller")
