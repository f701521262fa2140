"""Safety limits and config (hardware/safety_config.py): built from sim's RobotConfig, round-trip through JSON
as a bundle carries them, and refuse bad input naming the field."""
import json

import numpy as np
import pytest

from hardware.safety_config import (SafetyConfig, SafetyConfigError, SafetyLimits, limits_from_robot)
from sim.kinematic_chain import chain_from_mjcf
from sim.robot import load_robot


@pytest.fixture(scope="module")
def panda():
    robot = load_robot("panda")
    return robot, chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)


def test_limits_from_robot_config(panda):
    robot, chain = panda
    limits = limits_from_robot(robot, [0.1, -0.5, 0.0], [0.8, 0.5, 0.9], chain)
    assert limits.joint_names == robot.arm_joints
    np.testing.assert_array_equal(limits.lower, robot.lower)
    np.testing.assert_array_equal(limits.upper, robot.upper)
    np.testing.assert_array_equal(limits.velocity, robot.velocity_limits)
    np.testing.assert_array_equal(limits.acceleration, robot.acceleration_limits)
    assert limits_from_robot(robot).workspace is None
    with pytest.raises(SafetyConfigError, match="together"):
        limits_from_robot(robot, workspace_lower=[0, 0, 0])


def test_limits_round_trip_through_json(panda):
    robot, chain = panda
    limits = limits_from_robot(robot, [0.1, -0.5, 0.0], [0.8, 0.5, 0.9], chain)
    again = SafetyLimits.from_dict(json.loads(json.dumps(limits.to_dict())), "bundle.json: safety")
    assert again.joint_names == limits.joint_names
    for field in ("lower", "upper", "velocity", "acceleration"):
        np.testing.assert_array_equal(getattr(again, field), getattr(limits, field))
    np.testing.assert_array_equal(again.workspace.lower, [0.1, -0.5, 0.0])
    q = np.array(robot.home_qpos)
    np.testing.assert_allclose(again.workspace.chain.tip_position(q), limits.workspace.chain.tip_position(q),
                               atol=1e-12)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(version=2), "version 1"),
    (lambda d: d.pop("velocity"), r"missing field\(s\) \['velocity'\]"),
    (lambda d: d.update(acceleration=[1.0] * 6), "'acceleration' must have 7 entries"),
    (lambda d: d.update(velocity=[1.0] * 6 + [-1.0]), "'velocity' limits must be > 0"),
    (lambda d: d.update(position_lower=[5.0] * 7), "lower position limit must be below"),
    (lambda d: d.update(position_upper=["a"] * 7), "'position_upper' must be a list of numbers"),
    (lambda d: d.update(joint_names=[]), "'joint_names' must be a non-empty list"),
    (lambda d: d["workspace"].update(lower=[0, 0]), r"workspace.lower: expected 3 finite numbers"),
    (lambda d: d["workspace"].update(upper=[-1, -1, -1]), "must be below upper"),
    (lambda d: d["workspace"]["chain"]["joints"][0].update(type="ball"), r"chain: joints\[0\].type"),
    (lambda d: d.update(joint_names=[f"j{i}" for i in range(7)]), "workspace chain joints"),
])
def test_bad_limits_name_the_source_and_field(panda, mutate, message):
    robot, chain = panda
    data = limits_from_robot(robot, [0.1, -0.5, 0.0], [0.8, 0.5, 0.9], chain).to_dict()
    mutate(data)
    with pytest.raises(SafetyConfigError, match=message) as err:
        SafetyLimits.from_dict(data, "bundles/reach/bundle.json: safety")
    assert "bundles/reach/bundle.json: safety" in str(err.value)


def test_config_round_trip_and_errors():
    config = SafetyConfig(control_period_s=0.01, ramp_time_s=1.0)
    assert SafetyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(SafetyConfigError, match=r"params.yaml: unknown field\(s\) \['timeout'\]"):
        SafetyConfig.from_dict({"control_period_s": 0.02, "timeout": 1}, "params.yaml")
    with pytest.raises(SafetyConfigError, match="missing field 'control_period_s'"):
        SafetyConfig.from_dict({}, "params.yaml")
    for field, value in [("control_period_s", 0.0), ("position_margin", -0.1), ("max_step_from_measured", "x"),
                         ("observation_timeout_s", float("nan")), ("workspace_resolution", 1.0)]:
        with pytest.raises(SafetyConfigError, match=field):
            SafetyConfig(**{"control_period_s": 0.02, field: value})
