"""`<node> --help` prints the node's parameters with their ROS 2 types and defaults and exits 0; a bad command
line ends with a one-line error, not a traceback."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hardware.transport.node_args import ros_parameter_type

ROOT = Path(__file__).resolve().parents[2]
NODES = {"policy_node": "hardware.nodes.policy_node", "sim_robot_node": "hardware.nodes.sim_robot_node",
         "camera_node": "hardware.nodes.camera_node", "recorder": "hardware.nodes.recorder_node"}


@pytest.mark.parametrize("executable", NODES)
def test_help_lists_every_parameter_with_its_default(executable, capsys):
    module = importlib.import_module(NODES[executable])
    assert module.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--ros-args" in out
    for name, default in module.PARAMETERS.items():
        line = next((l for l in out.splitlines() if l.split()[:1] == [name]), None)
        assert line is not None, f"{name} missing from {executable} --help"
        assert line.split(None, 2)[1:] == [ros_parameter_type(default), repr(default)], line


@pytest.mark.parametrize("argv, status, message", [
    (["--bogus"], 2, "error: unexpected argument '--bogus'"),
    (["--ros-args", "-p", "nope:=1"], 1, "error: node recorder: unknown parameters ['nope']"),
    (["--ros-args", "-p", "max_duration_s:=3"], 1, "expected DOUBLE like its default 0.0, got INTEGER 3"),
])
def test_bad_command_lines_end_with_one_error_line(argv, status, message, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROBOT_RL_TRANSPORT": "dds",
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}   # nothing of this leaves the process
    proc = subprocess.run([sys.executable, "-m", "hardware.nodes.recorder_node", f"output:={tmp_path / 'b'}", *argv],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == status, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_console_script_help():
    script = Path(sys.executable).with_name("policy_node")
    if not script.exists():
        pytest.skip("console scripts not installed in this environment (tests/test_packaging.py installs them)")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: policy_node" in proc.stdout and "safety.ramp_time_s" in proc.stdout
