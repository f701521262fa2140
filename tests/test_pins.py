"""The versions in constraints.txt are the ones installed and tested together."""
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

PINS = [line.split("==") for line in (Path(__file__).resolve().parents[1] / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")]


@pytest.mark.parametrize("name, pinned", PINS, ids=[p[0] for p in PINS])
def test_installed_version_matches_pin(name, pinned):
    try:
        installed = version(name)
    except PackageNotFoundError:
        pytest.fail(f"{name} (pinned {pinned} in constraints.txt) is not installed; run `make test` to set up")
    assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, constraints.txt pins {pinned}"


def test_pinned_mujoco_works_with_dm_control_and_has_sysid():
    import mujoco
    from dm_control import suite
    from mujoco import sysid

    env = suite.load("cartpole", "swingup")
    step = env.step([0.0])
    assert step.observation["position"].shape == (3,)
    assert callable(sysid.optimize) and mujoco.__version__ == "3.17.0"
