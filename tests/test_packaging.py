"""How the package installs where it is used, with the real tools:

- the robot computer: `pip install .` (also spelled `.[robot]`) into a fresh virtual environment without system
  site packages gives working node executables that load and run an exported bundle, and no torch;
- a ROS 2 workspace: the `setup.py` command line colcon's ament_python build runs (colcon-core
  task/python/build.py: egg_info, build, install with --install-scripts taken from setup.cfg
  --single-version-externally-managed, install_data) puts the executables in <prefix>/lib/robot_rl, where
  `ros2 run` and launch_ros (ExecutableInPackage: <package prefix>/lib/<package>) look for them.

The robot install runs offline from a wheelhouse of the robot set, downloaded once per (setup.py, constraints.txt)
into the user's cache (~/.cache/robot_rl); our own project is built into a wheel as `pip install .` would.
"""
from __future__ import annotations

import ast
import configparser
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "robot_rl", "sim", "hardware",
                 "calibration")
NODE_EXECUTABLES = ("policy_node", "sim_robot_node", "camera_node", "recorder", "robot-rl")
PIP = [sys.executable, "-m", "pip"]


def copy_project(dest: Path) -> Path:
    """The files setup.py packages, copied so that building never writes into the checkout."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n" \
                                   f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def runtime_requirements() -> list[str]:
    """setup.py's RUNTIME list (what the plain install requires), read without running setup.py."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RUNTIME" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py: no RUNTIME list")


def robot_wheelhouse(project: Path) -> Path:
    """Wheels of the plain install's dependencies (+ setuptools for building), cached per RUNTIME/constraints."""
    key = hashlib.sha256(repr(runtime_requirements()).encode() + (ROOT / "constraints.txt").read_bytes()).hexdigest()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robot_rl"
    wheelhouse = cache / f"robot-wheelhouse-{key[:16]}"
    if not wheelhouse.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{wheelhouse.name}.{os.getpid()}"
        run(PIP + ["download", "-q", "-d", str(partial), "-c", str(ROOT / "constraints.txt"), str(project),
                   "setuptools"])
        for built in partial.glob("robot_rl*"):   # our own project is built fresh below, never cached
            built.unlink()
        try:
            os.replace(partial, wheelhouse)
        except OSError:   # another test run made it meanwhile
            shutil.rmtree(partial)
    return wheelhouse


@pytest.mark.slow
def test_robot_install_has_no_torch_and_runs_a_bundle(tmp_path):
    from tests.hardware.exported_bundle import make_bundle   # torch is fine here, in the test's own process

    (tmp_path / "export").mkdir()
    bundle, _ = make_bundle(tmp_path / "export")
    project = copy_project(tmp_path / "src")
    wheelhouse = robot_wheelhouse(project)
    # `pip install .` builds this wheel and installs it; built here with the test venv's setuptools (no download).
    run(PIP + ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(project)])
    (wheel,) = (tmp_path / "dist").glob("robot_rl-*.whl")
    venv = tmp_path / "robot-venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = venv / "bin" / "python"
    run(PIP + ["--python", str(python), "install", "-q", "--no-compile", "--no-index", "--find-links",
               str(wheelhouse), "-c", str(ROOT / "constraints.txt"), f"{wheel}[robot]"])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = run(PIP + ["--python", str(python), "list", "--format=freeze"], env=env).stdout.lower()
    for heavy in ("torch", "mujoco", "pybullet", "dm-control", "scipy", "tensorboard"):
        assert f"\n{heavy}==" not in f"\n{installed}", f"the robot install pulled {heavy}:\n{installed}"
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, env=env,
                              cwd=tmp_path)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    for executable in NODE_EXECUTABLES[:1] + NODE_EXECUTABLES[2:4]:   # policy_node, camera_node, recorder
        shown = run([str(venv / "bin" / executable), "--help"], env=env, cwd=tmp_path)
        assert "parameters" in shown.stdout.lower(), shown.stdout
    loaded = run([str(python), "-c", (
        "import sys, numpy as np\n"
        "from hardware.policy_runtime import open_bundle\n"
        "b = open_bundle(sys.argv[1], 'policy')\n"
        "q = np.zeros(len(b.io.joint_names))\n"
        "state = b.io.state(q, None, 0.0, np.array([0.5, 0.0, 0.3]), None)\n"
        "targets, _ = b.io.targets(b.runtime.act(state, None, first=True), q)\n"
        "assert targets.shape == q.shape and np.all(np.isfinite(targets)), targets\n"
        "assert 'torch' not in sys.modules\n"
        "print('targets', targets.tolist())\n"), str(bundle)], env=env, cwd=tmp_path)
    assert loaded.stdout.startswith("targets [")


def test_colcon_layout_install_puts_executables_in_lib_package(tmp_path):
    project = copy_project(tmp_path / "src")
    build, prefix = tmp_path / "build", tmp_path / "install"
    build.mkdir()
    setup_cfg = configparser.ConfigParser()
    setup_cfg.optionxform = str
    setup_cfg.read(project / "setup.cfg")
    install_scripts = setup_cfg.get("install", "install_scripts")
    assert setup_cfg.get("develop", "script_dir") == install_scripts == "$base/lib/robot_rl"   # symlink-install too
    run([sys.executable, "setup.py", "egg_info", "--egg-base", str(build), "build", "--build-base",
         str(build / "build"), "install", "--prefix", str(prefix), "--record", str(build / "install.log"),
         "--install-scripts", install_scripts, "--single-version-externally-managed", "install_data"],
        cwd=project)
    lib = prefix / "lib" / "robot_rl"
    for executable in NODE_EXECUTABLES:
        assert os.access(lib / executable, os.X_OK), f"{lib / executable} missing or not executable"
    assert not (prefix / "bin").exists(), "console scripts must not go to bin/ (launch_ros looks in lib/robot_rl)"
    share = prefix / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "robot_rl").is_file()
    assert (share / "robot_rl" / "package.xml").is_file()
    assert {p.name for p in (share / "robot_rl" / "launch").iterdir()} >= {"policy.launch.py", "bringup.launch.py"}
    assert (share / "robot_rl" / "config" / "policy.yaml").is_file()
    assert (share / "robot_rl" / "security" / "robot_rl.policy.xml").is_file()
    site = next((prefix / "lib").glob("python3*/site-packages"))
    assert (site / "hardware" / "nodes" / "policy_node.py").is_file()
    # The installed executable runs from the install space, as `ros2 run robot_rl policy_node --help` would.
    shown = run([str(lib / "policy_node"), "--help"], env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path)
    assert "bundle" in shown.stdout


def test_package_xml_lists_the_robot_runtime():
    import xml.etree.ElementTree as ET

    depends = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    # rosdep keys from rosdistro's rosdep/python.yaml for setup.py's RUNTIME (cyclonedds, mcap: pip only)
    assert {"rclpy", "launch_ros", "python3-numpy", "python3-yaml", "python3-onnxruntime-pip",
            "python3-rosbags-pip"} <= depends
