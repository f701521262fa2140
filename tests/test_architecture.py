"""The import rules of ARCHITECTURE.md, checked on the source: who may import whom, no torch on the robot,
no heavy import in a package __init__."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"robot_rl", "sim", "hardware", "calibration"}
# Project packages each package may import (third-party rules are checked for torch/heavy imports below).
MAY_IMPORT = {
    "sim": {"sim"},
    "robot_rl": {"robot_rl", "sim", "hardware", "calibration"},  # hardware/calibration only via the CLI's lazy table
    "hardware": {"hardware", "sim"},
    "calibration": {"calibration", "sim", "hardware"},
}
HEAVY = {"torch", "mujoco", "pybullet", "pyrealsense2", "rclpy", "dm_control", "cv2", "onnxruntime"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PROJECT))
def test_packages_import_only_what_architecture_allows(package):
    offenders = [f"{path.relative_to(ROOT)} imports {sorted((_imports(path) & PROJECT) - MAY_IMPORT[package])}"
                 for path in _sources(package) if (_imports(path) & PROJECT) - MAY_IMPORT[package]]
    assert not offenders, offenders


def test_hardware_never_imports_torch():
    offenders = [str(p.relative_to(ROOT)) for p in _sources("hardware") if {"torch", "robot_rl"} & _imports(p)]
    assert not offenders, f"hardware/ must run without torch: {offenders}"


@pytest.mark.parametrize("package", sorted(PROJECT))
def test_package_init_has_no_heavy_import(package):
    for init in (ROOT / package).rglob("__init__.py"):
        assert not (_imports(init) & HEAVY), f"{init.relative_to(ROOT)} imports {_imports(init) & HEAVY}"


def test_importing_every_hardware_module_leaves_torch_unloaded():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in _sources("hardware")]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    try:\n        importlib.import_module(m)\n"
            "    except ImportError as e:\n"
            "        if 'rclpy' not in str(e) and 'launch' not in str(e): raise\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("False"), "a hardware module pulled in torch"
