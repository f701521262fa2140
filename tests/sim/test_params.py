"""The robot parameters file: round trip, atomic write, clear errors, applying, randomisation."""
import gymnasium as gym
import numpy as np
import pytest
import yaml

import sim  # noqa: F401  (registers the ids)
from sim.params import (ParamsError, Parameter, RobotParams, apply_parameters, current_parameters, load_params,
                        randomization_ranges, save_params)


def _write(tmp_path, doc, name="robot_params.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def _doc(**parameters):
    return {"format": "robot_rl.robot_params", "version": 1, "robot": "panda", "parameters": parameters}


def test_round_trip_and_atomic_save(tmp_path):
    params = RobotParams("panda", {"damping/panda_joint1": Parameter(1.5, (1.0, 2.0)),
                                   "action_latency": Parameter(1.0)})
    path = tmp_path / "sub" / "p.yaml"
    save_params(params, path)
    loaded = load_params(path)
    assert loaded.parameters == params.parameters and loaded.robot == "panda"
    assert [p.name for p in path.parent.iterdir()] == ["p.yaml"]   # no temp file left behind


@pytest.mark.parametrize("doc, match", [
    (_doc(**{"damping/panda_joint1": {"value": "high"}}), r"parameters\.damping/panda_joint1\.value: expected a finite"),
    (_doc(**{"damping/panda_joint1": {"value": 1.0, "ci": [1.2, 2.0]}}), r"low <= value <= high"),
    (_doc(**{"damping/panda_joint1": {"value": 1.0, "ci": [0.5]}}), r"ci: expected \[low, high\]"),
    (_doc(**{"damping/panda_joint1": 1.0}), r"expected a mapping with a 'value'"),
    (_doc(**{"damping/panda_joint1": {"value": 1.0, "sigma": 0.1}}), r"unknown field"),
    (_doc(action_latency={"value": 0.5}), r"whole number"),
    (_doc(payload_mass={"value": -1.0}), r">= 0"),
    ({**_doc(), "format": "urdf"}, r"field 'format'"),
    ({**_doc(), "version": 9}, r"field 'version'"),
    ({"format": "robot_rl.robot_params", "version": 1, "robot": "panda"}, r"field 'parameters'"),
])
def test_bad_files_name_file_and_field(tmp_path, doc, match):
    path = _write(tmp_path, doc)
    with pytest.raises(ParamsError, match=match) as err:
        load_params(path)
    assert str(path) in str(err.value)


def test_unknown_names_and_wrong_robot_are_refused(tmp_path):
    env = gym.make("robot_rl/panda-reach-v0")
    path = _write(tmp_path, _doc(**{"damping/panda_joint9": {"value": 1.0}}))
    with pytest.raises(ParamsError, match=r"unknown parameter name\(s\) \['damping/panda_joint9'\]") as err:
        apply_parameters(env.unwrapped, path)
    assert str(path) in str(err.value)
    path = _write(tmp_path, {**_doc(), "robot": "ur5e"}, "other.yaml")
    with pytest.raises(ParamsError, match="'ur5e' but the simulated robot is 'panda'"):
        gym.make("robot_rl/panda-reach-v0", params=path)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_env_applies_the_file(tmp_path):
    path = _write(tmp_path, _doc(**{"kp/panda_joint2": {"value": 3000.0}, "action_latency": {"value": 2},
                                   "payload_mass": {"value": 0.5}}))
    u = gym.make("robot_rl/panda-reach-v0", params=str(path)).unwrapped
    assert u.get_parameter("kp/panda_joint2") == 3000.0
    assert u.action_latency == 2 and u.get_parameter("payload_mass") == 0.5


def test_randomisation_draws_within_ci_every_reset(tmp_path):
    path = _write(tmp_path, _doc(**{"damping/panda_joint1": {"value": 1.0, "ci": [0.5, 4.0]},
                                   "action_latency": {"value": 1, "ci": [0, 2]},
                                   "kp/panda_joint1": {"value": 4000.0}}))
    assert randomization_ranges(load_params(path)) == {"damping/panda_joint1": (0.5, 4.0), "action_latency": (0, 2)}
    env = gym.make("robot_rl/panda-reach-v0", params=path, randomize=True)
    u = env.unwrapped
    damping, latency = [], []
    for seed in range(8):
        env.reset(seed=seed)
        damping.append(u.get_parameter("damping/panda_joint1"))
        latency.append(u.action_latency)
        assert u.get_parameter("kp/panda_joint1") == 4000.0
    assert all(0.5 <= d <= 4.0 for d in damping) and len(set(damping)) == 8
    assert set(latency) <= {0, 1, 2} and len(set(latency)) > 1


def test_randomisation_without_ci_uses_default_ranges():
    env = gym.make("robot_rl/panda-reach-v0", randomize=True)
    u = env.unwrapped
    values = set()
    for seed in range(3):
        env.reset(seed=seed)
        values.add(u.get_parameter("kp/panda_joint1"))
        assert 0.8 * 4500 <= u.get_parameter("kp/panda_joint1") <= 1.2 * 4500
    assert len(values) == 3
    env.reset(seed=0)
    first = u.get_parameter("armature/panda_joint3")
    env.reset(seed=0)
    assert u.get_parameter("armature/panda_joint3") == first and np.isfinite(first)


def test_current_parameters_written_and_applied_elsewhere_reproduce_the_values(tmp_path):
    source = gym.make("robot_rl/panda-reach-v0").unwrapped
    source.set_parameter("armature/panda_joint5", 0.33)
    source.set_parameter("action_latency", 1)
    save_params(current_parameters(source, "panda"), tmp_path / "p.yaml")
    target = gym.make("robot_rl/panda-reach-v0", params=tmp_path / "p.yaml").unwrapped
    assert {n: target.get_parameter(n) for n in target.parameter_names()} == \
        {n: source.get_parameter(n) for n in source.parameter_names()}
