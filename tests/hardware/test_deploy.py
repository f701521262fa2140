"""`robot-rl deploy` as the operator runs it: the command starts sim_robot_node, policy_node and the recorder as
DDS processes, runs for duration_s, stops them in order (exit 0) and leaves a rosbag2 recording of joint states and
commands; bad input is refused in one line naming the key."""
import os
import subprocess
import sys

import pytest
from rosbags.highlevel import AnyReader

from hardware.deploy import Config, DeployError, check, node_commands
from hardware.transport.dds import private_domain_id

from .deploy_helpers import ROOT, train_and_export


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    return train_and_export(tmp_path_factory.getbasetemp(), steps=120, seed_steps=100)


def test_deploy_command_runs_the_stack_and_records(tiny_bundle, tmp_path):
    bag = tmp_path / "bag"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "deploy", f"bundle={tiny_bundle}", "robot=sim",
                           "duration_s=4", "episode_s=1.5", f"record={bag}", f"domain_id={private_domain_id()}",
                           "backend=pybullet"],
                          env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "success rate" in out and "missed deadlines" in out
    assert "torch" not in out
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts.get("/joint_states", 0) > 100 and counts.get("/forward_position_controller/commands", 0) > 20, counts


def test_deploy_never_imports_torch(tiny_bundle):
    code = ("import sys; from hardware.deploy import Config, check, node_commands, config_dir; "
            "import hardware.nodes.policy_node, hardware.policy_runtime; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("field, value, message", [("bundle", "/nonexistent", "bundle="), ("robot", "moon", "robot="),
                                                   ("episode_s", -1.0, "episode_s"),
                                                   ("robot_params", "/nonexistent.yaml", "robot_params")])
def test_bad_config_is_refused(tiny_bundle, field, value, message):
    config = Config(**{"bundle": str(tiny_bundle), field: value})
    with pytest.raises(DeployError, match=message):
        check(config)


def test_node_commands_follow_the_config(tiny_bundle):
    from hardware.deploy import config_dir

    config = Config(bundle=str(tiny_bundle), robot="real", mode="planner", control_rate_hz=50.0, record="/tmp/x")
    names = [name for name, _ in node_commands(config, config_dir(config))]
    assert names == ["recorder", "policy"]   # robot=real: the arm's own ros2_control stack is on the domain
    policy = dict(node_commands(config, config_dir(config)))["policy"]
    assert "mode:=planner" in policy and "control_rate_hz:=50.0" in policy


def test_deploy_discovers_as_ros2_does(tiny_bundle, monkeypatch):
    """By default the nodes get the operator's ROS 2 discovery settings unchanged (a stock ROS 2 graph with the
    same settings sees them); discovery_range= sets the range; local_only=true pins DDS to loopback."""
    from hardware.deploy import node_env
    from hardware.transport.dds import local_only_config

    monkeypatch.setenv("CYCLONEDDS_URI", "file:///etc/robot/cyclone.xml")
    monkeypatch.setenv("ROS_STATIC_PEERS", "192.168.1.20")
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    env = node_env(Config(bundle=str(tiny_bundle)), 7)
    assert (env["ROS_DOMAIN_ID"], env["CYCLONEDDS_URI"], env["ROS_STATIC_PEERS"]) == (
        "7", "file:///etc/robot/cyclone.xml", "192.168.1.20")
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env   # SUBNET, as rcl defaults
    assert node_env(Config(bundle=str(tiny_bundle), discovery_range="LOCALHOST"), 7)[
        "ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert node_env(Config(bundle=str(tiny_bundle), local_only=True), 7)["CYCLONEDDS_URI"] == local_only_config()
    with pytest.raises(DeployError, match="discovery_range='lan': expected one of"):
        check(Config(bundle=str(tiny_bundle), discovery_range="lan"))
