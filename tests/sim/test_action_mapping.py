"""Action -> joint position targets: the pure mapping shared with hardware/."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.action_mapping import action_to_targets, gripper_action

LOWER, UPPER = np.array([-1.0, -2.0]), np.array([1.0, 0.5])


def test_deltas_are_scaled_added_and_clipped_to_limits():
    targets, width = action_to_targets(np.array([0.5, 1.0, 0.0]), np.array([0.0, 0.45]), LOWER, UPPER, 0.1, 0.08)
    np.testing.assert_allclose(targets, [0.05, 0.5])
    assert width == pytest.approx(0.04)


def test_out_of_range_actions_are_clipped_to_unit_box():
    targets, width = action_to_targets(np.array([5.0, -5.0, 3.0]), np.zeros(2), LOWER, UPPER, 0.1, 0.08)
    np.testing.assert_allclose(targets, [0.1, -0.1])
    assert width == pytest.approx(0.08)


def test_gripper_endpoints_and_inverse():
    assert action_to_targets(np.array([0, 0, -1.0]), np.zeros(2), LOWER, UPPER, 0.1, 0.08)[1] == 0.0
    for w in (0.0, 0.02, 0.08):
        assert action_to_targets(np.array([0, 0, gripper_action(w, 0.08)]), np.zeros(2), LOWER, UPPER, 0.1,
                                 0.08)[1] == pytest.approx(w)


def test_bad_actions_are_refused():
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        action_to_targets(np.zeros(4), np.zeros(2), LOWER, UPPER, 0.1, 0.08)
    with pytest.raises(ValueError, match="non-finite"):
        action_to_targets(np.array([np.nan, 0, 0]), np.zeros(2), LOWER, UPPER, 0.1, 0.08)


def test_importing_sim_and_the_mapping_loads_no_engine():
    code = ("import sys, sim, sim.action_mapping, sim.params\n"
            "print(any(m in sys.modules for m in ('mujoco', 'pybullet', 'torch')))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
